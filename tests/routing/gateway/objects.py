"""Constructors for Gateway API objects shaped like `kubectl get -o yaml` output (parsed), and the
objects of the upstream conformance suite's base manifests (conformance/base/manifests.yaml).

Tests state what a case is about; names, namespaces and shapes follow the upstream manifests so a
case reads like its YAML.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from proxy.objects import Snapshot

Obj = dict[str, Any]

GROUP = "gateway.networking.k8s.io"
CONTROLLER = "pyngress.dev/gateway-controller"
CLASS = "pyngress"
INFRA = "gateway-conformance-infra"
APP = "gateway-conformance-app-backend"
WEB = "gateway-conformance-web-backend"
_STAMP = "2024-01-01T00:00:00Z"


def _metadata(
    name: str,
    namespace: str | None,
    *,
    created: str | None = _STAMP,
    generation: int = 1,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Obj:
    metadata: Obj = {"name": name, "resourceVersion": "1", "generation": generation, "uid": f"uid-{namespace}-{name}"}
    if namespace is not None:
        metadata["namespace"] = namespace
    if created is not None:
        metadata["creationTimestamp"] = created
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


# ---------------------------------------------------------------------- core objects


def namespace(name: str, **labels: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(name, None, labels={"kubernetes.io/metadata.name": name, **labels}),
    }


def service(name: str, *ports: int | Obj, namespace: str = INFRA, headless: bool = False) -> Obj:
    entries = [
        p if isinstance(p, dict) else {"port": p, "protocol": "TCP", "targetPort": 3000} for p in ports or (8080,)
    ]
    spec: Obj = {
        "ports": entries,
        "selector": {"app": name},
        "type": "ClusterIP",
        "clusterIP": "None" if headless else "10.96.0.20",
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(name, namespace), "spec": spec}


def endpoint_slice(
    service_name: str,
    *addresses: str,
    namespace: str = INFRA,
    port_name: str = "",
    port: int = 3000,
    suffix: str = "abcde",
    address_type: str = "IPv4",
    ports: dict[str, int] | None = None,
) -> Obj:
    """`ports`: name -> pod port (default: one, `port_name` -> `port`)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            **_metadata(f"{service_name}-{suffix}", namespace),
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [{"name": name, "port": number, "protocol": "TCP"}
                  for name, number in (ports or {port_name: port}).items()],
    }


_PEM_CERT = b"-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"
_PEM_KEY = b"-----BEGIN PRIVATE KEY-----\nMIIBdummy\n-----END PRIVATE KEY-----\n"


def tls_secret(
    name: str, namespace: str = INFRA, *, crt: bytes = _PEM_CERT, key: bytes = _PEM_KEY, type: str = "kubernetes.io/tls"
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": type,
        "metadata": _metadata(name, namespace),
        "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()},
    }


# ---------------------------------------------------------------------- Gateway API objects


def ca_pem(name: str) -> str:
    """A stand-in CA bundle for the routing level (only its PEM header is read there); end to end, the ConfigMaps
    of CA_CONFIG_MAPS hold real CAs made by the test (tests/e2e/gateway/conformance_certs.py)."""
    return f"-----BEGIN CERTIFICATE-----\n{base64.b64encode(name.encode()).decode()}\n-----END CERTIFICATE-----\n"


