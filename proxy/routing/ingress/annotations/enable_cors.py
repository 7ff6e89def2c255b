"""`enable-cors`: answer CORS preflights and add the Access-Control-* headers (see the cors-* annotations)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "enable-cors"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
