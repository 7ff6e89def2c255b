"""`cors-expose-headers`: the Access-Control-Expose-Headers value, as written (default none).

A value outside ingress-nginx's characters is replaced by the default, as ingress-nginx does.
"""

import re

from proxy.routing.ingress.annotations.values import matching

NAME = "cors-expose-headers"
DEFAULT = ""
_VALUE = re.compile(r"(([A-Za-z0-9\-_]+|\*),?\s?)+")


def parse(value: str) -> str:
    return matching(value, _VALUE, "header names (letters, digits, -, _ or *, separated by commas)")
