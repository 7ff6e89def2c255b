"""`session-cookie-path`: the affinity cookie's Path (default: the rule's path when it is not a regex, else "/")."""

from proxy.routing.ingress.annotations.values import URL_CHARS, Invalid, matching

NAME = "session-cookie-path"
DEFAULT = ""


def parse(value: str) -> str:
    if not value.startswith("/"):
        raise Invalid(f"{value!r:.40} is not a cookie path")
    return matching(value, URL_CHARS, "a cookie path")
