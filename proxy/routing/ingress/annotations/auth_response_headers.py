"""`auth-response-headers`: comma-separated header names copied from the auth service's answer to the request
sent to the pod (replacing any the client sent). An invalid list fails closed (ingress-nginx's "invalid
headers list" denies the location)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-response-headers"
DEFAULT: tuple[str, ...] = ()
DISABLED = "every route of the Ingress answers 503 (fail closed, as ingress-nginx)"
_HEADER = re.compile(r"[a-zA-Z0-9_-]+")


def parse(value: str) -> tuple[str, ...]:
    names = tuple(name for entry in value.split(",") if (name := entry.strip()))
    for name in names:
        if _HEADER.fullmatch(name) is None:
            raise Invalid(f"{name!r:.60} is not a header name")
    return names
