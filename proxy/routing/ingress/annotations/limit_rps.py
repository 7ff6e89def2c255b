"""`limit-rps`: requests a second per client address, per replica (0: none);
over it, 503 (ingress-nginx's default status)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "limit-rps"
DEFAULT = 0
DISABLED = "no requests-per-second limit"


def parse(value: str) -> int:
    return integer(value)
