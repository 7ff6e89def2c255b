"""`proxy-read-timeout`: seconds the pod may take to answer, or between two reads of its answer
(ingress-nginx default 60, pyngress's --upstream-read-timeout)."""

from proxy.routing.ingress.annotations.values import seconds

NAME = "proxy-read-timeout"
DEFAULT = 0  # not set
DISABLED = "the global proxy-read-timeout used (the ConfigMap's, else --upstream-read-timeout)"


def parse(value: str) -> int:
    return seconds(value)
