"""`proxy-next-upstream-timeout`: no retry starts this many seconds after the request began (0, the
default: no limit)."""

from proxy.routing.ingress.annotations.values import Invalid, integer

NAME = "proxy-next-upstream-timeout"
DEFAULT = -1  # not set
DISABLED = "no limit (ingress-nginx's default 0)"


def parse(value: str) -> int:
    number = integer(value)
    if number < 0:
        raise Invalid(f"{value!r:.40} is negative")
    return number
