"""`session-cookie-domain`: the affinity cookie's Domain attribute."""

from proxy.routing.ingress.annotations.values import BASIC_CHARS, Invalid, matching

NAME = "session-cookie-domain"
DEFAULT = ""


def parse(value: str) -> str:
    if "/" in value or ":" in value:
        raise Invalid(f"{value!r:.40} is not a domain")
    return matching(value, BASIC_CHARS, "a domain (letters, digits and -._~)")
