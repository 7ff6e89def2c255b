"""`custom-http-errors`: status codes (400-599, comma-separated) that the Ingress's `default-backend`
answers instead of the pod (nginx's proxy_intercept_errors with error_page; default: none)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "custom-http-errors"
DEFAULT: tuple[int, ...] = ()
DISABLED = "no error codes intercepted"

_CODE = re.compile(r"[45][0-9]{2}")


def parse(value: str) -> tuple[int, ...]:
    codes: list[int] = []
    for item in value.split(","):
        text = item.strip()
        if not text:
            continue
        if _CODE.fullmatch(text) is None:
            raise Invalid(f"{text!r:.40} is not an HTTP error status (400 to 599)")
        if int(text) not in codes:
            codes.append(int(text))
    if not codes:
        raise Invalid(f"{value!r:.40} lists no status code")
    return tuple(codes)
