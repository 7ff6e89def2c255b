"""`auth-keepalive-requests`: requests one kept connection to the auth service may carry (default 1000);
0 or less turns auth-keepalive off (as ingress-nginx)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "auth-keepalive-requests"
DEFAULT = 1000


def parse(value: str) -> int:
    return integer(value)
