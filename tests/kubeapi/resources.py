"""The resource types the emulator serves, as the real API server names them."""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY_GROUP = "gateway.networking.k8s.io"
POLICY_GROUP = "pyngress.dev"
# Every verb a real API server lists in discovery for a plain resource and for its /status.
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@dataclass(frozen=True, slots=True)
class Resource:
    """One REST resource: where it lives in the URL space and how it behaves."""

    group: str  # "" = the core group (served under /api)
    version: str  # the preferred version (the one `api_version` names)
    plural: str
    kind: str
    namespaced: bool = True
    # Has a /status subresource: the main resource ignores status, /status changes only status.
    status: bool = False
    # Field selector labels beyond metadata.name and metadata.namespace.
    fields: tuple[str, ...] = ()
    # Defined by a CustomResourceDefinition: served only while installed (see KubeApiServer.install_gateway_api),
    # at the versions installed; list items keep kind and apiVersion, as custom resource lists do.
    crd: bool = False
    # Every version the resource can be served at, preferred first (default: `version` alone).
    versions: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return self.api_version_at(self.version)

    def api_version_at(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def all_versions(self) -> tuple[str, ...]:
        return self.versions or (self.version,)

    @property
    def base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


_GATEWAY_API = {"crd": True, "status": True, "categories": ("gateway-api",)}

RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "services", "Service", status=True),
    Resource("", "v1", "endpoints", "Endpoints"),
    Resource("", "v1", "secrets", "Secret", fields=("type",)),
    Resource("", "v1", "events", "Event", fields=("involvedObject.kind", "involvedObject.name", "reason", "type")),
    # The API server labels each Namespace with its name and starts it Active (see Store).
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, status=True, fields=("status.phase",)),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", status=True),
    Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
    # The Gateway API's standard-channel CRDs, as config/crd/standard of its repository defines them.
    Resource(GATEWAY_GROUP, "v1", "gatewayclasses", "GatewayClass", namespaced=False, versions=("v1", "v1beta1"),
             short_names=("gc",), **_GATEWAY_API),  # type: ignore[arg-type]
    Resource(GATEWAY_GROUP, "v1", "gateways", "Gateway", versions=("v1", "v1beta1"), short_names=("gtw",),
             **_GATEWAY_API),  # type: ignore[arg-type]
    Resource(GATEWAY_GROUP, "v1", "httproutes", "HTTPRoute", versions=("v1", "v1beta1"),
             **_GATEWAY_API),  # type: ignore[arg-type]
    # TLSRoute: v1 since Gateway API v1.5 (standard channel), v1alpha2 before.
    Resource(GATEWAY_GROUP, "v1", "tlsroutes", "TLSRoute", versions=("v1", "v1alpha2"),
             **_GATEWAY_API),  # type: ignore[arg-type]
    Resource(GATEWAY_GROUP, "v1", "grpcroutes", "GRPCRoute", **_GATEWAY_API),  # type: ignore[arg-type]
    # No status subresource (`subresources: {}` in its CRD).
    Resource(GATEWAY_GROUP, "v1", "referencegrants", "ReferenceGrant", crd=True, versions=("v1", "v1beta1"),
             short_names=("refgrant",), categories=("gateway-api",)),
    # Traffic policies (install_policies()): the Gateway API's BackendTLSPolicy, and ours from deploy/crds/
    # (whose objects are checked against that CRD's schema, as `kubectl apply` would have them checked).
    Resource(GATEWAY_GROUP, "v1", "backendtlspolicies", "BackendTLSPolicy", short_names=("btlspolicy",),
             **_GATEWAY_API),  # type: ignore[arg-type]
    Resource(POLICY_GROUP, "v1alpha1", "backendtrafficpolicies", "BackendTrafficPolicy", crd=True, status=True,
             categories=("pyngress",)),
    Resource("", "v1", "configmaps", "ConfigMap"),
)

BY_PATH: dict[tuple[str, str, str], Resource] = {
    (r.group, version, r.plural): r for r in RESOURCES for version in r.all_versions}
BY_GROUP_PLURAL: dict[tuple[str, str], Resource] = {(r.group, r.plural): r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}
POLICY_KINDS: tuple[str, ...] = ("BackendTrafficPolicy", "BackendTLSPolicy")
# What install_gateway_api() installs by default: the kinds of the standard channel we route with.
GATEWAY_KINDS: tuple[str, ...] = tuple(r.kind for r in RESOURCES
                                       if r.group == GATEWAY_GROUP and r.kind not in POLICY_KINDS)
