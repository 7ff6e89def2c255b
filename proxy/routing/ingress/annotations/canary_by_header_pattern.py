"""`canary-by-header-pattern`: requests whose canary header the regex finds a match in go to the canary."""

import re

from proxy.routing.ingress.annotations.values import REGEX_CHARS, Invalid, matching

NAME = "canary-by-header-pattern"
DEFAULT = ""
# (Unless canary-by-header-value is set, which wins over a pattern anyway.)
DISABLED = "requests carrying the canary header go to the main backend, as ingress-nginx sends them when the " \
    "pattern fails"


def parse(value: str) -> str:
    matching(value, REGEX_CHARS, "a regular expression of the characters ingress-nginx allows")
    try:
        re.compile(value.encode("latin-1"))
    except re.error as error:
        raise Invalid(f"{value!r:.80} is not a regular expression ({error})") from None
    return value
