"""Typed reads of raw Kubernetes object fields.

Objects reach the builder as parsed JSON/YAML and may hold anything. Each reader
returns the expected type or raises `Malformed` with the field's path, which the
builder turns into a Warning for that one object; JSON `null` counts as absent.
"""

from __future__ import annotations

from typing import Any


class Malformed(ValueError):
    """A field has the wrong shape; the message names the field and what was expected."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def mapping(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> dict[str, Any]:
    """A nested object; {} when absent and not required."""
    value = obj.get(key)
    if value is None:
        if required:
            raise Malformed(f"{where}{key} is missing")
        return {}
    if not isinstance(value, dict):
        raise Malformed(f"{where}{key} must be an object, got {_describe(value)}")
    return value


def sequence(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    """A list; [] when absent."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{where}{key} must be a list, got {_describe(value)}")
    return value


def text(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> str:
    """A string; "" when absent and not required."""
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise Malformed(f"{where}{key} is missing")
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{where}{key} must be a string, got {_describe(value)}")
    return value


def port_number(obj: dict[str, Any], key: str, where: str) -> int | None:
    """A TCP/UDP port number (1-65535); None when absent."""
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not int or not 0 < value < 65536:
        raise Malformed(f"{where}{key} must be a port number (1-65535), got {_describe(value)}")
    return value


def require_object(value: Any, what: str) -> dict[str, Any]:
    """The top of an object (or a list item) must itself be an object."""
    if not isinstance(value, dict):
        raise Malformed(f"{what} must be an object, got {_describe(value)}")
    return value
