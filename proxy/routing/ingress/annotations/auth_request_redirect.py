"""`auth-request-redirect`: the X-Auth-Request-Redirect value sent to the auth service (default: the
request's URI)."""

from proxy.routing.ingress.annotations.values import URL_CHARS, matching

NAME = "auth-request-redirect"
DEFAULT = ""
DISABLED = "every route of the Ingress answers 503 (fail closed: ingress-nginx rejects the auth configuration)"


def parse(value: str) -> str:
    return matching(value.strip(), URL_CHARS, "a URL (letters, digits and -._~/:,?&=)")
