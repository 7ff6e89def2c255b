"""Request path normalization: what the table matches is exactly what is forwarded."""

from __future__ import annotations

import re

# RFC 3986 2.3: percent-encoded unreserved characters are equivalent to the characters.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_HEX = frozenset("0123456789abcdefABCDEF")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def normalize_path(path: str) -> str | None:
    """Normalize a request path (no query), or None when it must be refused with 400.

    Decodes percent-encoded unreserved characters (so `%2e%2e` is `..`), merges
    repeated slashes, and resolves `.` and `..` segments. A path that climbs above
    the root, carries a NUL byte or a broken escape is refused, as nginx does.
    """
    if not path or path[0] != "/":
        return None
    if "%" not in path and "/." not in path and "//" not in path:
        return path  # the common case: nothing to do
    if "%" in path:
        i = path.find("%")
        while i >= 0:
            if i + 2 >= len(path) or path[i + 1] not in _HEX or path[i + 2] not in _HEX:
                return None
            if path[i + 1] == "0" and path[i + 2] == "0":
                return None
            i = path.find("%", i + 3)
        path = _ESCAPE.sub(_decode_unreserved, path)
    segments: list[str] = []
    parts = path.split("/")
    last = len(parts) - 1
    trailing = False
    for index, part in enumerate(parts[1:], start=1):
        if part == "" or part == ".":
            trailing = index == last
            continue
        if part == "..":
            if not segments:
                return None
            segments.pop()
            trailing = index == last
            continue
        segments.append(part)
        trailing = False
    result = "/" + "/".join(segments)
    if trailing and segments:
        result += "/"
    return result
