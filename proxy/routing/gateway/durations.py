"""Gateway API durations (GEP-2257): "1h", "500ms", "1h2m3s4ms"; a strict subset of Go's syntax."""

from __future__ import annotations

import re

from proxy.routing.fields import Malformed

_DURATION = re.compile(r"(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}")
_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object, where: str) -> float:
    """Seconds; raises Malformed for anything the API's pattern refuses."""
    if not isinstance(value, str) or not _DURATION.fullmatch(value):
        raise Malformed(f"{where} {value!r:.40} is not a duration such as \"10s\", \"500ms\" or \"1h2m\"")
    return sum(int(number) * _SECONDS[unit] for number, unit in _PART.findall(value))
