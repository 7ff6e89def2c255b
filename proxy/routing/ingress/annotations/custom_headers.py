"""`custom-headers`: a ConfigMap ("name" in the Ingress's namespace, or "namespace/name") whose data are headers
set on every answer to the client (nginx's `more_set_headers`). Each name must be listed in the ConfigMap key
`global-allowed-response-headers`; a missing ConfigMap, a bad name or value, or a name not allowed make every
route of the Ingress answer 503 (ingress-nginx denies the location)."""

from proxy.routing.ingress.annotations.values import configmap_reference

NAME = "custom-headers"
DEFAULT = ""
DISABLED = "every route of the Ingress answers 503 (fail closed, as ingress-nginx)"


def parse(value: str) -> str:
    return configmap_reference(value)
