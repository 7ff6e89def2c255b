"""`backend-protocol`: how the pods are spoken to (HTTP by default; HTTPS: TLS without verification; GRPC and H2C:
HTTP/2 without TLS; GRPCS: HTTP/2 over TLS without verification)."""

from proxy.routing.ingress.annotations.values import option

NAME = "backend-protocol"
DEFAULT = "HTTP"
# ingress-nginx's validProtocols, plus H2C (HTTP/2 without TLS for any HTTP/2 pod, not only gRPC ones: ingress-nginx
# refuses it and speaks HTTP; pyngress accepts it, as the GRPC it is on the wire).
OPTIONS = ("HTTP", "HTTPS", "AUTO_HTTP", "GRPC", "GRPCS", "H2C", "FCGI")


def parse(value: str) -> str:
    return option(value, OPTIONS)
