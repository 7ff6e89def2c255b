"""`force-ssl-redirect`: redirect plain HTTP to https even for hosts without TLS (default off)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "force-ssl-redirect"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
