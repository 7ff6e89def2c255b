"""`use-regex`: the Ingress's paths are case-insensitive regular expressions (default off)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "use-regex"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
