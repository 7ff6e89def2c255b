"""`canary-weight-total`: the total canary-weight is out of (default 100; ingress-nginx uses 100 below 100)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "canary-weight-total"
DEFAULT = 100


def parse(value: str) -> int:
    return integer(value)
