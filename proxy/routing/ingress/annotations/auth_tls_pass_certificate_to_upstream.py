"""`auth-tls-pass-certificate-to-upstream`: send the client certificate upstream in the `ssl-client-cert` header,
URL-encoded PEM (nginx's $ssl_client_escaped_cert)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "auth-tls-pass-certificate-to-upstream"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
