"""`cors-allow-methods`: the Access-Control-Allow-Methods value, as written
(default "GET, PUT, POST, DELETE, PATCH, OPTIONS").

A value outside ingress-nginx's characters is replaced by the default, as ingress-nginx does.
"""

import re

from proxy.routing.ingress.annotations.values import matching

NAME = "cors-allow-methods"
DEFAULT = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
_VALUE = re.compile(r"([A-Za-z]+,?\s?)+")


def parse(value: str) -> str:
    return matching(value, _VALUE, "methods (letters, separated by commas)")
