"""Ingress annotations, ingress-nginx style: one small parser per annotation, one registry.

Every annotation is read under both prefixes, `pyngress.dev/` first (ours wins), then
`nginx.ingress.kubernetes.io/` (so manifests written for ingress-nginx keep working). A parser
takes the value as written and returns a typed value or raises `Invalid`; the value then keeps
its default and the Ingress gets a warning naming the annotation. Annotations under those prefixes
that no parser knows are reported too: a setting that silently does nothing is worse than a
warning.

Adding an annotation: a module here with `NAME`, `DEFAULT` and `parse(value)`, a field of the
same name in `IngressAnnotations`, and one line in `REGISTRY`. The translator reads the field;
the build's checksum covers whatever the annotation changes in the routes it compiles to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from proxy.routing.ingress.annotations import enable_opentelemetry, force_ssl_redirect, ssl_redirect
from proxy.routing.ingress.annotations.values import Invalid

PREFIXES = ("pyngress.dev/", "nginx.ingress.kubernetes.io/")

# The annotations honoured, each a module with NAME, DEFAULT and parse(value).
REGISTRY: tuple[ModuleType, ...] = (
    ssl_redirect,
    force_ssl_redirect,
    enable_opentelemetry,
)


@dataclass(frozen=True, slots=True)
class IngressAnnotations:
    """The typed values of one Ingress's annotations (defaults where absent or invalid)."""

    ssl_redirect: bool = ssl_redirect.DEFAULT
    force_ssl_redirect: bool = force_ssl_redirect.DEFAULT
    enable_opentelemetry: bool | None = enable_opentelemetry.DEFAULT


DEFAULTS = IngressAnnotations()
_FIELD = {module.NAME: module.NAME.replace("-", "_") for module in REGISTRY}
_BY_NAME = {module.NAME: module for module in REGISTRY}


def annotations_of(ingress: Mapping[str, Any]) -> Mapping[str, Any]:
    """The annotations mapping of an object ({} when absent or malformed)."""
    meta = ingress.get("metadata")
    # `type(...) is dict` first: raw objects are dicts, and the ABC check costs ten times more.
    found = meta.get("annotations") if type(meta) is dict or isinstance(meta, Mapping) else None
    return found if type(found) is dict or isinstance(found, Mapping) else {}


def parse_annotations(annotations: Mapping[str, Any]) -> tuple[IngressAnnotations, list[str]]:
    """The typed values and, as messages, every problem (invalid value, unknown annotation)."""
    if not annotations:
        return DEFAULTS, []
    values: dict[str, Any] = {}
    problems: list[str] = []
    decided: set[str] = set()
    for key in sorted(annotations, key=_our_first):
        name = _short_name(key)
        if name is None:
            continue
        module = _BY_NAME.get(name)
        if module is None:
            problems.append(f"annotation {key} is not supported; ignored")
            continue
        if name in decided:
            continue  # the pyngress.dev/ spelling was read first and wins
        value = annotations[key]
        try:
            if not isinstance(value, str):
                raise Invalid(f"must be a string, got {value!r:.60}")
            values[_FIELD[name]] = module.parse(value)
            decided.add(name)
        except Invalid as error:
            problems.append(f"annotation {key}: {error}; {_default_text(module.DEFAULT)} used")
    return (replace(DEFAULTS, **values) if values else DEFAULTS), problems


def _short_name(key: Any) -> str | None:
    if isinstance(key, str):
        for prefix in PREFIXES:
            if key.startswith(prefix):
                return key[len(prefix):]
    return None


def _our_first(key: Any) -> tuple[int, str]:
    text = key if isinstance(key, str) else ""
    return (0 if text.startswith(PREFIXES[0]) else 1, text)


def _default_text(value: Any) -> str:
    if value is None:
        return "the process's default"
    if isinstance(value, bool):
        return f'the default "{str(value).lower()}"'
    return f"the default {value!r}"


__all__ = ["DEFAULTS", "PREFIXES", "REGISTRY", "IngressAnnotations", "Invalid", "annotations_of",
           "parse_annotations"]
