"""`proxy-ssl-name`: the name the pods' certificate is checked against and sent as SNI; only read with
proxy-ssl-secret, as in ingress-nginx."""

from proxy.routing.ingress.annotations.values import BASIC_CHARS, matching

NAME = "proxy-ssl-name"
DEFAULT = ""


def parse(value: str) -> str:
    return matching(value, BASIC_CHARS, "a server name")
