"""`auth-keepalive-timeout`: seconds an idle kept connection to the auth service stays open (default 60);
0 or less turns auth-keepalive off (as ingress-nginx)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "auth-keepalive-timeout"
DEFAULT = 60


def parse(value: str) -> int:
    return integer(value)
