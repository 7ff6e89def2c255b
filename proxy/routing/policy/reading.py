"""Typed reads shared by the policy front ends: durations, bounded numbers, percentages, names, and
unknown fields (named in a warning: in file mode no schema stands between a typo and the builder)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from proxy.routing.fields import Malformed
from proxy.routing.gateway.durations import parse_duration

# RFC 7230 token: header and cookie names.
TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")

Warn = Callable[[str], None]


def check_fields(body: dict[str, Any], allowed: Iterable[str], where: str, warn: Warn) -> None:
    """Warn about every field of `body` not in `allowed` (it is ignored)."""
    known = set(allowed)
    for name in body:
        if name not in known:
            warn(f"{where}{name} is not a known field; ignored")


def integer(body: dict[str, Any], key: str, where: str, *, default: int, minimum: int = 0,
            maximum: int = 2**31 - 1) -> int:
    value = body.get(key)
    if value is None:
        return default
    if type(value) is not int or not minimum <= value <= maximum:
        raise Malformed(f"{where}{key} must be a whole number from {minimum} to {maximum}, got {value!r:.40}")
    return value


def duration(body: dict[str, Any], key: str, where: str, *, default: float | None) -> float | None:
    """Seconds, from a Gateway API duration ("1s", "250ms", "1m30s")."""
    value = body.get(key)
    if value is None:
        return default
    return parse_duration(value, f"{where}{key}")


def fraction(body: dict[str, Any], key: str, where: str, *, default: float) -> float:
    """A percentage (0-100, fractions allowed) as a fraction of 1."""
    value = body.get(key)
    if value is None:
        return default
    if type(value) not in (int, float) or not 0 <= value <= 100:
        raise Malformed(f"{where}{key} must be a percentage from 0 to 100, got {value!r:.40}")
    return float(value) / 100


def token(body: dict[str, Any], key: str, where: str, *, required: bool = True, default: str = "") -> str:
    """A header or cookie name."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise Malformed(f"{where}{key} is missing")
        return default
    if not isinstance(value, str) or not TOKEN.fullmatch(value) or len(value) > 256:
        raise Malformed(f"{where}{key} {value!r:.40} is not a valid name")
    return value


def flag(body: dict[str, Any], key: str, where: str, *, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Malformed(f"{where}{key} must be true or false, got {value!r:.40}")
    return value
