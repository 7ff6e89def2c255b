"""One Ingress object → its validated hosts, paths and backends.

Everything that can be judged from a single Ingress happens here (field shapes,
host and path validity, backend references); what needs several Ingresses
(merging, conflicts) is the builder's job. A broken rule or path is dropped
with a warning and the rest of the Ingress still counts.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from proxy.objects import Warning
from proxy.routing.fields import Malformed, mapping, port_number, require_object, sequence, text
from proxy.routing.model import PATH_EXACT, PATH_IMPLEMENTATION_SPECIFIC, PATH_PREFIX
from proxy.routing.paths import normalize_path

# An RFC 1123 label: at most 63 characters.
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
# RFC 1123 subdomain, as Kubernetes validates `spec.rules[].host`; a wildcard is "*." and such a name.
_HOST = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
_HOST_MAX = 253
# Service names are RFC 1035 labels (they start with a letter: they become DNS names).
_SERVICE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# Port names are IANA service names: at most 15 lower-case letters, digits and '-', at least one
# letter, no '-' at either end and never two in a row.
_PORT_NAME = re.compile(r"(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?")
# Request paths never carry these (the HTTP request line cannot), so a rule path holding one could never match.
_UNMATCHABLE = re.compile(r"[\x00-\x20\x7f]")
_PATH_TYPES = (PATH_EXACT, PATH_PREFIX, PATH_IMPLEMENTATION_SPECIFIC)


class Backend(NamedTuple):
    """A Service port as an Ingress names it; `port` is the number as a string or the port name."""

    service: str
    port: str


class PathRule(NamedTuple):
    """One valid path of one rule."""

    host: str  # lower-case; "" for a rule without host; "*.example.com" for a wildcard
    path: str  # as written in the Ingress
    path_type: str
    # Table key: the normalized path (Exact), or it without trailing "/" (Prefix, ImplementationSpecific).
    key: str
    backend: Backend


class IngressRules(NamedTuple):
    """What one Ingress contributes, in the order it was written."""

    namespace: str
    name: str
    hosts: tuple[str, ...]  # every valid non-empty host its rules name (deduplicated)
    paths: tuple[PathRule, ...]
    default: Backend | None


def age(obj: Any) -> tuple[int, float]:
    """Sort key: older Ingresses first; objects without a readable creationTimestamp last."""
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            stamp = metadata.get("creationTimestamp")
            if isinstance(stamp, str):
                try:
                    moment = datetime.fromisoformat(stamp)
                except ValueError:
                    return (1, 0.0)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                return (0, moment.timestamp())
    return (1, 0.0)


def check_host(host: str) -> str:
    """The lower-case table form of a rule host; raises Malformed for what Kubernetes would refuse."""
    lowered = host.lower()
    if len(lowered) > _HOST_MAX or not _HOST.fullmatch(lowered):
        raise Malformed(f"host {host!r} is not a DNS name or a '*.' wildcard")
    if lowered[0].isdigit() and lowered[-1].isdigit():
        try:
            ipaddress.ip_address(lowered)
        except ValueError:
            pass
        else:
            raise Malformed(f"host {host!r} is an IP address; Ingress hosts must be DNS names")
    return lowered


def parse_backend(obj: Any, where: str) -> Backend:
    """A `service` backend; `resource` backends and malformed ones raise Malformed."""
    return _plain_backend(obj) or _checked_backend(obj, where)


def _plain_backend(obj: Any) -> Backend | None:
    """The shape nearly every backend has, read without formatting any message; None for anything else,
    which is then re-read by `_checked_backend` for a precise message."""
    if type(obj) is dict and obj.get("resource") is None:
        service = obj.get("service")
        if type(service) is dict:
            name = service.get("name")
            port = service.get("port")
            if type(name) is str and type(port) is dict and _SERVICE.fullmatch(name):
                number = port.get("number")
                port_name = port.get("name")
                if port_name is None and type(number) is int and 0 < number < 65536:
                    return Backend(name, str(number))
                if number is None and type(port_name) is str and _valid_port_name(port_name):
                    return Backend(name, port_name)
    return None


def _valid_port_name(name: str) -> bool:
    return _PORT_NAME.fullmatch(name) is not None


def _checked_backend(obj: Any, where: str) -> Backend:
    if not isinstance(obj, dict):
        raise Malformed(f"{where} is missing" if obj is None else f"{where} must be an object")
    if obj.get("resource") is not None:
        raise Malformed(f"{where} is a resource backend, which is not supported")
    service = mapping(obj, "service", f"{where}.", required=True)
    name = text(service, "name", f"{where}.service.", required=True)
    if not _SERVICE.fullmatch(name):
        raise Malformed(f"{where}.service.name {name!r} is not a valid Service name")
    port = mapping(service, "port", f"{where}.service.", required=True)
    number = port_number(port, "number", f"{where}.service.port.")
    port_name = text(port, "name", f"{where}.service.port.")
    if number is not None and port_name:
        raise Malformed(f"{where}.service.port sets both number and name")
    if number is not None:
        return Backend(name, str(number))
    if not port_name:
        raise Malformed(f"{where}.service.port needs a number or a name")
    if not _valid_port_name(port_name):
        raise Malformed(f"{where}.service.port.name {port_name!r} is not a valid port name")
    return Backend(name, port_name)


def _plain_path(entry: Any, host: str) -> PathRule | None:
    """A well-formed path entry, read without formatting any message; None sends it to `parse_path`."""
    if type(entry) is not dict:
        return None
    path_type = entry.get("pathType")
    path = entry.get("path")
    if (path_type not in _PATH_TYPES or type(path) is not str or not path or path[0] != "/"
            or _UNMATCHABLE.search(path)):
        return None
    normalized = normalize_path(path)
    if normalized is None:
        return None
    backend = _plain_backend(entry.get("backend"))
    if backend is None:
        return None
    return PathRule(host, path, path_type, normalized if path_type == PATH_EXACT else normalized.rstrip("/"), backend)


def parse_path(entry: Any, *, host: str, where: str) -> PathRule:
    """One `http.paths[]` entry; raises Malformed for a path that cannot be served."""
    entry = require_object(entry, where)
    path_type = entry.get("pathType")
    if path_type is None or path_type == "":
        raise Malformed(f"{where}.pathType is missing")
    if path_type not in _PATH_TYPES:
        raise Malformed(f"{where}.pathType {path_type!r} is not Exact, Prefix or ImplementationSpecific")
    path = entry.get("path")
    if path is None or path == "":
        if path_type != PATH_IMPLEMENTATION_SPECIFIC:
            raise Malformed(f"{where}.path is missing")
        path = "/"  # the API allows an empty ImplementationSpecific path; it means everything
    elif type(path) is not str:
        raise Malformed(f"{where}.path must be a string, got {path!r:.60}")
    if path[0] != "/":
        raise Malformed(f"{where}.path {path!r} must start with '/'")
    if _UNMATCHABLE.search(path):
        raise Malformed(f"{where}.path {path!r} holds whitespace or control characters, which no request path can")
    normalized = normalize_path(path)
    if normalized is None:
        raise Malformed(f"{where}.path {path!r} cannot be normalized (it climbs above '/' or has a bad escape)")
    key = normalized if path_type == PATH_EXACT else normalized.rstrip("/")
    backend = parse_backend(entry.get("backend"), f"{where}.backend")
    return PathRule(host, path, path_type, key, backend)


def parse_ingress(
    obj: Any, *, namespace: str, name: str, hosts: dict[str, tuple[str, str]]
) -> tuple[IngressRules, list[Warning]]:
    """Validate one Ingress; `hosts` memoizes (host, problem) per raw host across a build (hosts repeat a lot)."""
    warnings: list[Warning] = []

    def warn(message: str) -> None:
        warnings.append(Warning("Ingress", namespace, name, message))

    try:
        spec = mapping(require_object(obj, "Ingress"), "spec", "")
        rules = sequence(spec, "rules", "spec.")
    except Malformed as error:
        warn(f"{error}; Ingress skipped")
        return IngressRules(namespace, name, (), (), None), warnings

    default = None
    if spec.get("defaultBackend") is not None:
        try:
            default = parse_backend(spec["defaultBackend"], "spec.defaultBackend")
        except Malformed as error:
            warn(f"{error}; defaultBackend ignored")

    named: dict[str, None] = {}
    paths: list[PathRule] = []
    for index, rule in enumerate(rules):
        where = f"spec.rules[{index}]"
        try:
            rule = require_object(rule, where)
            raw_host = rule.get("host")
            if raw_host is not None and type(raw_host) is not str:
                raw_host = text(rule, "host", f"{where}.")  # raises with the message
            host = ""
            if raw_host:
                checked = hosts.get(raw_host)
                if checked is None:
                    try:
                        checked = (check_host(raw_host), "")
                    except Malformed as error:
                        checked = ("", str(error))
                    hosts[raw_host] = checked
                host, problem = checked
                if problem:
                    raise Malformed(f"{where}.{problem}")
                named[host] = None
            http = rule.get("http")
            entries = http.get("paths") if type(http) is dict else None
            if type(entries) is not list:
                entries = sequence(mapping(rule, "http", f"{where}."), "paths", f"{where}.http.")
        except Malformed as error:
            warn(f"{error}; rule skipped")
            continue
        for number, entry in enumerate(entries):
            plain = _plain_path(entry, host)
            if plain is not None:
                paths.append(plain)
                continue
            try:
                paths.append(parse_path(entry, host=host, where=f"{where}.http.paths[{number}]"))
            except Malformed as error:
                warn(f"{error}; path skipped")
    return IngressRules(namespace, name, tuple(named), tuple(paths), default), warnings
