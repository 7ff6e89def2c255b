"""`custom-headers`: a ConfigMap ("name" in the Ingress's namespace, or "namespace/name") whose data are headers
set on every answer to the client (nginx's `more_set_headers`). Each name must be listed in the ConfigMap key
`global-allowed-response-headers`; a missing ConfigMap, a bad name or value, or a name not allowed make every
route of the Ingress answer 503 (ingress-nginx denies the location)."""

from proxy.references import secret_key
from proxy.routing.ingress.annotations.values import BASIC_CHARS, Invalid, matching

NAME = "custom-headers"
DEFAULT = ""
DISABLED = "every route of the Ingress answers 503 (fail closed, as ingress-nginx)"


def parse(value: str) -> str:
    text = matching(value.strip(), BASIC_CHARS, "a ConfigMap name or namespace/name")
    if secret_key(text, "-") is None:
        raise Invalid(f"{value!r:.80} is not name or namespace/name")
    return text
