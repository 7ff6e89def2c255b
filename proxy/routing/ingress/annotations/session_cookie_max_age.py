"""`session-cookie-max-age`: seconds the affinity cookie lives (sent as Max-Age; without it, a session cookie)."""

from proxy.routing.ingress.annotations.values import cookie_seconds

NAME = "session-cookie-max-age"
DEFAULT = -1  # not set
DISABLED = "a session cookie"


def parse(value: str) -> int:
    return cookie_seconds(value)
