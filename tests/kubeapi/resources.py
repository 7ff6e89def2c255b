"""The resource types the emulator serves, as the real API server names them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resource:
    """One REST resource: where it lives in the URL space and how it behaves."""

    group: str  # "" = the core group (served under /api)
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    # Has a /status subresource: the main resource ignores status, /status changes only status.
    status: bool = False
    # Field selector labels beyond metadata.name and metadata.namespace.
    fields: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "services", "Service", status=True),
    Resource("", "v1", "endpoints", "Endpoints"),
    Resource("", "v1", "secrets", "Secret", fields=("type",)),
    Resource("", "v1", "events", "Event", fields=("involvedObject.kind", "involvedObject.name", "reason", "type")),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", status=True),
    Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
)

BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}
