"""`whitelist-source-range` (ingress-nginx's newer spelling `allowlist-source-range` wins when both are set):
only clients in these networks are served, others get 403.

An invalid value fails closed: the Ingress's routes answer 503 (ingress-nginx's denied location).
"""

from proxy.routing.ingress.annotations.values import networks

NAME = "whitelist-source-range"
# Every spelling, the one read first first (ingress-nginx's main name, then its AnnotationAliases).
SPELLINGS = ("allowlist-source-range", "whitelist-source-range")
DEFAULT: tuple[str, ...] = ()
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed, as ingress-nginx)"


def parse(value: str) -> tuple[str, ...]:
    return networks(value)
