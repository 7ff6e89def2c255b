"""`upstream-hash-by`: the nginx variable whose value a consistent hash of the backends is taken of
(`$remote_addr`, `$request_uri`, `$http_<name>`, `$cookie_<name>`; routing.ingress.nginx_traffic)."""

import re

from proxy.routing.ingress.annotations.values import matching

NAME = "upstream-hash-by"
DEFAULT = ""
DISABLED = "no hashing"
# ingress-nginx's hashByRegex.
_CHARS = re.compile(r"[A-Za-z0-9\-_${}]*")


def parse(value: str) -> str:
    return matching(value, _CHARS, "an nginx variable (letters, digits and -_${})")
