"""`proxy-next-upstream-timeout`: no retry starts this many seconds after the request began (0, the
default: no limit)."""

from proxy.routing.ingress.annotations.values import not_negative

NAME = "proxy-next-upstream-timeout"
DEFAULT = -1  # not set
DISABLED = "no limit (ingress-nginx's default 0)"


def parse(value: str) -> int:
    return not_negative(value)
