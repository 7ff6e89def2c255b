"""`session-cookie-samesite`: the affinity cookie's SameSite attribute (None, Lax or Strict)."""

from proxy.routing.ingress.annotations.values import option

NAME = "session-cookie-samesite"
DEFAULT = ""


def parse(value: str) -> str:
    return option(value, ("None", "Lax", "Strict"))
