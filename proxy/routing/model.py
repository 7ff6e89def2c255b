"""The value types that flow from the builder to the data plane.

Everything here is immutable: a new build produces new objects and the running
configuration is swapped as one reference, so a request never sees half a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

# Raw Kubernetes objects are kept as the dicts the API (or a YAML file) gave us.
KubeObject = dict[str, Any]
# (namespace, name); cluster-scoped kinds use "" as namespace.
Key = tuple[str, str]

PATH_EXACT = "Exact"
PATH_PREFIX = "Prefix"
PATH_IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"
# Path type of a route made from `spec.defaultBackend`.
PATH_DEFAULT_BACKEND = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy of the object cache, indexed the way the builder reads it.

    The object cache fills this; tests build it directly. Mappings are never mutated
    after the snapshot is handed out.
    """

    ingresses: Mapping[Key, KubeObject] = field(default_factory=dict)
    ingress_classes: Mapping[str, KubeObject] = field(default_factory=dict)
    services: Mapping[Key, KubeObject] = field(default_factory=dict)
    # (namespace, service name) -> {slice name: EndpointSlice}; from label kubernetes.io/service-name.
    endpoint_slices: Mapping[Key, Mapping[str, KubeObject]] = field(default_factory=dict)
    # Legacy Endpoints objects, same name as their Service.
    endpoints: Mapping[Key, KubeObject] = field(default_factory=dict)
    secrets: Mapping[Key, KubeObject] = field(default_factory=dict)


class Endpoint(NamedTuple):
    """One ready pod address (or an ExternalName DNS name) and the port to dial."""

    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Cluster:
    """An upstream: one Service port, with the endpoints to reach it.

    Routes point to clusters by `key` ("namespace/service:port") so endpoint churn
    replaces a cluster's endpoints without rebuilding any route.
    """

    key: str
    namespace: str
    service: str
    # The Ingress backend's port as written: a number ("80") or a Service port name ("http").
    port: str
    endpoints: tuple[Endpoint, ...] = ()
    # Set for `type: ExternalName` Services: dial this DNS name at `external_port`.
    external_name: str | None = None
    external_port: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    """One Ingress path rule (or defaultBackend) for one host."""

    namespace: str
    ingress: str
    # Lower-case host as written in the rule ("" for a rule without host, "*.example.com" for a wildcard).
    host: str
    # The path pattern as written in the Ingress ("" for a defaultBackend route).
    path: str
    path_type: str
    cluster: str  # Cluster.key
    # Plain-HTTP requests get a 308 to HTTPS (host with TLS unless ssl-redirect "false", or force-ssl-redirect).
    ssl_redirect: bool = False

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.ingress}"


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


@dataclass(frozen=True, slots=True)
class Config:
    """The result of one build: what the data plane serves."""

    table: "RouteTable"
    clusters: Mapping[str, Cluster]
    warnings: tuple[Warning, ...] = ()
    # Equal checksums mean equal routing; the runtime skips swapping in an equal build.
    checksum: str = ""


from proxy.routing.table import RouteTable  # noqa: E402  (type used above, defined beside)
