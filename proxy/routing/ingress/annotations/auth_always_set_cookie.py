"""`auth-always-set-cookie`: the auth service's Set-Cookie is added to every answer, not only to
200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 ones (nginx's add_header without `always`)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "auth-always-set-cookie"
DEFAULT = False
DISABLED = "every route of the Ingress answers 503 (fail closed: ingress-nginx rejects the auth configuration)"


def parse(value: str) -> bool:
    return boolean(value)
