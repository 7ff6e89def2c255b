"""`x-forwarded-prefix`: the X-Forwarded-Prefix header sent upstream, on rewritten paths only (as ingress-nginx)."""

from proxy.routing.ingress.annotations.values import PATH_WITH_CAPTURE, matching

NAME = "x-forwarded-prefix"
DEFAULT = ""
DISABLED = "no X-Forwarded-Prefix"


def parse(value: str) -> str:
    return matching(value, PATH_WITH_CAPTURE, "a path")
