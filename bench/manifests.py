"""Generated Kubernetes objects for the benchmark: one set of dicts, written as manifests or fed to build().

The same generator serves `python -m bench` (a folder pyngress reads with `--manifests`) and
`bench/micro.py` (a Snapshot handed straight to build()), so both measure the same table.

Shape of the "many routes" table, as in the issue: N Ingresses, two paths each (one Prefix,
one Exact), two Ingresses per host, every Ingress pointing to one of a few Services, so the
load hits the same handful of upstream pools whatever N is and only the table size changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from proxy.objects import KubeObject, Snapshot

NAMESPACE = "bench"
CLASS_NAME = "pyngress"
CONTROLLER = "pyngress.dev/ingress-controller"
# The host every simple scenario sends (wrk -H 'Host: bench.local'); its "/" Prefix catches every path.
MAIN_HOST = "bench.local"
MAIN_SERVICE = "backend"
# Host of the change-propagation probe: claimed, so an unknown path is a 404 until the change lands.
PROBE_HOST = "probe.local"
PORT_NAME = "http"
SERVICE_PORT = 80
# A fixed creationTimestamp keeps builds deterministic (age decides conflicts).
CREATED = "2024-01-01T00:00:00Z"

FILE_CLASS = "00-class.json"
FILE_SERVICES = "10-services.json"
FILE_ENDPOINTS = "20-endpoints.json"
FILE_TABLE_ENDPOINTS = "21-table-endpoints.json"
FILE_INGRESSES = "30-ingresses.json"
FILE_PROBE = "40-probe.json"


@dataclass(frozen=True, slots=True)
class TableShape:
    """How many Ingresses, hosts and Services the generated table has."""

    ingresses: int = 10
    # Two Ingresses per host: 10,000 Ingresses -> 5,000 hosts and 20,000 paths.
    ingresses_per_host: int = 2
    # Routes spread over this many Services (capped at the number of Ingresses).
    services: int = 10

    @property
    def hosts(self) -> int:
        return max(1, -(-self.ingresses // self.ingresses_per_host))

    @property
    def paths(self) -> int:
        return self.ingresses * 2


@dataclass(slots=True)
class ObjectSet:
    """Raw Kubernetes dicts by kind, as the object cache would hold them."""

    ingress_classes: list[KubeObject] = field(default_factory=list)
    services: list[KubeObject] = field(default_factory=list)
    endpoint_slices: list[KubeObject] = field(default_factory=list)
    ingresses: list[KubeObject] = field(default_factory=list)

    def snapshot(self) -> Snapshot:
        """The Snapshot build() reads, indexed the way the object cache indexes it."""
        slices: dict[tuple[str, str], dict[str, KubeObject]] = {}
        for obj in self.endpoint_slices:
            meta = obj["metadata"]
            service = meta["labels"]["kubernetes.io/service-name"]
            slices.setdefault((meta["namespace"], service), {})[meta["name"]] = obj
        return Snapshot(
            ingresses={_key(o): o for o in self.ingresses},
            ingress_classes={o["metadata"]["name"]: o for o in self.ingress_classes},
            services={_key(o): o for o in self.services},
            endpoint_slices=slices,
        )


def _key(obj: KubeObject) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def ingress_class() -> KubeObject:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": CLASS_NAME, "creationTimestamp": CREATED},
        "spec": {"controller": CONTROLLER},
    }


def service(name: str) -> KubeObject:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "creationTimestamp": CREATED},
        "spec": {"ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP"}]},
    }


def endpoint_slice(service_name: str, endpoints: list[tuple[str, int]]) -> KubeObject:
    """One slice; all endpoints must share a port (a slice has one port list)."""
    ports = {port for _, port in endpoints}
    if len(ports) != 1:
        raise ValueError(f"one EndpointSlice needs one port, got {sorted(ports)}")
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service_name}-slice", "namespace": NAMESPACE, "creationTimestamp": CREATED,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}} for address, _ in endpoints],
        "ports": [{"name": PORT_NAME, "port": ports.pop(), "protocol": "TCP"}],
    }


def _path(path: str, path_type: str, service_name: str) -> dict[str, Any]:
    return {"path": path, "pathType": path_type,
            "backend": {"service": {"name": service_name, "port": {"name": PORT_NAME}}}}


def ingress(name: str, rules: list[tuple[str, list[dict[str, Any]]]]) -> KubeObject:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": NAMESPACE, "creationTimestamp": CREATED},
        "spec": {"ingressClassName": CLASS_NAME,
                 "rules": [{"host": host, "http": {"paths": paths}} for host, paths in rules]},
    }


def table_host(index: int) -> str:
    return f"h{index}.bench.local"


def table_service(index: int) -> str:
    return f"svc-{index}"


def table_objects(shape: TableShape) -> Iterator[KubeObject]:
    """The Ingresses of the many-routes table: Ingress i on host i // per_host, two paths each.

    Paths: Prefix `/app{i}/api` (requests go deeper, `/app{i}/api/v1/items/42`) and Exact `/app{i}/health`.
    """
    services = min(shape.services, shape.ingresses)
    for i in range(shape.ingresses):
        svc = table_service(i % services)
        host = table_host(i // shape.ingresses_per_host)
        yield ingress(f"route-{i}", [(host, [_path(f"/app{i}/api", "Prefix", svc),
                                             _path(f"/app{i}/health", "Exact", svc)])])


def table_requests(shape: TableShape, *, count: int = 100) -> list[tuple[str, str]]:
    """(host, path) pairs spread evenly over the table, alternating Prefix and Exact hits."""
    count = max(1, min(count, shape.ingresses * 2))
    step = max(1, shape.ingresses // count) if count <= shape.ingresses else 1
    pairs: list[tuple[str, str]] = []
    i = 0
    while len(pairs) < count:
        index = (i * step) % shape.ingresses
        host = table_host(index // shape.ingresses_per_host)
        path = f"/app{index}/api/v1/items/{i}" if i % 2 == 0 else f"/app{index}/health"
        pairs.append((host, path))
        i += 1
    return pairs


def main_ingress() -> KubeObject:
    """bench.local: every path goes to the backend Service."""
    return ingress("main", [(MAIN_HOST, [_path("/", "Prefix", MAIN_SERVICE)])])


def probe_ingress(generation: int) -> KubeObject:
    """probe.local with one Exact path that is new at every generation."""
    return ingress("probe", [(PROBE_HOST, [_path(probe_path(generation), "Exact", MAIN_SERVICE)])])


def probe_path(generation: int) -> str:
    return f"/probe-{generation}"


def objects(shape: TableShape | None, *, backend: list[tuple[str, int]]) -> ObjectSet:
    """Everything one pyngress needs: class, the main route, the probe route, and the optional table."""
    result = ObjectSet(ingress_classes=[ingress_class()])
    result.services.append(service(MAIN_SERVICE))
    result.endpoint_slices.append(endpoint_slice(MAIN_SERVICE, backend))
    result.ingresses += [main_ingress(), probe_ingress(0)]
    if shape is not None:
        for i in range(min(shape.services, shape.ingresses)):
            result.services.append(service(table_service(i)))
            result.endpoint_slices.append(endpoint_slice(table_service(i), backend))
        result.ingresses.extend(table_objects(shape))
    return result


GATEWAY_HOST = "gw.bench.local"
GATEWAY_SERVICE = "backend-b"
FILE_GATEWAY = "50-gateway.json"
# The HTTPRoute rule of the gateway scenario: two header matches, two weighted backends.
GATEWAY_HEADERS = (("X-Bench-Tenant", "blue"), ("X-Bench-Tier", "gold"))


def gateway_objects(backend: list[tuple[str, int]]) -> list[KubeObject]:
    """A GatewayClass, a Gateway with one HTTP listener on port 80, a second Service on the same backend,
    and an HTTPRoute whose rule matches two headers and splits 1:1 over both Services."""
    group = "gateway.networking.k8s.io/v1"
    meta = {"namespace": NAMESPACE, "creationTimestamp": CREATED}
    second = service(GATEWAY_SERVICE)
    slice_b = endpoint_slice(GATEWAY_SERVICE, backend)
    return [
        {"apiVersion": group, "kind": "GatewayClass", "metadata": {"name": CLASS_NAME, "creationTimestamp": CREATED},
         "spec": {"controllerName": "pyngress.dev/gateway-controller"}},
        {"apiVersion": group, "kind": "Gateway", "metadata": {"name": "bench", **meta},
         "spec": {"gatewayClassName": CLASS_NAME, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
        second, slice_b,
        {"apiVersion": group, "kind": "HTTPRoute", "metadata": {"name": "bench", **meta},
         "spec": {"parentRefs": [{"name": "bench"}], "hostnames": [GATEWAY_HOST], "rules": [
             {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                           "headers": [{"name": name, "value": value} for name, value in GATEWAY_HEADERS]}],
              "backendRefs": [{"name": MAIN_SERVICE, "port": SERVICE_PORT, "weight": 1},
                              {"name": GATEWAY_SERVICE, "port": SERVICE_PORT, "weight": 1}]}]}},
    ]


SECURE_HOST = "secure.bench.local"
FILE_SECURE = "60-secure.json"
SECURE_USER = ("bench", "bench-password")


def secure_objects(password_hash: str) -> list[KubeObject]:
    """The main Service behind ingress-nginx's basic auth (`password_hash`: the bench user's htpasswd hash),
    CORS and a source range admitting loopback clients, on SECURE_HOST, with its htpasswd Secret."""
    import base64

    obj = ingress("secure", [(SECURE_HOST, [_path("/", "Prefix", MAIN_SERVICE)])])
    prefix = "nginx.ingress.kubernetes.io/"
    obj["metadata"]["annotations"] = {
        prefix + "auth-type": "basic", prefix + "auth-secret": "bench-auth", prefix + "auth-realm": "bench",
        prefix + "enable-cors": "true", prefix + "whitelist-source-range": "127.0.0.0/8, 10.0.0.0/8"}
    htpasswd = f"{SECURE_USER[0]}:{password_hash}\n".encode()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "bench-auth", "namespace": NAMESPACE},
              "data": {"auth": base64.b64encode(htpasswd).decode()}}
    return [obj, secret]


def secure_headers() -> tuple[tuple[str, str], ...]:
    """What a client of SECURE_HOST sends: the bench user's credentials and a CORS Origin."""
    import base64

    token = base64.b64encode(f"{SECURE_USER[0]}:{SECURE_USER[1]}".encode()).decode()
    return (("Authorization", f"Basic {token}"), ("Origin", "https://app.example"))


