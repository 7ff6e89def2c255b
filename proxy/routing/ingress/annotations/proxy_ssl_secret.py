"""`proxy-ssl-secret`: "namespace/name" of a Secret with the CA (and client certificate) for TLS to the pods.

pyngress does not read Opaque Secrets yet: a route with it answers 503 (routing.ingress.nginx_traffic),
as ingress-nginx denies the location when the Secret cannot be used."""

from proxy.routing.ingress.annotations.values import Invalid

NAME = "proxy-ssl-secret"
DEFAULT = ""


def parse(value: str) -> str:
    namespace, sep, name = value.strip().partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise Invalid(f"{value!r:.80} is not namespace/name")
    return value.strip()
