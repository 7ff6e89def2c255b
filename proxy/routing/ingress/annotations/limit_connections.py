"""`limit-connections`: requests in progress at once per client address, per replica (0: none);
over it, 503 (ingress-nginx's default status)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "limit-connections"
DEFAULT = 0
DISABLED = "no concurrent-requests limit"


def parse(value: str) -> int:
    return integer(value)
