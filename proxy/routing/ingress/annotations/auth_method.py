"""`auth-method`: the method of the request to `auth-url` (default GET, nginx's subrequest method); with it
the auth service also gets X-Original-URI and X-Scheme. An invalid method fails closed (ingress-nginx's
"invalid HTTP method" denies the location)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-method"
DEFAULT = ""
DISABLED = "every route of the Ingress answers 503 (fail closed, as ingress-nginx)"
_METHODS = re.compile(r"GET|HEAD|POST|PUT|PATCH|DELETE|CONNECT|OPTIONS|TRACE")


def parse(value: str) -> str:
    if _METHODS.fullmatch(value) is None:
        raise Invalid(f"{value!r:.40} is not one of GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS, TRACE")
    return value
