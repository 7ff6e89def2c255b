"""`auth-tls-verify-depth`: nginx's ssl_verify_depth, the longest client certificate chain (1: the certificate and
one CA); 0 means the default, as in ingress-nginx."""

from proxy.routing.ingress.annotations.values import Invalid, integer

NAME = "auth-tls-verify-depth"
DEFAULT = 1


def parse(value: str) -> int:
    number = integer(value)
    if number < 0:
        raise Invalid(f"{value!r:.40} is negative")
    return number or DEFAULT
