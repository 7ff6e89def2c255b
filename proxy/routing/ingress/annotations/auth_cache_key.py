"""`auth-cache-key`: turns on the cache of the auth service's answers, keyed by this text with nginx variables
(`$remote_user$http_authorization`); one key space per Ingress."""

import re

from proxy.routing.ingress.annotations.values import matching

NAME = "auth-cache-key"
DEFAULT = ""
DISABLED = "auth answers are not cached"
_KEY = re.compile(r"[A-Za-z0-9_${}-]*")


def parse(value: str) -> str:
    return matching(value.strip(), _KEY, "letters, digits, -, _ and nginx variables")
