"""`canary-by-header-value`: see routing.ingress.canary for how it routes (default: unset)."""

from proxy.routing.ingress.annotations.values import BASIC_CHARS, matching

NAME = "canary-by-header-value"
DEFAULT = ""
DISABLED = "unset"


def parse(value: str) -> str:
    return matching(value, BASIC_CHARS, "made of letters, digits and -._~/:")
