"""`auth-proxy-set-headers`: a ConfigMap ("name" in the Ingress's namespace, or "namespace/name") whose data are
headers sent to the `auth-url` service (nginx's `proxy_set_header` in the auth location; values may use the
variables of `auth-url`). A missing ConfigMap, one of another namespace or a bad header name make every route
of the Ingress answer 503 (ingress-nginx denies the location)."""

from proxy.routing.ingress.annotations.values import configmap_reference

NAME = "auth-proxy-set-headers"
DEFAULT = ""
DISABLED = "every route of the Ingress answers 503 (fail closed, as ingress-nginx)"


def parse(value: str) -> str:
    return configmap_reference(value)
