"""`backend-protocol`: how the pods are spoken to (HTTP by default; HTTPS: TLS without verification)."""

from proxy.routing.ingress.annotations.values import option

NAME = "backend-protocol"
DEFAULT = "HTTP"
# ingress-nginx's validProtocols (H2C is not one: it answers that with HTTP, and so do we).
OPTIONS = ("HTTP", "HTTPS", "AUTO_HTTP", "GRPC", "GRPCS", "FCGI")


def parse(value: str) -> str:
    return option(value, OPTIONS)
