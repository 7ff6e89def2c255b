"""`auth-url`: external authentication (nginx's auth_request): every request of the Ingress is first sent,
without its body, to this http(s) URL; a 2xx answer lets it through. The URL may hold nginx variables
(`$host`, `$escaped_request_uri`...; routing.external_auth lists the ones understood).

An invalid value fails closed: every route of the Ingress answers 503 (ingress-nginx's denied location)."""

from proxy.routing.ingress.annotations.values import Invalid, auth_url

NAME = "auth-url"
DEFAULT = ""
DISABLED = "every route of the Ingress answers 503 (fail closed, as ingress-nginx denies the location)"


def parse(value: str) -> str:
    if not value.strip():
        raise Invalid("is empty")
    return auth_url(value.strip())
