"""Raw Kubernetes objects as every layer sees them: the cache fills a `Snapshot`, the builder reads it.

This is the base of the import graph: `kube/` (which fills snapshots), `tls/` and `routing/` (which
read them) all import it, and it imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Raw Kubernetes objects are kept as the dicts the API (or a YAML file) gave us.
KubeObject = dict[str, Any]
# (namespace, name); cluster-scoped kinds use "" as namespace.
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy of the object cache, indexed the way the builder reads it.

    The object cache fills this; tests build it directly. Mappings are never mutated
    after the snapshot is handed out, and objects that did not change are the identical
    dicts from one snapshot to the next (the builder's memo relies on it).
    """

    ingresses: Mapping[Key, KubeObject] = field(default_factory=dict)
    ingress_classes: Mapping[str, KubeObject] = field(default_factory=dict)
    services: Mapping[Key, KubeObject] = field(default_factory=dict)
    # (namespace, service name) -> {slice name: EndpointSlice}; from label kubernetes.io/service-name.
    endpoint_slices: Mapping[Key, Mapping[str, KubeObject]] = field(default_factory=dict)
    # Legacy Endpoints objects, same name as their Service.
    endpoints: Mapping[Key, KubeObject] = field(default_factory=dict)
    secrets: Mapping[Key, KubeObject] = field(default_factory=dict)
    # Gateway API (gateway.networking.k8s.io). GatewayClasses and Namespaces are cluster-scoped.
    gateway_classes: Mapping[str, KubeObject] = field(default_factory=dict)
    gateways: Mapping[Key, KubeObject] = field(default_factory=dict)
    http_routes: Mapping[Key, KubeObject] = field(default_factory=dict)
    # TLSRoutes (served by Gateway TLS listeners in Passthrough mode, with --enable-ssl-passthrough).
    tls_routes: Mapping[Key, KubeObject] = field(default_factory=dict)
    # GRPCRoutes (gRPC rules of Gateway HTTP and HTTPS listeners).
    grpc_routes: Mapping[Key, KubeObject] = field(default_factory=dict)
    reference_grants: Mapping[Key, KubeObject] = field(default_factory=dict)
    # Namespaces, for Gateway listeners' allowedRoutes namespace selectors (labels only matter).
    namespaces: Mapping[str, KubeObject] = field(default_factory=dict)
    # Traffic policies: our BackendTrafficPolicy (pyngress.dev/v1alpha1) and the Gateway API's
    # BackendTLSPolicy, with the ConfigMaps holding the CA bundles BackendTLSPolicies name.
    backend_traffic_policies: Mapping[Key, KubeObject] = field(default_factory=dict)
    backend_tls_policies: Mapping[Key, KubeObject] = field(default_factory=dict)
    config_maps: Mapping[Key, KubeObject] = field(default_factory=dict)
    # ingress-nginx's ConfigMap (--configmap), whole: the one entry, or none.
    controller_config_maps: Mapping[Key, KubeObject] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Warning:
    """A problem with one object; the builder reports it and keeps going."""

    kind: str
    namespace: str
    name: str
    message: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}: {self.message}"
