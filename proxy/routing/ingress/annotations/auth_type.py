"""`auth-type`: "basic" asks every request of the Ingress for a user of `auth-secret` (nginx's auth_basic).

"digest" (ingress-nginx's auth_digest module) is not supported yet: the Ingress's routes answer 503 rather
than serve unprotected. Any other value: ingress-nginx denies the location, so 503 too."""

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-type"
DEFAULT = ""
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed, as ingress-nginx)"


def parse(value: str) -> str:
    text = value.strip()
    if text not in ("basic", "digest"):
        raise Invalid(f"{value!r:.60} is not basic or digest")
    return text
