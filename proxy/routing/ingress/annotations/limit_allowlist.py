"""`limit-allowlist` (alias `limit-whitelist`): client networks exempt from limit-rps, -rpm and -connections."""

from proxy.routing.ingress.annotations.values import networks

NAME = "limit-allowlist"
ALIASES = ("limit-whitelist",)
DEFAULT: tuple[str, ...] = ()
DISABLED = "no client is exempt from the limits"


def parse(value: str) -> tuple[str, ...]:
    return networks(value)
