"""`auth-secret-type`: how `auth-secret` holds its users: "auth-file" (an htpasswd file in key `auth`) or
"auth-map" (each key a user, its value the hash)."""

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-secret-type"
DEFAULT = "auth-file"
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed)"


def parse(value: str) -> str:
    text = value.strip()
    if text not in ("auth-file", "auth-map"):
        raise Invalid(f"{value!r:.60} is not auth-file or auth-map")
    return text
