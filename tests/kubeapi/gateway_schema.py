"""What the Gateway API CRDs' schemas (config/crd/standard, v1) do to status, as the API server applies them.

- Defaults: a GatewayClass or Gateway without status (or without status.conditions) reads back with
  the CRD's default conditions, `Unknown` / `Pending` "Waiting for controller" stamped 1970-01-01,
  which is what a controller finds on a new object.
- Validation of a status write: metav1.Condition (type, status, reason, message, lastTransitionTime
  required; status True/False/Unknown; reason and type patterns; lastTransitionTime a date-time;
  observedGeneration >= 0; at most 8, unique types), listener status (name, attachedRoutes,
  conditions), addresses (an IPAddress must be an IP, a Hostname a DNS name; at most 16), HTTPRoute
  status.parents (required; at most 32; parentRef.name, controllerName, at least one condition).
A violation is a 422 Invalid naming the field, as the real server answers.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any

from .errors import ApiError

_PENDING = [{"lastTransitionTime": "1970-01-01T00:00:00Z", "message": "Waiting for controller", "reason": "Pending",
             "status": "Unknown", "type": kind} for kind in ("Accepted", "Programmed")]
DEFAULT_CONDITIONS: dict[str, list[dict[str, Any]]] = {"GatewayClass": _PENDING[:1], "Gateway": _PENDING}

_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_CONDITION_TYPE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                             r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$")
_CONTROLLER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
                         r"/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def default_status(kind: str, obj: dict[str, Any]) -> None:
    """Fill in the CRD's status defaults (the API server applies them whenever the object is read)."""
    conditions = DEFAULT_CONDITIONS.get(kind)
    if conditions is None:
        return
    status = obj.get("status")
    if not isinstance(status, dict):
        obj["status"] = {"conditions": copy.deepcopy(conditions)}
    elif "conditions" not in status:
        status["conditions"] = copy.deepcopy(conditions)


class _Invalid(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def validate_status(kind: str, group: str, obj: dict[str, Any]) -> None:
    """Raise 422 when `obj`'s status breaks its CRD schema (kinds without a check pass)."""
    status = obj.get("status")
    try:
        if kind in ("HTTPRoute", "TLSRoute", "GRPCRoute") and status is not None:
            _route(_object(status, "status"))
        elif kind in ("GatewayClass", "Gateway") and status is not None:
            status = _object(status, "status")
            _conditions(status.get("conditions"), "status.conditions", required=False)
            if kind == "GatewayClass":
                _list(status.get("supportedFeatures"), "status.supportedFeatures", 64, required=False)
            else:
                _addresses(status.get("addresses"))
                _listeners(status.get("listeners"))
    except _Invalid as err:
        name = obj.get("metadata", {}).get("name", "")
        raise ApiError(422, "Invalid", f'{kind}.{group} "{name}" is invalid: {err}') from None


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(path, f'Invalid value: "{type(value).__name__}": {path} must be of type object')
    return value


def _list(value: Any, path: str, most: int, *, required: bool = True) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _Invalid(path, "Required value" if value is None else f"Invalid value: {path} must be of type array")
    if len(value) > most:
        raise _Invalid(path, f"Too many: {len(value)}: must have at most {most} items")
    return value


def _text(entry: dict[str, Any], key: str, path: str, pattern: re.Pattern[str] | None = None,
          most: int = 32768) -> str:
    value = entry.get(key)
    if value is None:
        raise _Invalid(f"{path}.{key}", "Required value")
    if not isinstance(value, str) or len(value) > most:
        raise _Invalid(f"{path}.{key}", f"Invalid value: {value!r}")
    if pattern is not None and not pattern.match(value):
        raise _Invalid(f"{path}.{key}", f'Invalid value: "{value}": {path}.{key} in body should match '
                                        f"'{pattern.pattern}'")
    return value


def _conditions(value: Any, path: str, *, required: bool = True, least: int = 0) -> None:
    items = _list(value, path, 8, required=required)
    if len(items) < least:
        raise _Invalid(path, f"Invalid value: {len(items)}: {path} in body should have at least {least} items")
    types = set()
    for i, cond in enumerate(items):
        where = f"{path}[{i}]"
        cond = _object(cond, where)
        kind = _text(cond, "type", where, _CONDITION_TYPE, 316)
        if kind in types:
            raise _Invalid(f"{where}", f'Duplicate value: map[string]interface {{}}{{"type":"{kind}"}}')
        types.add(kind)
        if cond.get("status") not in ("True", "False", "Unknown"):
            raise _Invalid(f"{where}.status", f'Unsupported value: {cond.get("status")!r}: supported values: '
                                              '"True", "False", "Unknown"')
        _text(cond, "reason", where, _REASON, 1024)
        _text(cond, "message", where)
        _text(cond, "lastTransitionTime", where, _DATE_TIME)
        generation = cond.get("observedGeneration")
        if generation is not None and (type(generation) is not int or generation < 0):
            raise _Invalid(f"{where}.observedGeneration", f"Invalid value: {generation!r}")


def _addresses(value: Any) -> None:
    for i, entry in enumerate(_list(value, "status.addresses", 16, required=False)):
        where = f"status.addresses[{i}]"
        entry = _object(entry, where)
        address = _text(entry, "value", where, most=253)
        kind = entry.get("type", "IPAddress")
        if kind == "IPAddress":
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise _Invalid(f"{where}.value", f'Invalid value: "{address}": must be an IP address') from None
        elif kind == "Hostname" and not _HOSTNAME.match(address):
            raise _Invalid(where, "Invalid value: Hostname value must only contain valid characters")


def _listeners(value: Any) -> None:
    names = set()
    for i, entry in enumerate(_list(value, "status.listeners", 64, required=False)):
        where = f"status.listeners[{i}]"
        entry = _object(entry, where)
        name = _text(entry, "name", where, most=253)
        if name in names:
            raise _Invalid(where, f'Duplicate value: map[string]interface {{}}{{"name":"{name}"}}')
        names.add(name)
        if type(entry.get("attachedRoutes")) is not int:
            raise _Invalid(f"{where}.attachedRoutes", "Required value")
        _conditions(entry.get("conditions"), f"{where}.conditions")
        for j, group_kind in enumerate(_list(entry.get("supportedKinds"), f"{where}.supportedKinds", 8,
                                             required=False)):
            _text(_object(group_kind, f"{where}.supportedKinds[{j}]"), "kind", f"{where}.supportedKinds[{j}]")


def _route(status: dict[str, Any]) -> None:
    for i, entry in enumerate(_list(status.get("parents"), "status.parents", 32)):
        where = f"status.parents[{i}]"
        entry = _object(entry, where)
        ref = _object(entry.get("parentRef"), f"{where}.parentRef")
        _text(ref, "name", f"{where}.parentRef", most=253)
        _text(entry, "controllerName", where, _CONTROLLER, 253)
        _conditions(entry.get("conditions"), f"{where}.conditions", least=1)
