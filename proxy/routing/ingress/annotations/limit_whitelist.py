"""`limit-whitelist` (or `limit-allowlist`, which wins when both are set): client networks exempt from
limit-rps, limit-rpm and limit-connections."""

from proxy.routing.ingress.annotations.values import networks

NAME = "limit-whitelist"
SPELLINGS = ("limit-allowlist", "limit-whitelist")
DEFAULT: tuple[str, ...] = ()
DISABLED = "no client is exempt from the limits"


def parse(value: str) -> tuple[str, ...]:
    return networks(value)
