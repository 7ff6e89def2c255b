"""Label and field selectors, parsed the way the API server reads them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_CMP_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([^,()\s!=]*)\s*$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the key too.
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b` is two requirements."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    requirements = []
    for part in _split_top_level(text or ""):
        cmp = _CMP_RE.match(part)
        if cmp:
            key, op, value = cmp.groups()
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", frozenset([value])))
            continue
        found = _SET_RE.match(part)
        if not found:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part.strip()!r}")
        negated, key, op, values = found.groups()
        if op:
            if negated:
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {part.strip()!r}")
            requirements.append(Requirement(key, op, frozenset(v.strip() for v in values.split(",") if v.strip())))
        else:
            requirements.append(Requirement(key, "!exists" if negated else "exists"))
    return tuple(requirements)


def _field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def parse_field_selector(text: str | None, allowed: tuple[str, ...]) -> tuple[tuple[str, bool, str], ...]:
    """(field path, must equal?, value) triples; unknown fields answer 400 as the API server does."""
    requirements = []
    for part in _split_top_level(text or ""):
        cmp = _CMP_RE.match(part)
        if not cmp:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part.strip()!r}")
        key, op, value = cmp.groups()
        if key not in ("metadata.name", "metadata.namespace", *allowed):
            raise ApiError(400, "BadRequest", f'field label not supported: "{key}"')
        requirements.append((key, op != "!=", value))
    return tuple(requirements)


def object_filter(labels: tuple[Requirement, ...], fields: tuple[tuple[str, bool, str], ...]) -> Callable[[dict], bool]:
    def matches(obj: dict[str, Any]) -> bool:
        obj_labels = obj.get("metadata", {}).get("labels") or {}
        if not all(r.matches(obj_labels) for r in labels):
            return False
        return all((_field_value(obj, path) == value) == equal for path, equal, value in fields)

    return matches
