"""`auth-signin`: where a request the auth service answered 401 is redirected (302), with the original URL
in the `auth-signin-redirect-param` query parameter (default `rd`). May hold nginx variables."""

from proxy.routing.ingress.annotations.values import auth_url

NAME = "auth-signin"
DEFAULT = ""
DISABLED = "no sign-in redirect: the auth service's 401 is returned"


def parse(value: str) -> str:
    return auth_url(value.strip())