def ca_config_map(name: str, namespace: str = INFRA, *, pem: str | None = None) -> Obj:
    """A ConfigMap holding a CA bundle in `ca.crt`, as the upstream's MustCreateCACertConfigMap makes it."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(name, namespace),
            "data": {"ca.crt": ca_pem(name) if pem is None else pem}}


def gateway_class(name: str = CLASS, *, controller: str = CONTROLLER, generation: int = 1, **spec: Any) -> Obj:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "GatewayClass",
        "metadata": _metadata(name, None, generation=generation),
        "spec": {"controllerName": controller, **spec},
    }


def listener(
    name: str,
    port: int = 80,
    protocol: str = "HTTP",
    *,
    hostname: str | None = None,
    namespaces: str | None = "Same",
    selector: Obj | None = None,
    kinds: list[Obj] | None = None,
    certificates: list[Obj] | None = None,
    tls: Obj | None = None,
) -> Obj:
    item: Obj = {"name": name, "port": port, "protocol": protocol}
    if hostname is not None:
        item["hostname"] = hostname
    allowed: Obj = {}
    if namespaces is not None:
        allowed["namespaces"] = {"from": namespaces}
        if selector is not None:
            allowed["namespaces"]["selector"] = selector
    if kinds is not None:
        allowed["kinds"] = kinds
    if allowed:
        item["allowedRoutes"] = allowed
    if tls is not None:
        item["tls"] = tls
    elif certificates is not None:
        item["tls"] = {"certificateRefs": certificates}
    return item


def certificate_ref(name: str, namespace: str | None = None, *, group: str = "", kind: str = "Secret") -> Obj:
    ref: Obj = {"group": group, "kind": kind, "name": name}
    if namespace is not None:
        ref["namespace"] = namespace
    return ref


def gateway(
    name: str,
    *listeners: Obj,
    namespace: str = INFRA,
    class_name: str = CLASS,
    generation: int = 1,
    created: str | None = _STAMP,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gateway",
        "metadata": _metadata(name, namespace, generation=generation, created=created, annotations=annotations),
        "spec": {"gatewayClassName": class_name, "listeners": list(listeners), **spec},
    }


def parent(
    name: str,
    namespace: str | None = None,
    *,
    section: str | None = None,
    port: int | None = None,
    kind: str | None = None,
    group: str | None = None,
) -> Obj:
    ref: Obj = {"name": name}
    for field, value in (
        ("namespace", namespace),
        ("sectionName", section),
        ("port", port),
        ("kind", kind),
        ("group", group),
    ):
        if value is not None:
            ref[field] = value
    return ref


def backend(
    name: str,
    port: int | None = 8080,
    *,
    namespace: str | None = None,
    weight: int | None = None,
    filters: list[Obj] | None = None,
    kind: str | None = None,
    group: str | None = None,
) -> Obj:
    ref: Obj = {"name": name}
    for field, value in (
        ("port", port),
        ("namespace", namespace),
        ("weight", weight),
        ("kind", kind),
        ("group", group),
        ("filters", filters),
    ):
        if value is not None:
            ref[field] = value
    return ref


def match(
    path: str | None = None,
    *,
    type: str = "PathPrefix",
    headers: Iterable[Any] = (),
    query: Iterable[Any] = (),
    method: str | None = None,
) -> Obj:
    """An HTTPRouteMatch; headers/query entries are (name, value) or (name, value, type)."""
    item: Obj = {}
    if path is not None:
        item["path"] = {"type": type, "value": path}
    if headers:
        item["headers"] = [_value_match(h) for h in headers]
    if query:
        item["queryParams"] = [_value_match(q) for q in query]
    if method is not None:
        item["method"] = method
    return item


def _value_match(entry: Any) -> Obj:
    if isinstance(entry, dict):
        return entry
    name, value, *kind = entry
    found: Obj = {"name": name, "value": value}
    if kind:
        found["type"] = kind[0]
    return found


def rule(
    *matches: Obj,
    backends: list[Obj] | None = None,
    filters: list[Obj] | None = None,
    name: str | None = None,
    timeouts: Obj | None = None,
) -> Obj:
    item: Obj = {}
    if name is not None:
        item["name"] = name
    if matches:
        item["matches"] = list(matches)
    if filters is not None:
        item["filters"] = filters
    if backends is not None:
        item["backendRefs"] = backends
    if timeouts is not None:
        item["timeouts"] = timeouts
    return item


def http_route(
    name: str,
    *rules: Obj,
    parents: list[Obj],
    namespace: str = INFRA,
    hostnames: list[str] | None = None,
    generation: int = 1,
    created: str | None = _STAMP,
) -> Obj:
    spec: Obj = {"parentRefs": parents}
    if hostnames is not None:
        spec["hostnames"] = hostnames
    if rules:
        spec["rules"] = list(rules)
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata(name, namespace, generation=generation, created=created),
        "spec": spec,
    }


def tls_route(
    name: str,
    *backends: Obj,
    parents: list[Obj],
    namespace: str = INFRA,
    hostnames: list[str] | None = None,
    created: str | None = _STAMP,
) -> Obj:
    spec: Obj = {"parentRefs": parents, "rules": [{"backendRefs": list(backends)}]}
    if hostnames is not None:
        spec["hostnames"] = hostnames
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "TLSRoute",
        "metadata": _metadata(name, namespace, created=created),
        "spec": spec,
    }


def grpc_match(service: str | None = None, method: str | None = None, *, type: str | None = None,
               headers: Iterable[Any] = ()) -> Obj:
    """A GRPCRouteMatch; headers entries are (name, value) or (name, value, type)."""
    item: Obj = {}
    if service is not None or method is not None or type is not None:
        found: Obj = {}
        for field, value in (("type", type), ("service", service), ("method", method)):
            if value is not None:
                found[field] = value
        item["method"] = found
    if headers:
        item["headers"] = [_value_match(h) for h in headers]
    return item


def grpc_route(
    name: str,
    *rules: Obj,
    parents: list[Obj],
    namespace: str = INFRA,
    hostnames: list[str] | None = None,
    generation: int = 1,
    created: str | None = _STAMP,
) -> Obj:
    """A GRPCRoute; its rules are written with `rule` (matches from grpc_match)."""
    route = http_route(name, *rules, parents=parents, namespace=namespace, hostnames=hostnames,
                       generation=generation, created=created)
    route["kind"] = "GRPCRoute"
    return route


def reference_grant(
    name: str, namespace: str, *, froms: list[tuple[str, str, str]], tos: list[tuple[str, str] | tuple[str, str, str]]
) -> Obj:
    """froms: (group, kind, namespace); tos: (group, kind) or (group, kind, name)."""
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": _metadata(name, namespace),
        "spec": {
            "from": [{"group": g, "kind": k, "namespace": n} for g, k, n in froms],
            "to": [{"group": t[0], "kind": t[1], **({"name": t[2]} if len(t) > 2 else {})} for t in tos],
        },
    }


# ---------------------------------------------------------------------- filters


def header_filter(
    kind: str = "RequestHeaderModifier",
    *,
    set: dict[str, str] | None = None,
    add: dict[str, str] | None = None,
    remove: list[str] | None = None,
) -> Obj:
    body: Obj = {}
    if set:
        body["set"] = [{"name": k, "value": v} for k, v in set.items()]
    if add:
        body["add"] = [{"name": k, "value": v} for k, v in add.items()]
    if remove:
        body["remove"] = remove
    field = "requestHeaderModifier" if kind == "RequestHeaderModifier" else "responseHeaderModifier"
    return {"type": kind, field: body}


def redirect(**fields: Any) -> Obj:
    """RequestRedirect; `path` is ("ReplaceFullPath" | "ReplacePrefixMatch", value)."""
    body = {("statusCode" if k == "status" else k): v for k, v in fields.items() if k != "path"}
    if "path" in fields:
        body["path"] = _path_modifier(*fields["path"])
    return {"type": "RequestRedirect", "requestRedirect": body}


def rewrite(*, hostname: str | None = None, path: tuple[str, str] | None = None) -> Obj:
    body: Obj = {}
    if hostname is not None:
        body["hostname"] = hostname
    if path is not None:
        body["path"] = _path_modifier(*path)
    return {"type": "URLRewrite", "urlRewrite": body}


def _path_modifier(kind: str, value: str) -> Obj:
    field = "replaceFullPath" if kind == "ReplaceFullPath" else "replacePrefixMatch"
    return {"type": kind, field: value}


def mirror(
    name: str,
    port: int = 8080,
    *,
    namespace: str | None = None,
    percent: int | None = None,
    fraction: tuple[int, int] | None = None,
) -> Obj:
    body: Obj = {"backendRef": backend(name, port, namespace=namespace)}
    if percent is not None:
        body["percent"] = percent
    if fraction is not None:
        body["fraction"] = {"numerator": fraction[0], "denominator": fraction[1]}
    return {"type": "RequestMirror", "requestMirror": body}


def cors(**fields: Any) -> Obj:
    return {"type": "CORS", "cors": fields}


# ---------------------------------------------------------------------- snapshots

_KINDS = {
    "Ingress": "ingresses",
    "IngressClass": "ingress_classes",
    "Service": "services",
    "Secret": "secrets",
    "GatewayClass": "gateway_classes",
    "Gateway": "gateways",
    "HTTPRoute": "http_routes",
    "TLSRoute": "tls_routes",
    "GRPCRoute": "grpc_routes",
    "ReferenceGrant": "reference_grants",
    "Namespace": "namespaces",
    "BackendTrafficPolicy": "backend_traffic_policies",
    "BackendTLSPolicy": "backend_tls_policies",
    "ConfigMap": "config_maps",
}


def snapshot(*objects: Obj) -> Snapshot:
    """Index objects by kind the way the object cache does (later objects replace earlier ones)."""
    kinds: dict[str, dict[Any, Any]] = {field: {} for field in _KINDS.values()}
    slices: dict[Any, dict[str, Obj]] = {}
    for obj in objects:
        meta = obj["metadata"]
        kind = obj["kind"]
        if kind == "EndpointSlice":
            owner = meta["labels"]["kubernetes.io/service-name"]
            slices.setdefault((meta["namespace"], owner), {})[meta["name"]] = obj
        elif kind in ("GatewayClass", "Namespace", "IngressClass"):
            kinds[_KINDS[kind]][meta["name"]] = obj
        else:
            kinds[_KINDS[kind]][(meta["namespace"], meta["name"])] = obj
    return Snapshot(endpoint_slices=slices, **kinds)


def base_objects() -> list[Obj]:
    """conformance/base/manifests.yaml as objects: namespaces, the four shared Gateways, the backends
    (with one ready pod each), the TLS Secret the suite creates, and our GatewayClass."""
    objects: list[Obj] = [
        gateway_class(),
        namespace(INFRA, **{"gateway-conformance": "infra"}),
        namespace(APP, **{"gateway-conformance": "backend"}),
        namespace(WEB, **{"gateway-conformance": "backend"}),
        gateway("same-namespace", listener("http", 80, namespaces="Same")),
        gateway(
            "same-namespace-with-https-listener",
            listener("https", 443, "HTTPS", certificates=[certificate_ref("tls-validity-checks-certificate", INFRA)]),
            listener(
                "https-with-hostname",
                443,
                "HTTPS",
                hostname="second-example.org",
                certificates=[certificate_ref("tls-validity-checks-certificate", INFRA)],
            ),
            listener(
                "https-with-wildcard-hostname",
                443,
                "HTTPS",
                hostname="*.wildcard.org",
                certificates=[certificate_ref("tls-validity-checks-certificate", INFRA)],
            ),
            listener(
                "https-with-hostname-matching-wildcard",
                443,
                "HTTPS",
                hostname="fourth-example.wildcard.org",
                certificates=[certificate_ref("tls-validity-checks-certificate", INFRA)],
            ),
        ),
        gateway("all-namespaces", listener("http", 80, namespaces="All")),
        gateway(
            "backend-namespaces",
            listener("http", 80, namespaces="Selector", selector={"matchLabels": {"gateway-conformance": "backend"}}),
        ),
        service(
            "infra-backend-v1",
            {"name": "first-port", "protocol": "TCP", "port": 8080, "targetPort": 3000},
            {
                "name": "second-port",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
                "port": 8081,
                "targetPort": 3001,
            },
            {
                "name": "third-port",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/ws",
                "port": 8082,
                "targetPort": 3000,
            },
        ),
        service("infra-backend-v2"),
        service("infra-backend-v3"),
        service("tls-backend", {"port": 443, "protocol": "TCP", "targetPort": 8443}),
        service("app-backend-v1", namespace=APP),
        service("app-backend-v2", namespace=APP),
        service("web-backend", namespace=WEB),
        tls_secret("tls-validity-checks-certificate"),
        *(ca_config_map(name, namespace_name) for namespace_name, name in CA_CONFIG_MAPS),
    ]
    for service_name, namespace_name, ports in _BACKENDS:
        objects.append(endpoint_slice(service_name, *pod_addresses(service_name, namespace_name),
                                      namespace=namespace_name, ports=ports))
    # The gRPC echo backends (GRPC_SERVICES): port 8080 to the pods' 3000, appProtocol kubernetes.io/h2c.
    for service_name in GRPC_SERVICES:
        objects.append(service(service_name, {"protocol": "TCP", "port": 8080, "targetPort": 3000,
                                              "appProtocol": "kubernetes.io/h2c"}))
        objects.append(endpoint_slice(service_name, *pod_addresses(service_name)))
    return objects


# The backend pods of the base manifests' Deployments (address -> namespace, Service, pod name), as many
# replicas as upstream runs. Pod names start with their Deployment's name and end with two generated parts,
# as the upstream suite expects (it strips them to find the backend). fd00::1 is infra-backend-v1's first
# pod's IPv6 address (HTTPRouteServiceTypes lists both families).
PODS: dict[str, tuple[str, str, str]] = {
    "10.1.1.1": (INFRA, "infra-backend-v1", "infra-backend-v1-7c9d5b6f4-abcde"),
    "10.1.1.2": (INFRA, "infra-backend-v1", "infra-backend-v1-7c9d5b6f4-fghij"),
    "fd00::1": (INFRA, "infra-backend-v1", "infra-backend-v1-7c9d5b6f4-abcde"),
    "10.1.2.1": (INFRA, "infra-backend-v2", "infra-backend-v2-5f8b7d9c6-abcde"),
    "10.1.2.2": (INFRA, "infra-backend-v2", "infra-backend-v2-5f8b7d9c6-fghij"),
    "10.1.3.1": (INFRA, "infra-backend-v3", "infra-backend-v3-6b7c8d9f5-abcde"),
    "10.2.1.1": (APP, "app-backend-v1", "app-backend-v1-8d9f6b7c5-abcde"),
    "10.2.1.2": (APP, "app-backend-v1", "app-backend-v1-8d9f6b7c5-fghij"),
    "10.2.2.1": (APP, "app-backend-v2", "app-backend-v2-9f6b7c8d4-abcde"),
    "10.2.2.2": (APP, "app-backend-v2", "app-backend-v2-9f6b7c8d4-fghij"),
    "10.3.1.1": (WEB, "web-backend", "web-backend-4b5c6d7f8-abcde"),
    "10.3.1.2": (WEB, "web-backend", "web-backend-4b5c6d7f8-fghij"),
    # The HTTPS echo pod (its certificate: the Secret tls-checks-certificate, signed by tls-checks-ca-certificate).
    "10.1.4.1": (INFRA, "tls-backend", "tls-backend-6c8d7f9b5-abcde"),
    # The gRPC echo pods (GRPC_SERVICES: the upstream's echo-basic with GRPC_ECHO_SERVER set), two replicas each.
    "10.1.11.1": (INFRA, "grpc-infra-backend-v1", "grpc-infra-backend-v1-5d7f8b9c6-abcde"),
    "10.1.11.2": (INFRA, "grpc-infra-backend-v1", "grpc-infra-backend-v1-5d7f8b9c6-fghij"),
    "10.1.12.1": (INFRA, "grpc-infra-backend-v2", "grpc-infra-backend-v2-6f8b9c7d5-abcde"),
    "10.1.12.2": (INFRA, "grpc-infra-backend-v2", "grpc-infra-backend-v2-6f8b9c7d5-fghij"),
    "10.1.13.1": (INFRA, "grpc-infra-backend-v3", "grpc-infra-backend-v3-7b9c6d8f4-abcde"),
    "10.1.13.2": (INFRA, "grpc-infra-backend-v3", "grpc-infra-backend-v3-7b9c6d8f4-fghij"),
}
# The base manifests' gRPC echo Services (conformance/base/manifests.yaml): their pods speak gRPC (h2c) only.
GRPC_SERVICES = ("grpc-infra-backend-v1", "grpc-infra-backend-v2", "grpc-infra-backend-v3")
# The CA ConfigMaps the upstream suite creates (MustCreateCACertConfigMap): tls-backend's CA, and one that
# signed nothing (BackendTLSPolicy tests make verification fail with it).
CA_CONFIG_MAPS = ((INFRA, "tls-checks-ca-certificate"), (INFRA, "mismatch-ca-certificate"))

# The pod ports each backend's EndpointSlice lists (name -> port), as the EndpointSlice controller makes them
# from the Service's ports: infra-backend-v1's three ports reach the pod's 3000 (HTTP, WebSocket) and 3001 (h2c).
_BACKENDS: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("infra-backend-v1", INFRA, {"first-port": 3000, "second-port": 3001, "third-port": 3000}),
    ("infra-backend-v2", INFRA, {"": 3000}),
    ("infra-backend-v3", INFRA, {"": 3000}),
    ("app-backend-v1", APP, {"": 3000}),
    ("app-backend-v2", APP, {"": 3000}),
    ("web-backend", WEB, {"": 3000}),
    ("tls-backend", INFRA, {"": 8443}),
)


def pod_addresses(service_name: str, namespace_name: str = INFRA, *, family: str = "IPv4") -> list[str]:
    """The addresses of a base backend's pods (of one family)."""
    return [address for address, (ns, owner, _) in PODS.items()
            if (ns, owner) == (namespace_name, service_name) and (":" in address) == (family == "IPv6")]
