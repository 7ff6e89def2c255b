"""`auth-signin-redirect-param`: the query parameter of `auth-signin` that carries the original URL
(default `rd`)."""

from proxy.routing.ingress.annotations.values import URL_CHARS, Invalid, matching

NAME = "auth-signin-redirect-param"
DEFAULT = ""  # "rd"


def parse(value: str) -> str:
    if not value.strip():
        raise Invalid("is empty")
    return matching(value.strip(), URL_CHARS, "a query parameter name")
