"""`auth-proxy-set-headers`: "namespace/name" (or "name", in the Ingress's namespace) of a ConfigMap of
headers to send to the auth service. Not read yet: pyngress does not keep ConfigMaps for Ingresses, so the
auth service gets no extra headers (a warning says so)."""

from proxy.routing.ingress.annotations.values import BASIC_CHARS, matching

NAME = "auth-proxy-set-headers"
DEFAULT = ""


def parse(value: str) -> str:
    return matching(value.strip(), BASIC_CHARS, "a ConfigMap name (namespace/name)")
