"""`proxy-send-timeout`: seconds the pod may take to read more of the request body (ingress-nginx
default 60; pyngress's --upstream-read-timeout covers both globally)."""

from proxy.routing.ingress.annotations.values import seconds

NAME = "proxy-send-timeout"
DEFAULT = 0  # not set
DISABLED = "the global proxy-send-timeout used (the ConfigMap's, else --upstream-read-timeout)"


def parse(value: str) -> int:
    return seconds(value)
