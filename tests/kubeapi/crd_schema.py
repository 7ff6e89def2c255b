"""A CustomResourceDefinition's OpenAPI v3 schema applied as the API server applies it to a write that
`kubectl apply` sends (field validation Strict, kubectl's default since 1.27): unknown fields, wrong
types, values outside `enum`, `minimum`/`maximum`, `minLength`/`maxLength`, `pattern`,
`minItems`/`maxItems`, `minProperties` and missing `required` fields are refused with a 422 naming the
field. CEL rules (`x-kubernetes-validations`) are not evaluated (our CRD has none), nor `format`.

`structural_problems` checks what makes a schema structural (every node typed, no
`x-kubernetes-preserve-unknown-fields`, objects with properties or additionalProperties), which the
API server requires of a v1 CRD.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .errors import ApiError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


@cache
def load_crd(name: str) -> dict[str, Any]:
    """A CRD of deploy/crds/ by file name (e.g. backendtrafficpolicies.yaml)."""
    return yaml.safe_load((DEPLOY / "crds" / name).read_text())


def schema_of(crd: dict[str, Any], version: str) -> dict[str, Any]:
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return found["schema"]["openAPIV3Schema"]


def problems(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Every violation of `schema` by `value`, as the API server words them (`path: problem`)."""
    found: list[str] = []
    _check(schema, value, path, found)
    return found


def validate(schema: dict[str, Any], obj: dict[str, Any], *, kind: str, group: str) -> None:
    """Raise 422 Invalid when `obj` breaks its schema (metadata, apiVersion and kind are the server's)."""
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    found = problems({**schema, "properties": {k: v for k, v in schema["properties"].items()
                                               if k not in ("metadata", "apiVersion", "kind")}}, body)
    if found:
        name = (obj.get("metadata") or {}).get("name", "")
        raise ApiError(422, "Invalid", f'{kind}.{group} "{name}" is invalid: ' + ", ".join(found))


def _check(schema: dict[str, Any], value: Any, path: str, found: list[str]) -> None:
    where = path or "<root>"
    kind = schema.get("type")
    if kind == "integer":
        ok = type(value) is int
    elif kind == "number":
        ok = type(value) in (int, float)
    else:
        ok = isinstance(value, _TYPES[kind]) and not (kind != "boolean" and isinstance(value, bool))
    if not ok:
        found.append(f'{where}: Invalid value: "{type(value).__name__}": {where} in body must be of type {kind}')
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(f'"{item}"' for item in schema["enum"])
        found.append(f"{where}: Unsupported value: {value!r}: supported values: {supported}")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{where}: Invalid value: {value}: {where} in body should be greater than or equal to "
                         f"{schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{where}: Invalid value: {value}: {where} in body should be less than or equal to "
                         f"{schema['maximum']}")
    elif kind == "string":
        if len(value) < schema.get("minLength", 0):
            found.append(f"{where}: Invalid value: \"{value}\": {where} in body should be at least "
                         f"{schema['minLength']} chars long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{where}: Too long: may not be more than {schema['maxLength']} bytes")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            found.append(f"{where}: Invalid value: \"{value}\": {where} in body should match '{schema['pattern']}'")
    elif kind == "array":
        if len(value) < schema.get("minItems", 0):
            found.append(f"{where}: Invalid value: {len(value)}: {where} in body should have at least "
                         f"{schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(f"{where}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{index}]", found)
    elif kind == "object":
        properties = schema.get("properties")
        if properties is not None:
            for name, item in value.items():
                child = f"{path}.{name}" if path else name
                if name not in properties:
                    found.append(f'{child}: unknown field "{child}"')
                elif item is not None:
                    _check(properties[name], item, child, found)
        for name in schema.get("required", ()):
            if value.get(name) is None:
                child = f"{path}.{name}" if path else name
                found.append(f"{child}: Required value")
        if len(value) < schema.get("minProperties", 0):
            found.append(f"{where}: Invalid value: {len(value)}: {where} in body should have at least "
                         f"{schema['minProperties']} properties")


@cache
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


def structural_problems(schema: Any, path: str = "") -> list[str]:
    """Why a schema is not structural (empty: it is), and whether it keeps unknown fields anywhere."""
    found: list[str] = []
    if not isinstance(schema, dict):
        return [f"{path or '<root>'}: not a schema"]
    if "x-kubernetes-preserve-unknown-fields" in schema:
        found.append(f"{path}: x-kubernetes-preserve-unknown-fields")
    if schema.get("type") not in ("object", "array", "string", "integer", "number", "boolean"):
        found.append(f"{path or '<root>'}: no type")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as error:
            found.append(f"{path}: pattern: {error}")
    if schema.get("type") == "object":
        if "properties" not in schema and "additionalProperties" not in schema and path != ".metadata":
            found.append(f"{path or '<root>'}: an object without properties keeps anything")
        for name, child in (schema.get("properties") or {}).items():
            found.extend(structural_problems(child, f"{path}.{name}"))
        for name in schema.get("required", ()):
            if name not in (schema.get("properties") or {}):
                found.append(f"{path}: required {name} is not a property")
    if schema.get("type") == "array":
        found.extend(structural_problems(schema.get("items"), f"{path}[]"))
    return found
