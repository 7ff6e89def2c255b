"""`session-cookie-secure`: the affinity cookie gets the Secure attribute."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "session-cookie-secure"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
