"""`permanent-redirect-code`: the status of permanent-redirect; 300-308, else 301 (ingress-nginx's range)."""

from proxy.routing.ingress.annotations.values import integer

NAME = "permanent-redirect-code"
DEFAULT = 301
DISABLED = "the redirect is disabled"


def parse(value: str) -> int:
    return integer(value)
