"""`session-cookie-name`: the affinity cookie's name (default INGRESSCOOKIE)."""

from proxy.routing.ingress.annotations.values import BASIC_CHARS, Invalid, matching

NAME = "session-cookie-name"
DEFAULT = "INGRESSCOOKIE"


def parse(value: str) -> str:
    if not value or "/" in value or ":" in value:
        raise Invalid(f"{value!r:.40} is not a cookie name")
    return matching(value, BASIC_CHARS, "a cookie name (letters, digits and -._~)")
