"""`temporal-redirect-code`: the status of temporal-redirect; 300-307, else 302 (ingress-nginx's range)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "temporal-redirect-code"
DEFAULT = 302
DISABLED = "the redirect is disabled"


def parse(value: str) -> int:
    return integer(value)
