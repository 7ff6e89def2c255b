"""`canary`: this Ingress is an alternative backend for the same host and path of a main Ingress (default off)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "canary"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
