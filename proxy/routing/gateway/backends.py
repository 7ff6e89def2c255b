"""backendRefs → cluster keys: whether a reference can be served, and if not, the spec's reason.

A reference that cannot be served keeps its weight and gets `Backend(cluster="")`: its share of
the rule's requests is answered with 500, as the Gateway API asks. Only the Service's existence,
its port and the port's appProtocol are read here; endpoints are the cluster resolver's (a Service
without ready endpoints is served, with 503, like an Ingress backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.objects import Key
from proxy.routing.clusters import cluster_key, protocol_key
from proxy.routing.gateway.actions import BackendRef
from proxy.routing.gateway.grants import Grants
from proxy.routing.model import KIND_GRPC_ROUTE, PROTOCOL_H2C

# Service port appProtocols that cannot be spoken to. kubernetes.io/h2c (and h2c) are spoken in HTTP/2 without
# TLS (routing/clusters.py marks their clusters); a bare "grpc" names no wire protocol the Gateway API defines.
_UNSUPPORTED_PROTOCOLS = frozenset({"kubernetes.io/grpc", "grpc"})


class Resolution:
    """One backendRef's cluster key ("" when it cannot be served) and, if so, why."""

    __slots__ = ("cluster", "message", "reason")

    def __init__(self, cluster: str, reason: str = "", message: str = "") -> None:
        self.cluster = cluster
        self.reason = reason
        self.message = message


class BackendResolver:
    """Resolves backendRefs of routes (HTTPRoutes, GRPCRoutes, TLSRoutes) against one snapshot's Services and
    ReferenceGrants."""

    __slots__ = ("_grants", "_services", "reads", "used")

    def __init__(self, services: Mapping[Key, Any], grants: Grants) -> None:
        self._services = services
        self._grants = grants
        # Every Service a backendRef named and the object found (None: missing). A compilation stays valid while
        # these are the identical objects; the builder translates again when one of them changes.
        self.used: dict[Key, Any] = {}
        self.reads: dict[Key, Any] | None = None  # the same, for the route being compiled

    def resolve(self, ref: BackendRef, *, route_namespace: str, from_kind: str = "HTTPRoute") -> Resolution:
        where = f"backendRef {ref.namespace}/{ref.name}"
        if (ref.group, ref.kind) != ("", "Service"):
            return Resolution("", "InvalidKind", f"{where}: {ref.group or 'core'}/{ref.kind} is not a supported "
                                                 "backend kind (Service is)")
        if not self._grants.permits(from_kind=from_kind, from_namespace=route_namespace, to_kind="Service",
                                    to_namespace=ref.namespace, to_name=ref.name):
            return Resolution("", "RefNotPermitted", f"{where}: no ReferenceGrant in namespace {ref.namespace} "
                                                     f"allows {from_kind}s of namespace {route_namespace} to use it")
        service = self._services.get((ref.namespace, ref.name))
        self.used[(ref.namespace, ref.name)] = service
        if self.reads is not None:
            self.reads[(ref.namespace, ref.name)] = service
        if service is None:
            return Resolution("", "BackendNotFound", f"{where}: Service not found")
        if ref.port is None:
            return Resolution("", "BackendNotFound", f"{where}: port is required for a Service")
        # A GRPCRoute's backends are spoken HTTP/2 cleartext, whatever the port's appProtocol says.
        grpc = from_kind == KIND_GRPC_ROUTE
        problem = _port_problem(service, ref.port, check_protocol=not grpc)
        if problem:
            return Resolution("", *problem)
        key = cluster_key(ref.namespace, ref.name, str(ref.port))
        return Resolution(protocol_key(key, PROTOCOL_H2C) if grpc else key)


def _port_problem(service: Any, port: int, *, check_protocol: bool = True) -> tuple[str, str] | None:
    """Why a Service port cannot be used: missing (BackendNotFound) or spoken in an unsupported protocol."""
    spec = service.get("spec") if isinstance(service, dict) else None
    if not isinstance(spec, dict):
        return None  # the cluster resolver reports a malformed Service
    if spec.get("type") == "ExternalName":
        return None  # ExternalName Services need not list their ports
    ports = spec.get("ports")
    if not isinstance(ports, list):
        return None
    for entry in ports:
        if not isinstance(entry, dict) or entry.get("port") != port:
            continue
        if entry.get("protocol", "TCP") not in ("TCP", None, ""):
            continue
        protocol = entry.get("appProtocol")
        if check_protocol and isinstance(protocol, str) and protocol in _UNSUPPORTED_PROTOCOLS:
            return ("UnsupportedProtocol", f"Service port {port} speaks {protocol}, which is not supported")
        return None
    return ("BackendNotFound", f"Service has no TCP port {port}")
