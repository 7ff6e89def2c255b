"""`proxy-http-version`: the HTTP version of requests to the pods, "1.0" or "1.1" (default 1.1). With 1.0 each
request has its own connection to the pod ("Connection: close"), as nginx keeps no upstream keepalive with 1.0."""

from proxy.routing.ingress.annotations.values import option

NAME = "proxy-http-version"
DEFAULT = "1.1"


def parse(value: str) -> str:
    return option(value, ("1.0", "1.1"))
