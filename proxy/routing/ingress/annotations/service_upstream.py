"""`service-upstream`: "true" forwards to the Service's ClusterIP and port instead of its pods' addresses
(kube-proxy balances; default: false)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "service-upstream"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
