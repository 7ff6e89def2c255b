"""`ssl-redirect`: plain-HTTP requests for hosts with TLS get 308 to https (default on)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "ssl-redirect"
DEFAULT = True


def parse(value: str) -> bool:
    return boolean(value)
