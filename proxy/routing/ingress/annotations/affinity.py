"""`affinity`: "cookie" turns on cookie session affinity for the Ingress's backends (the only type)."""

from proxy.routing.ingress.annotations.values import option

NAME = "affinity"
DEFAULT = ""
DISABLED = "no session affinity"


def parse(value: str) -> str:
    return option(value, ("cookie",))