def write_json(path: str, items: list[KubeObject]) -> None:
    """Write a `kind: List` atomically: a dot-file (which pyngress skips) renamed over the target,
    so the poller never reads half a file."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, out, separators=(",", ":"))
    os.replace(temporary, path)


def write_folder(folder: str, objs: ObjectSet) -> None:
    """One file per concern, so the churn scenario rewrites the small endpoints file only."""
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, FILE_CLASS), objs.ingress_classes)
    write_json(os.path.join(folder, FILE_SERVICES), objs.services)
    main_slices = [s for s in objs.endpoint_slices if s["metadata"]["name"] == f"{MAIN_SERVICE}-slice"]
    table_slices = [s for s in objs.endpoint_slices if s not in main_slices]
    write_json(os.path.join(folder, FILE_ENDPOINTS), main_slices)
    write_json(os.path.join(folder, FILE_TABLE_ENDPOINTS), table_slices)
    main, probe = objs.ingresses[0], objs.ingresses[1]
    write_json(os.path.join(folder, FILE_INGRESSES), [main, *objs.ingresses[2:]])
    write_json(os.path.join(folder, FILE_PROBE), [probe])


def write_endpoints(folder: str, backend: list[tuple[str, int]]) -> None:
    """Rewrite the main Service's EndpointSlice (the churn scenario's change)."""
    write_json(os.path.join(folder, FILE_ENDPOINTS), [endpoint_slice(MAIN_SERVICE, backend)])


def write_probe(folder: str, generation: int) -> None:
    """Rewrite the probe Ingress with a new path (the propagation scenario's change)."""
    write_json(os.path.join(folder, FILE_PROBE), [probe_ingress(generation)])


def _endpoint(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    if not address or not port.isdigit():
        raise ValueError(f"expected ADDRESS:PORT, got {text!r}")
    return address, int(port)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.manifests FOLDER --backend 127.0.0.1:8081 [--ingresses N]`: the bench's manifests,
    for running pyngress (and locust) by hand against your own backend."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.manifests", description=main.__doc__)
    parser.add_argument("folder")
    parser.add_argument("--backend", required=True, type=_endpoint, metavar="ADDRESS:PORT",
                        help="where every Service's EndpointSlice points")
    parser.add_argument("--ingresses", type=int, default=0,
                        help="also generate the many-routes table: N Ingresses, 2 paths each, 2 per host")
    args = parser.parse_args(argv)
    shape = TableShape(ingresses=args.ingresses) if args.ingresses > 0 else None
    write_folder(args.folder, objects(shape, backend=[args.backend]))
    extra = f", {shape.ingresses} Ingresses over {shape.hosts} hosts" if shape else ""
    print(f"wrote {args.folder}: host {MAIN_HOST} (every path){extra}, backend {args.backend[0]}:{args.backend[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
