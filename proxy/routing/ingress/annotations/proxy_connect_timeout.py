"""`proxy-connect-timeout`: seconds to connect to a pod (ingress-nginx default 5, pyngress's
--upstream-connect-timeout); a cluster setting here, as in Envoy."""

from proxy.routing.ingress.annotations.values import seconds

NAME = "proxy-connect-timeout"
DEFAULT = 0  # not set
DISABLED = "the global proxy-connect-timeout used (the ConfigMap's, else --upstream-connect-timeout)"


def parse(value: str) -> int:
    return seconds(value)
