"""`auth-tls-error-page`: where a client whose certificate is missing or refused is redirected (302) instead of
getting 400 (nginx's `error_page 495 496 = URL`)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-tls-error-page"
DEFAULT = ""
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed, as ingress-nginx refuses the Ingress)"
# ingress-nginx's redirectRegex (authtls), but its named-location form ("@name"), which has no meaning here.
_REDIRECT = re.compile(r"((https?://)?[A-Za-z0-9\-.]+(:\d+)?)?(/[A-Za-z0-9\-_.]+)*/?")


def parse(value: str) -> str:
    if not value or _REDIRECT.fullmatch(value) is None:
        raise Invalid(f"{value!r:.80} is not a URL or path")
    return value
