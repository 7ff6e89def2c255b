"""`session-cookie-max-age`: seconds the affinity cookie lives (sent as Max-Age; without it, a session cookie)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "session-cookie-max-age"
DEFAULT = -1  # not set
DISABLED = "a session cookie"
# ingress-nginx's affinityCookieExpiresRegex, whole.
_SECONDS = re.compile(r"0|-?[1-9][0-9]{0,11}")


def parse(value: str) -> int:
    if _SECONDS.fullmatch(value.strip()) is None:
        raise Invalid(f"{value!r:.40} is not a number of seconds")
    number = int(value)
    if number < 0:
        raise Invalid(f"{value!r:.40} is negative")
    return number
