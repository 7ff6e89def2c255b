"""`canary-weight`: requests sent to the canary out of canary-weight-total (default 0)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "canary-weight"
DEFAULT = 0


def parse(value: str) -> int:
    return integer(value)
