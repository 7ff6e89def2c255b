"""`auth-type`: "basic" asks every request of the Ingress for a user of `auth-secret` (nginx's auth_basic),
"digest" for one of its htdigest file (the auth_digest module ingress-nginx builds in: routing.digest_auth).
Any other value: ingress-nginx denies the location, so 503 too."""

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-type"
DEFAULT = ""
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed, as ingress-nginx)"


def parse(value: str) -> str:
    text = value.strip()
    if text not in ("basic", "digest"):
        raise Invalid(f"{value!r:.60} is not basic or digest")
    return text
