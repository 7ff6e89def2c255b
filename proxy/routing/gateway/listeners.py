"""One Gateway object → its listeners, each with the verdicts its status reports.

Everything that can be judged from one Gateway (plus the Secrets, ReferenceGrants and Namespaces it
names) happens here: supported protocols, TLS certificates, which routes a listener admits, and
conflicts between its own listeners. What depends on other Gateways (two Gateways asking for one
port with different protocols) and on routes (attachedRoutes) is the processor's.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.objects import Key, Warning
from proxy.routing.fields import Malformed, mapping, require_object, sequence, text
from proxy.routing.gateway.grants import GATEWAY_GROUP, Grants
from proxy.routing.gateway.hostnames import check_hostname, covers
from proxy.routing.gateway.meta import age, generation
from proxy.routing.gateway.selectors import LabelSelector, parse_selector

HTTP = "HTTP"
HTTPS = "HTTPS"
TLS = "TLS"  # tls.mode Passthrough only: TLSRoutes, the TLS stream spliced to a pod (proxy.passthrough)
HTTP_ROUTE = (GATEWAY_GROUP, "HTTPRoute")
TLS_ROUTE = (GATEWAY_GROUP, "TLSRoute")
GRPC_ROUTE = (GATEWAY_GROUP, "GRPCRoute")
_PROTOCOLS = (HTTP, HTTPS, TLS)
# What is on the wire: HTTPS and TLS listeners share a port (the ClientHello's server name tells them apart).
WIRE = {HTTP: HTTP, HTTPS: TLS, TLS: TLS}
_FROM = ("Same", "All", "Selector", "None")
_ADDRESS_TYPES = ("IPAddress", "Hostname")

# (ok, reason, message) of one condition.
Verdict = tuple[bool, str, str]
_OK_ACCEPTED: Verdict = (True, "Accepted", "")
_OK_RESOLVED: Verdict = (True, "ResolvedRefs", "")


@dataclass(slots=True, eq=False)
class Listener:
    """One listener of one Gateway and what its status will say."""

    gateway: Key
    name: str
    port: int
    protocol: str
    hostname: str  # "" when it has none
    local_port: int
    namespaces: str  # allowedRoutes.namespaces.from
    selector: LabelSelector | None
    supported_kinds: tuple[tuple[str, str], ...]
    certificate: Key | None  # the Secret of an HTTPS listener whose first usable certificateRef it is
    accepted: Verdict = _OK_ACCEPTED
    resolved: Verdict = _OK_RESOLVED
    conflicted: tuple[str, str] | None = None  # (reason, message)
    overlapping: str = ""  # message of an OverlappingTLSConfig condition; "" when none

    @property
    def serves(self) -> bool:
        """Accepted and able to carry traffic (an HTTPS listener needs a usable certificate)."""
        return self.accepted[0] and (self.protocol != HTTPS or self.certificate is not None)

    def admits(self, namespace: str, labels: Callable[[str], Mapping[str, str]],
               kind: tuple[str, str] = HTTP_ROUTE) -> bool:
        """Whether a route of `kind` in `namespace` may attach (allowedRoutes: kinds and namespaces)."""
        if kind not in self.supported_kinds:
            return False
        source = self.namespaces
        if source == "All":
            return True
        if source == "Same":
            return namespace == self.gateway[0]
        if source == "Selector":
            return self.selector is not None and self.selector.matches(labels(namespace))
        return False

    def reject(self, reason: str, message: str) -> None:
        """Not accepted; the first reason given is the one reported."""
        if self.accepted[0]:
            self.accepted = (False, reason, message)


class GatewayEntry:
    """One Gateway of ours: its listeners and the Gateway-wide verdicts."""

    __slots__ = ("accepted", "age", "generation", "key", "listeners", "obj", "programmed", "warnings")

    def __init__(self, key: Key, obj: Any) -> None:
        self.key = key
        self.obj = obj
        self.generation = generation(obj)
        self.age = age(obj)
        self.listeners: list[Listener] = []
        # Gateway-wide problems: Accepted False (InvalidParameters, UnsupportedAddress, Invalid), Programmed
        # False (AddressNotUsable). Listener problems are summed up later (ListenersNotValid).
        self.accepted: Verdict = (True, "Accepted", "")
        self.programmed: Verdict = (True, "Programmed", "")
        self.warnings: list[Warning] = []

    def warn(self, message: str) -> None:
        self.warnings.append(Warning("Gateway", self.key[0], self.key[1], message))


class SecretChecks:
    """Whether a Secret holds a usable TLS key pair, judged once per Secret (per translation)."""

    __slots__ = ("_secrets", "_seen")

    def __init__(self, secrets: Mapping[Key, Any]) -> None:
        self._secrets = secrets
        self._seen: dict[Key, str] = {}

    @property
    def used(self) -> frozenset[Key]:
        """Every Secret a listener referenced (found or not): the builder re-translates when one changes."""
        return frozenset(self._seen)

    def problem(self, key: Key) -> str:
        """"" when the Secret is a kubernetes.io/tls Secret with a PEM certificate and key, else why not."""
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = _secret_problem(self._secrets.get(key))
        return found


def _secret_problem(obj: Any) -> str:
    if obj is None:
        return "not found"
    if not isinstance(obj, dict) or obj.get("type") != "kubernetes.io/tls":
        return "is not of type kubernetes.io/tls"
    data = obj.get("data")
    if not isinstance(data, dict):
        return "has no data"
    pem: dict[str, bytes] = {}
    for field in ("tls.crt", "tls.key"):
        value = data.get(field)
        if not isinstance(value, str) or not value:
            return f"has no {field}"
        try:
            pem[field] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return f"{field} is not base64"
    if b"-----BEGIN CERTIFICATE-----" not in pem["tls.crt"]:
        return "tls.crt holds no PEM certificate"
    if b"PRIVATE KEY-----" not in pem["tls.key"]:
        return "tls.key holds no PEM private key"
    return ""


def parse_gateway(key: Key, obj: Any, *, offset: int, grants: Grants, secrets: SecretChecks) -> GatewayEntry:
    """Validate one Gateway of ours; every problem becomes a verdict (and a warning), never an exception."""
    entry = GatewayEntry(key, obj)
    try:
        spec = mapping(require_object(obj, "Gateway"), "spec", "")
        _gateway_wide(entry, spec)
        items = sequence(spec, "listeners", "spec.")
        frontend = mapping(spec, "tls", "spec.").get("frontend")
    except Malformed as error:
        entry.accepted = (False, "Invalid", str(error))
        entry.warn(f"not accepted: {error}")
        return entry
    names: set[str] = set()
    for index, item in enumerate(items):
        listener = _listener(entry, index, item, offset=offset, grants=grants, secrets=secrets)
        if listener is None:
            continue
        if listener.name in names:
            listener.reject("UnsupportedValue", f"another listener is named {listener.name!r}")
        names.add(listener.name)
        if frontend and listener.protocol == HTTPS:
            listener.reject("UnsupportedValue", "spec.tls.frontend (client certificate validation) is not supported")
        entry.listeners.append(listener)
    _find_conflicts(entry.listeners)
    for listener in entry.listeners:
        if not listener.accepted[0]:
            entry.warn(f"listener {listener.name!r} not accepted: {listener.accepted[2]}")
        elif not listener.resolved[0]:
            entry.warn(f"listener {listener.name!r}: {listener.resolved[2]}")
    return entry


def _gateway_wide(entry: GatewayEntry, spec: dict[str, Any]) -> None:
    infrastructure = mapping(spec, "infrastructure", "spec.")
    if infrastructure.get("parametersRef") is not None:
        entry.accepted = (False, "InvalidParameters",
                          "spec.infrastructure.parametersRef is not supported: this controller takes no parameters")
        entry.warn(f"not accepted: {entry.accepted[2]}")
    requested = []
    for index, item in enumerate(sequence(spec, "addresses", "spec.")):
        at = f"spec.addresses[{index}]."
        item = require_object(item, at[:-1])
        kind = text(item, "type", at) or "IPAddress"
        if kind not in _ADDRESS_TYPES:
            if entry.accepted[0]:
                entry.accepted = (False, "UnsupportedAddress", f"address type {kind!r} is not supported")
                entry.warn(f"not accepted: {entry.accepted[2]}")
            continue
        value = text(item, "value", at)
        if value:
            requested.append(value)
    if requested and entry.accepted[0]:
        message = (f"cannot assign the requested addresses {', '.join(requested)}: the Gateway is reached at the "
                   "addresses of the proxy's Service")
        entry.programmed = (False, "AddressNotUsable", message)
        entry.warn(entry.programmed[2])
    tls = spec.get("tls")
    if isinstance(tls, dict) and tls.get("backend") is not None:
        entry.warn("spec.tls.backend (client certificates towards backends) is not supported; ignored")


def _listener(entry: GatewayEntry, index: int, item: Any, *, offset: int, grants: Grants,
              secrets: SecretChecks) -> Listener | None:
    at = f"spec.listeners[{index}]"
    try:
        item = require_object(item, at)
        name = text(item, "name", f"{at}.", required=True)
    except Malformed as error:
        entry.warn(f"{error}; listener ignored")
        return None
    at = f"listener {name!r}"
    port = item.get("port")
    protocol = item.get("protocol")
    listener = Listener(entry.key, name, port if type(port) is int else 0,
                        protocol if isinstance(protocol, str) else "", "", 0, "Same", None, (), None)
    try:
        if type(port) is not int or not 0 < port < 65536:
            raise Malformed(f"port must be a port number (1-65535), got {port!r:.20}")
        listener.local_port = port + offset
        if not isinstance(protocol, str) or protocol not in _PROTOCOLS:
            listener.accepted = (False, "UnsupportedProtocol",
                                 f"protocol {protocol!r:.40} is not supported (HTTP, HTTPS and TLS are)")
            listener.supported_kinds = ()
            return listener
        if item.get("hostname") is not None:
            listener.hostname = check_hostname(item["hostname"], "hostname")
        _allowed_routes(listener, mapping(item, "allowedRoutes", ""))
        if protocol == TLS:
            _passthrough(listener, item.get("tls"))
        elif protocol == HTTPS:
            _tls(entry, listener, item.get("tls"), grants=grants, secrets=secrets)
        elif item.get("tls") is not None:
            entry.warn(f"{at}: tls is ignored on an HTTP listener")
    except Malformed as error:
        listener.reject("UnsupportedValue", str(error))
    return listener


def _allowed_routes(listener: Listener, allowed: dict[str, Any]) -> None:
    namespaces = mapping(allowed, "namespaces", "allowedRoutes.")
    source = text(namespaces, "from", "allowedRoutes.namespaces.") or "Same"
    if source not in _FROM:
        raise Malformed(f"allowedRoutes.namespaces.from {source!r:.40} is not Same, All, Selector or None")
    listener.namespaces = source
    if source == "Selector":
        if namespaces.get("selector") is None:
            raise Malformed("allowedRoutes.namespaces.selector is required with from: Selector")
        listener.selector = parse_selector(namespaces["selector"], "allowedRoutes.namespaces.selector")
    kinds = sequence(allowed, "kinds", "allowedRoutes.")
    served = (TLS_ROUTE,) if listener.protocol == TLS else (HTTP_ROUTE, GRPC_ROUTE)
    if not kinds:
        listener.supported_kinds = served
        return
    valid: list[tuple[str, str]] = []
    invalid: list[str] = []
    for index, kind in enumerate(kinds):
        kind = require_object(kind, f"allowedRoutes.kinds[{index}]")
        group = kind.get("group")
        group = GATEWAY_GROUP if group is None else group
        name = text(kind, "kind", f"allowedRoutes.kinds[{index}].", required=True)
        if (group, name) in served:
            if (group, name) not in valid:
                valid.append((group, name))
        else:
            invalid.append(f"{group}/{name}" if group else name)
    listener.supported_kinds = tuple(valid)
    if invalid:
        supported = " and ".join(kind for _, kind in served)
        listener.resolved = (False, "InvalidRouteKinds", f"route kinds {', '.join(invalid)} are not supported on "
                                                         f"{listener.protocol} ({supported} "
                                                         f"{'are' if len(served) > 1 else 'is'})")


def _passthrough(listener: Listener, tls: Any) -> None:
    """A TLS listener: mode Passthrough (the default is Terminate, which needs a TLSRoute terminated here: not
    supported; the listener is refused)."""
    tls = require_object(tls, "tls") if tls is not None else {}
    mode = text(tls, "mode", "tls.") or "Terminate"
    if mode != "Passthrough":
        raise Malformed(f"tls.mode {mode!r:.40} is not supported on TLS (Passthrough is)")


def _tls(entry: GatewayEntry, listener: Listener, tls: Any, *, grants: Grants, secrets: SecretChecks) -> None:
    if tls is None:
        listener.resolved = (False, "InvalidCertificateRef", "an HTTPS listener needs tls.certificateRefs")
        return
    tls = require_object(tls, "tls")
    mode = text(tls, "mode", "tls.") or "Terminate"
    if mode != "Terminate":
        raise Malformed(f"tls.mode {mode!r:.40} is not supported on HTTPS (Terminate is)")
    refs = sequence(tls, "certificateRefs", "tls.")
    if not refs:
        listener.resolved = (False, "InvalidCertificateRef", "an HTTPS listener needs tls.certificateRefs")
        return
    gateway_namespace = entry.key[0]
    problems: list[tuple[str, str]] = []
    for index, ref in enumerate(refs):
        at = f"tls.certificateRefs[{index}]"
        ref = require_object(ref, at)
        group = ref.get("group") or ""
        kind = ref.get("kind") or "Secret"
        name = text(ref, "name", f"{at}.", required=True)
        namespace = text(ref, "namespace", f"{at}.") or gateway_namespace
        if (group, kind) != ("", "Secret"):
            problems.append(("InvalidCertificateRef",
                             f"{at} refers to {group or 'core'}/{kind} {name}: only Secrets are supported"))
            continue
        if not grants.permits(from_kind="Gateway", from_namespace=gateway_namespace, to_kind="Secret",
                              to_namespace=namespace, to_name=name):
            message = f"{at}: no ReferenceGrant in namespace {namespace} allows this Gateway to use Secret {name}"
            problems.append(("RefNotPermitted", message))
            continue
        problem = secrets.problem((namespace, name))
        if problem:
            problems.append(("InvalidCertificateRef", f"{at}: Secret {namespace}/{name} {problem}"))
            continue
        if listener.certificate is None:
            listener.certificate = (namespace, name)
    if problems:
        reason = problems[0][0]
        listener.resolved = (False, reason, "; ".join(message for _, message in problems))


def _find_conflicts(listeners: list[Listener]) -> None:
    """Conflicted listeners (one port, two protocols; or one port, protocol and hostname twice) are
    all refused, as the spec asks: none of them is picked as the winner."""
    by_port: dict[int, list[Listener]] = {}
    for listener in listeners:
        if listener.protocol in _PROTOCOLS and listener.local_port:
            by_port.setdefault(listener.port, []).append(listener)
    for port, group in by_port.items():
        protocols = {WIRE[listener.protocol] for listener in group}
        if len(protocols) > 1:
            for listener in group:
                message = f"port {port} is used with protocols {' and '.join(sorted(protocols))}"
                listener.conflicted = ("ProtocolConflict", message)
                listener.reject("ProtocolConflict", message)
            continue
        by_host: dict[str, list[Listener]] = {}
        for listener in group:
            by_host.setdefault(listener.hostname, []).append(listener)
        for hostname, same in by_host.items():
            if len(same) > 1:
                names = ", ".join(repr(listener.name) for listener in same)
                message = f"listeners {names} all use port {port} with hostname {hostname or '(none)'}"
                for listener in same:
                    listener.conflicted = ("HostnameConflict", message)
                    listener.reject("HostnameConflict", message)
        secured = [listener for listener in group
                   if listener.protocol == HTTPS and listener.hostname and listener.conflicted is None]
        for listener in secured:
            others = [other.name for other in secured if other is not listener
                      and (covers(other.hostname, listener.hostname) or covers(listener.hostname, other.hostname))]
            if others:
                listener.overlapping = (f"hostname {listener.hostname} overlaps with listener(s) "
                                        f"{', '.join(repr(name) for name in others)} on port {port}")
