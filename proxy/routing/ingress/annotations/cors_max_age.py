"""`cors-max-age`: Access-Control-Max-Age in seconds (default 1728000, 20 days, as ingress-nginx)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "cors-max-age"
DEFAULT = 1728000


def parse(value: str) -> int:
    return integer(value)
