"""`cors-allow-headers`: the Access-Control-Allow-Headers value, as written (default: ingress-nginx's list,
"DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization").

A value outside ingress-nginx's characters is replaced by the default, as ingress-nginx does.
"""

import re

from proxy.routing.ingress.annotations.values import matching

NAME = "cors-allow-headers"
DEFAULT = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
_VALUE = re.compile(r"[A-Za-z0-9\-_, ]*")


def parse(value: str) -> str:
    return matching(value, _VALUE, "header names (letters, digits, -, _, separated by commas)")
