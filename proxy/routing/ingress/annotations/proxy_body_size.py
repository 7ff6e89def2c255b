"""`proxy-body-size`: the largest request body of the Ingress's routes (nginx's client_max_body_size),
as nginx writes sizes: bytes, or with k, m or g (any case); "0" means no limit. Over it, 413. Absent:
the process's default (Settings.proxy_body_size, ingress-nginx's 1m)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "proxy-body-size"
DEFAULT = -1  # not set: the process's default
DISABLED = "the process's default body size limit used"

# ingress-nginx's SizeRegex: digits and an optional unit.
_SIZE = re.compile(r"([0-9]{1,15})([bkmg]?)", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse(value: str) -> int:
    found = _SIZE.fullmatch(value.strip())
    if found is None:
        raise Invalid(f"{value!r:.40} is not a size (a number of bytes, or with k, m or g)")
    return int(found[1]) * _UNITS[found[2].lower()]
