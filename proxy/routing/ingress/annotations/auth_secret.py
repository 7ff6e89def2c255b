"""`auth-secret`: the Secret holding the users of `auth-type` ("name" in the Ingress's namespace, or
"namespace/name"; another namespace than the Ingress's is refused, as ingress-nginx does by default)."""

from proxy.references import secret_key
from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-secret"
DEFAULT = ""
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed, as ingress-nginx)"


def parse(value: str) -> str:
    if secret_key(value, "-") is None:
        raise Invalid(f"{value!r:.80} is not name or namespace/name")
    return value.strip()
