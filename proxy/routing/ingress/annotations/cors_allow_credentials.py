"""`cors-allow-credentials`: send Access-Control-Allow-Credentials: true (default true, as ingress-nginx)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "cors-allow-credentials"
DEFAULT = True


def parse(value: str) -> bool:
    return boolean(value)
