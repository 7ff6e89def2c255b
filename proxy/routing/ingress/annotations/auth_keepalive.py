"""`auth-keepalive`: idle connections to the auth service kept for reuse (default 0: a connection per
request, as ingress-nginx). A negative value is 0; ignored when the URL's host holds a variable."""

from proxy.routing.ingress.annotations.values import integer

NAME = "auth-keepalive"
DEFAULT = 0


def parse(value: str) -> int:
    return max(0, integer(value))
