"""Constructors for Kubernetes objects shaped like `kubectl get -o yaml` output (parsed).

Each returns a plain dict; tests state only what the case is about and get
realistic defaults for the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from proxy.objects import Snapshot
from proxy.routing.model import Config, Route
from proxy.routing.paths import normalize_path
from proxy.routing.table import normalize_host

Obj = dict[str, Any]

_DEFAULT_STAMP = "2024-01-01T00:00:00Z"


def backend(service: str, port: int | str) -> Obj:
    """An Ingress service backend; an int port is `number`, a str port is `name`."""
    port_field = {"number": port} if isinstance(port, int) else {"name": port}
    return {"service": {"name": service, "port": port_field}}


def path(path: str | None, service: str = "web", port: int | str = 80, *, path_type: str | None = "Prefix") -> Obj:
    entry: Obj = {"backend": backend(service, port)}
    if path is not None:
        entry["path"] = path
    if path_type is not None:
        entry["pathType"] = path_type
    return entry


def rule(host: str | None, *paths: Obj) -> Obj:
    entry: Obj = {}
    if host is not None:
        entry["host"] = host
    if paths:
        entry["http"] = {"paths": list(paths)}
    return entry


def ingress(
    name: str,
    *rules: Obj,
    namespace: str = "default",
    class_name: str | None = "pyngress",
    class_annotation: str | None = None,
    default: Obj | None = None,
    created: str | None = _DEFAULT_STAMP,
    uid: str = "",
) -> Obj:
    metadata: Obj = {
        "name": name,
        "namespace": namespace,
        "resourceVersion": "1001",
        "uid": uid or f"uid-{namespace}-{name}",
        "generation": 1,
    }
    if created is not None:
        metadata["creationTimestamp"] = created
    if class_annotation is not None:
        metadata["annotations"] = {"kubernetes.io/ingress.class": class_annotation}
    spec: Obj = {}
    if class_name is not None:
        spec["ingressClassName"] = class_name
    if default is not None:
        spec["defaultBackend"] = default
    if rules:
        spec["rules"] = list(rules)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def ingress_class(name: str, *, controller: str = "pyngress.dev/ingress-controller", default: bool = False) -> Obj:
    metadata: Obj = {"name": name, "resourceVersion": "7", "creationTimestamp": _DEFAULT_STAMP}
    if default:
        metadata["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": metadata,
        "spec": {"controller": controller},
    }


def service_port(port: int, *, name: str | None = None, target: int | str | None = None, protocol: str = "TCP") -> Obj:
    entry: Obj = {"port": port, "protocol": protocol, "targetPort": port if target is None else target}
    if name is not None:
        entry["name"] = name
    return entry


def service(name: str, *ports: Obj, namespace: str = "default", external_name: str | None = None) -> Obj:
    if not ports:
        ports = (service_port(80, target=8080),)
    spec: Obj = {"ports": list(ports), "sessionAffinity": "None"}
    if external_name is not None:
        spec.update(type="ExternalName", externalName=external_name)
    else:
        spec.update(
            type="ClusterIP",
            clusterIP="10.96.0.10",
            clusterIPs=["10.96.0.10"],
            selector={"app": name},
            ipFamilies=["IPv4"],
            ipFamilyPolicy="SingleStack",
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": "55",
            "creationTimestamp": _DEFAULT_STAMP,
        },
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def endpoint(*addresses: str, ready: bool | None = True, conditions: bool = True) -> Obj:
    """One EndpointSlice endpoint; `ready=None` leaves `ready` out, `conditions=False` the whole block."""
    entry: Obj = {"addresses": list(addresses), "nodeName": "node-1"}
    if conditions:
        states: Obj = {}
        if ready is not None:
            states = {"ready": ready, "serving": ready, "terminating": not ready}
        entry["conditions"] = states
    return entry


def endpoint_slice(
    service_name: str,
    endpoints: Iterable[Obj],
    ports: Iterable[tuple[str, int]] = (("", 8080),),
    *,
    namespace: str = "default",
    suffix: str = "abcde",
    address_type: str = "IPv4",
) -> Obj:
    """An EndpointSlice; ports are (name, pod port) pairs, "" for the unnamed port."""
    port_list = [{"name": port_name, "port": number, "protocol": "TCP"} for port_name, number in ports]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-{suffix}",
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service_name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "generateName": f"{service_name}-",
            "resourceVersion": "77",
        },
        "addressType": address_type,
        "endpoints": list(endpoints),
        "ports": port_list,
    }


def legacy_endpoints(
    service_name: str,
    addresses: Iterable[str],
    ports: Iterable[tuple[str, int]] = (("", 8080),),
    *,
    not_ready: Iterable[str] = (),
    namespace: str = "default",
) -> Obj:
    subset: Obj = {
        "addresses": [{"ip": ip, "nodeName": "node-1"} for ip in addresses],
        "ports": [{"port": number, "protocol": "TCP", **({"name": name} if name else {})} for name, number in ports],
    }
    not_ready = list(not_ready)
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": service_name, "namespace": namespace, "resourceVersion": "78"},
        "subsets": [subset],
    }


def snapshot(*objects: Obj) -> Snapshot:
    """Index objects by their `kind` the way the object cache does."""
    ingresses: dict = {}
    classes: dict = {}
    services: dict = {}
    slices: dict = {}
    endpoints: dict = {}
    secrets: dict = {}
    config_maps: dict = {}
    for obj in objects:
        meta = obj["metadata"]
        kind = obj["kind"]
        if kind == "Ingress":
            ingresses[(meta["namespace"], meta["name"])] = obj
        elif kind == "IngressClass":
            classes[meta["name"]] = obj
        elif kind == "Service":
            services[(meta["namespace"], meta["name"])] = obj
        elif kind == "EndpointSlice":
            owner = meta["labels"]["kubernetes.io/service-name"]
            slices.setdefault((meta["namespace"], owner), {})[meta["name"]] = obj
        elif kind == "Endpoints":
            endpoints[(meta["namespace"], meta["name"])] = obj
        elif kind == "Secret":
            secrets[(meta["namespace"], meta["name"])] = obj
        elif kind == "ConfigMap":  # as file mode: any of them may be --configmap's too
            config_maps[(meta["namespace"], meta["name"])] = obj
        else:
            raise ValueError(kind)
    return Snapshot(
        ingresses=ingresses, ingress_classes=classes, services=services, endpoint_slices=slices, endpoints=endpoints,
        secrets=secrets, config_maps=config_maps, controller_config_maps=config_maps,
    )


def backend_world(*names: str, namespace: str = "default") -> list[Obj]:
    """A Service (port 80 → 8080) with one ready pod per name, for tests that only care about routes."""
    objects: list[Obj] = []
    for index, name in enumerate(names, start=1):
        objects.append(service(name, namespace=namespace))
        objects.append(endpoint_slice(name, [endpoint(f"10.0.{index}.1")], namespace=namespace))
    return objects


def route_for(config: Config, host: str, request_path: str) -> Route | None:
    """What the proxy would pick for a request: normalized Host header and path, then the table."""
    normalized = normalize_path(request_path)
    assert normalized is not None, request_path
    return config.table.match(normalize_host(host), normalized)


def served(config: Config, host: str, request_path: str) -> tuple[str, str, str] | None:
    """(ingress, path, pathType) of the route a request reaches, or None for a 404."""
    route = route_for(config, host, request_path)
    return None if route is None else (route.ingress, route.path, route.path_type)
