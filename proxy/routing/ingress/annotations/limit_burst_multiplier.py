"""`limit-burst-multiplier`: the burst of limit-rps / limit-rpm is the limit times this (default 5)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "limit-burst-multiplier"
DEFAULT = 5


def parse(value: str) -> int:
    return integer(value)
