"""Value readers shared by the annotation parsers (ingress-nginx's parser helpers)."""

from __future__ import annotations


class Invalid(ValueError):
    """An annotation value that cannot be used; the message says what was expected."""


def boolean(value: str) -> bool:
    """"true" or "false", any case, surrounding blanks ignored (as ingress-nginx's GetBoolAnnotation)."""
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise Invalid(f'{value!r} is not "true" or "false"')
