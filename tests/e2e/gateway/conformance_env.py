"""Where the end-to-end conformance runs happen: echo pods for the base manifests' backends, the manifests as the
process gets them, and the real `pyngress` process in file mode or cluster mode, switched from state to state.

The manifests are the conformance data's (tests/routing/gateway), with four substitutions a test cluster
would make by itself: EndpointSlices list the echo pods' loopback addresses and ports instead of the pod IPs
in the data (a gRPC pod's plain or TLS port, by the pod port the data names); the TLS Secrets the suite
generates hold real certificates (the upstream's names), made here; the CA ConfigMaps it generates hold real
CAs, one of which signed the HTTPS pods' certificates; and
the Gateways a step does not put under test belong to another GatewayClass. That last one is the production
shape the routing level gets with `--gateway` (one process per Gateway: the upstream gives every Gateway its own
address): here one process serves every test of a mode, so the Gateways of other tests are not ours rather than
filtered out by a flag (tests/routing/gateway/test_selection.py checks that both give the same tables and status).

`Environment.apply(step)` puts a step's state in place and waits until the process serves exactly it: the
routing table and status that the pure builder makes of the very objects the process reads (the same
`proxy.debug` description, compared on /debug/routes; in file mode the checksum too), and /readyz (every
Gateway port bound).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import ipaddress
import json
import random
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from conformance_certs import Authority, Certificate
from conformance_echo import EchoPod
from conformance_grpc import GrpcEchoPod

from e2e_harness import ManifestDir, Pyngress, kubeconfig, start_pyngress
from kubeapi import KubeApiServer
from proxy.cli import settings_from_args
from proxy.debug import describe_gateways, describe_table
from proxy.kube.cache import KINDS, ObjectCache
from proxy.kube.files import parse_manifest
from proxy.routing.build import build
from proxy.routing.model import Config
from proxy.runtime import Runtime
from proxy.tls.store import load_chain
from routing.gateway.objects import CA_CONFIG_MAPS, CONTROLLER, GRPC_SERVICES, PODS, base_objects, ca_pem
from routing.gateway.scenario import Step, merged, under_test

Obj = dict[str, Any]
INFRA = "gateway-conformance-infra"
# The Gateway listener ports the conformance manifests use (1111 is an unsupported protocol's, never opened).
GATEWAY_PORTS = (80, 443, 1111, 8080, 8090)
# Certificates the upstream suite generates (conformance/utils/suite/suite.go): Secret -> DNS names.
CERTIFICATES = {
    (INFRA, "tls-validity-checks-certificate"): ("*", "*.org", "*.wildcard.org"),
    ("gateway-conformance-web-backend", "certificate"): ("*",),
}
# Pods serving HTTPS (the suite's MustCreateCASignedCertSecret): Service -> (the CA ConfigMap whose CA signs the
# certificate, its DNS and URI names).
# (grpc-infra-backend-v1: gRPC over TLS on its 8443)
TLS_PODS = dict.fromkeys(("tls-backend", "grpc-infra-backend-v1"), (
    (INFRA, "tls-checks-ca-certificate"),
    ("abc.example.com", "spiffe://abc.example.com/test-identity", "other.example.com")))
# Services whose pods also serve h2c on the echo's 3001 (conformance/base/manifests.yaml: infra-backend-v1's
# second-port, appProtocol kubernetes.io/h2c).
H2C_SERVICES = frozenset({"infra-backend-v1"})
# Seconds for the process to serve a new state: it takes tens of milliseconds; generous for two busy cores, short
# enough that a process gone wrong fails the module's tests one by one quickly.
DEADLINE = 10.0


# ---------------------------------------------------------------------------------------------- backends


@dataclass
class Backends:
    """One echo pod per address of the data's pods: 10.a.b.c is served on 127.a.b.c, fd00::1 on ::1; pods of one
    Service share a port number (an EndpointSlice lists one port per name). The pods of GRPC_SERVICES are gRPC
    echo pods (conformance_grpc.py), the others HTTP ones (conformance_echo.py)."""

    pods: dict[str, EchoPod | GrpcEchoPod] = field(default_factory=dict)  # data address -> pod
    # The CAs of the CA ConfigMaps (CA_CONFIG_MAPS), made on start; TLS_PODS' certificates are signed by them.
    authorities: dict[tuple[str, str], Authority] = field(default_factory=dict)

    @staticmethod
    def loopback(address: str) -> str:
        parsed = ipaddress.ip_address(address)
        if parsed.version == 6:
            return "::1"
        return "127." + ".".join(address.split(".")[1:])

    async def start(self) -> Backends:
        self.authorities = {key: Authority.make(key[1]) for key in CA_CONFIG_MAPS}
        groups: dict[tuple[str, str, int], list[str]] = {}
        for address, (namespace, service, _) in PODS.items():
            family = ipaddress.ip_address(address).version
            groups.setdefault((namespace, service, family), []).append(address)
        for addresses in groups.values():
            await self._start_group(addresses)
        return self

    async def _start_group(self, addresses: list[str]) -> None:
        for _ in range(20):
            started: list[EchoPod | GrpcEchoPod] = []
            try:
                port = tls_port = h2c_port = 0
                for address in addresses:
                    namespace, service, name = PODS[address]
                    if service in GRPC_SERVICES:
                        grpc_pod = GrpcEchoPod(service=service, namespace=namespace, name=name,
                                               address=self.loopback(address), tls=self._certificate(service))
                        started.append(await grpc_pod.start(port, tls_port))
                        tls_port = grpc_pod.tls_port
                    else:
                        pod = EchoPod(service=service, namespace=namespace, name=name,
                                      address=self.loopback(address), tls=self._server_context(service))
                        started.append(await pod.start(port, h2c=service in H2C_SERVICES, h2c_port=h2c_port))
                        h2c_port = pod.h2c_port
                    port = started[-1].port
            except OSError:  # that port is taken on another address: try another one
                for pod in started:
                    await pod.stop()
                continue
            self.pods.update(zip(addresses, started))
            return
        raise AssertionError(f"no common free port for the pods {addresses}")

    def _certificate(self, service: str) -> tuple[bytes, bytes] | None:
        """(chain PEM, key PEM) of a TLS_PODS Service's pods."""
        if service not in TLS_PODS:
            return None
        issuer, names = TLS_PODS[service]
        certificate = self.authorities[issuer].issue(names)
        return certificate.cert_pem, certificate.key_pem

    def _server_context(self, service: str) -> ssl.SSLContext | None:
        found = self._certificate(service)
        if found is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        load_chain(context, *found)
        return context

    async def stop(self) -> None:
        for pod in self.pods.values():
            await pod.stop()

    def of_service(self, service: str) -> list[EchoPod | GrpcEchoPod]:
        return [pod for pod in self.pods.values() if pod.service == service]

    def forget(self) -> None:
        for pod in self.pods.values():
            pod.seen.clear()

    def namespace_of(self, service: str) -> str | None:
        found = {pod.namespace for pod in self.of_service(service)}
        return found.pop() if len(found) == 1 else None


# ---------------------------------------------------------------------------------------------- manifests


def _key(obj: Obj) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


class Manifests:
    """A step's objects as this environment serves them (see the module doc)."""

    def __init__(self, backends: Backends, certificates: dict[tuple[str, str], Certificate]) -> None:
        self.backends = backends
        self.certificates = certificates

    def of(self, step: Step) -> list[Obj]:
        found = []
        for obj in under_test(merged(*base_objects(), *step.objects), step.gateways, INFRA):
            obj = copy.deepcopy(obj)
            kind, namespace, name = _key(obj)
            if kind == "EndpointSlice":
                self._to_pods(obj)
            elif kind == "ConfigMap":
                self._to_authority(obj)
            elif kind == "Secret" and (namespace, name) in self.certificates:
                certificate = self.certificates[(namespace, name)]
                obj["data"] = {"tls.crt": base64.b64encode(certificate.cert_pem).decode(),
                               "tls.key": base64.b64encode(certificate.key_pem).decode()}
            found.append(obj)
        return found

    def _to_pods(self, obj: Obj) -> None:
        pods = [self.backends.pods[address] for endpoint in obj.get("endpoints") or ()
                for address in endpoint.get("addresses") or ()]
        if not pods:
            return
        for endpoint in obj["endpoints"]:
            endpoint["addresses"] = [self.backends.loopback(a) for a in endpoint["addresses"]]
        for item in obj.get("ports") or ():
            ports = {pod.port_for(item["port"]) for pod in pods}
            assert len(ports) == 1, f"the pods of EndpointSlice {obj['metadata']['name']} do not share a port"
            item["port"] = ports.pop()

    def _to_authority(self, obj: Obj) -> None:
        """A CA ConfigMap of the data (its ca.crt the stand-in of a CA ConfigMap, maybe under another name: a
        test copies one) holds that CA's real certificate."""
        data = obj.get("data") or {}
        namespace = obj["metadata"].get("namespace", "")
        for (where, name), authority in self.backends.authorities.items():
            if where == namespace and data.get("ca.crt") == ca_pem(name):
                obj["data"] = {**data, "ca.crt": authority.cert_pem.decode()}

    def certificate_for(self, secret: tuple[str, str]) -> Certificate | None:
        return self.certificates.get(secret)


# ---------------------------------------------------------------------------------------------- expectations


def normalized(description: dict[str, Any]) -> dict[str, Any]:
    """A /debug/routes body without what differs between equal states (generation, checksum, warnings, the live
    upstream state: endpointStates, clusterState, tls), endpoint lists sorted."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (sorted(walk(v)) if k == "endpoints" else walk(v)) for k, v in value.items()
                    if k not in ("generation", "checksum", "warnings", "endpointStates", "clusterState", "tls")}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(json.loads(json.dumps(description)))


@dataclass(frozen=True)
class Expected:
    """What the process must serve for a state: the pure build of the objects it reads."""

    config: Config
    description: dict[str, Any]

    @classmethod
    def of(cls, objects: Iterable[Obj], settings: Any) -> Expected:
        cache = ObjectCache(kinds=KINDS)
        by_kind: dict[str, list[Obj]] = {kind: [] for kind in KINDS}
        for obj in objects:
            if obj["kind"] in by_kind:
                by_kind[obj["kind"]].append(obj)
        for kind, items in by_kind.items():
            cache.replace(kind, items)
        config = build(cache.snapshot(), settings)
        description = describe_table(Runtime(config, MappingProxyType({}), 0))
        return cls(config, normalized(description))

    def scheme(self, port: int, offset: int) -> str:
        listener = self.config.listeners.get(port + offset)
        return "https" if listener is not None and listener.protocol == "HTTPS" else "http"


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}/{key}")
        return ""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{index}]")
        return ""
    return f"{where}: process {json.dumps(a)[:300]} != expected {json.dumps(b)[:300]}"


# ---------------------------------------------------------------------------------------------- the process


def free_offset(ports: Iterable[int] = GATEWAY_PORTS) -> int:
    """A --gateway-port-offset putting every conformance listener port on a free local port below the ephemeral
    range (so no client or pod socket takes it meanwhile)."""
    wanted = tuple(ports)
    rng = random.Random()
    for _ in range(200):
        offset = rng.randrange(10_000, 32_000 - max(wanted))
        if all(_free(port + offset) for port in wanted):
            return offset
    raise AssertionError("no free port offset for the Gateway listeners")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Environment:
    """One mode's process, its echo pods, and the state it serves (see the module doc)."""

    def __init__(self, mode: str, folder: Path, backends: Backends,
                 certificates: dict[tuple[str, str], Certificate]) -> None:
        self.mode = mode
        self.folder = folder
        self.backends = backends
        self.manifests = Manifests(backends, certificates)
        self.offset = free_offset()
        self.api: KubeApiServer | None = None
        self.process: Pyngress | None = None
        self.settings: Any = None
        self.current: Expected | None = None
        self._applied: dict[tuple[str, str, str], Obj] = {}  # cluster mode: what we last wrote, by key
        self._files = ManifestDir(folder / "manifests")

    # ---- lifecycle

    async def start(self) -> Environment:
        args = ["--gateway-port-offset", str(self.offset), "--log-level", "info"]
        base = Step(gateways=None)
        if self.mode == "file":
            objects = self._write_files(base)
            manifests: Path | None = self._files.path
        else:
            self.api = KubeApiServer(allow_loopback=True, bookmark_interval=3600, gateway_api=True)
            self.api.install_policies(("BackendTLSPolicy",))
            await self.api.start()
            objects = await self._write_cluster(base, fresh=True)
            config = kubeconfig(self.folder / "kubeconfig", self.api.url)
            args = ["--kubeconfig", str(config), *args]
            manifests = None
        self.process = await start_pyngress(manifests, *args, log_path=self.folder / f"pyngress-{self.mode}.log")
        argv = ["--bind", "127.0.0.1", "--http-port", "0", "--https-port", "0", "--admin-port", "0"]
        if manifests is not None:
            argv += ["--manifests", str(manifests)]
        self.settings = settings_from_args([*argv, *args])
        await self._serve(Expected.of(objects, self.settings))
        return self

    async def close(self) -> None:
        if self.process is not None:
            await self.process.close()
        if self.api is not None:
            await self.api.stop()

    def log(self) -> str:
        return self.process.log() if self.process is not None else ""

    # ---- states

    async def apply(self, step: Step, *, fresh: bool) -> Expected:
        """Serve `step`'s state; `fresh`: a new test (its objects are created anew, as the upstream suite
        applies each test's manifests after deleting the previous test's)."""
        if self.mode == "file":
            objects = self._write_files(step)
        else:
            if fresh and self.current is not None and self._looks_the_same(step):
                # The wait compares descriptions (not checksums, see _serve): pass through the base state so that
                # it cannot mistake the previous test's state for this one.
                await self._serve(Expected.of(await self._write_cluster(Step(gateways=None), fresh=True),
                                              self.settings))
            objects = await self._write_cluster(step, fresh=fresh)
        expected = Expected.of(objects, self.settings)
        await self._serve(expected)
        return expected

    def _looks_the_same(self, step: Step) -> bool:
        assert self.current is not None
        return Expected.of(self.manifests.of(step), self.settings).description == self.current.description

    def _write_files(self, step: Step) -> list[Obj]:
        text = "---\n".join(json.dumps(obj, indent=1) + "\n" for obj in self.manifests.of(step))
        self._files.write("conformance.yaml", text)
        return [obj for _, obj in parse_manifest(text, source="conformance.yaml")]

    async def _write_cluster(self, step: Step, *, fresh: bool) -> list[Obj]:
        """Bring the API server to the step's objects: deletions first, then creations and replacements
        (on a fresh test, an object whose content changed is deleted and created again: generation 1)."""
        assert self.api is not None
        wanted = {_key(obj): _submittable(obj) for obj in self.manifests.of(step)}
        for key in [k for k in self._applied if k not in wanted or (fresh and self._applied[k] != wanted[k])]:
            if key[0] != "Namespace":
                self.api.delete(key[0], key[1], key[2])
                del self._applied[key]
        ordered = sorted(wanted.items(), key=lambda item: item[0][0] != "Namespace")
        for key, obj in ordered:
            if self._applied.get(key) != obj:
                self.api.apply(copy.deepcopy(obj))
                self._applied[key] = obj
        return [obj for kind in {key[0] for key in wanted} for obj in self.api.objects(kind)]

    async def _serve(self, expected: Expected) -> None:
        """Wait until the process serves `expected` (its description, and in file mode its checksum) with every
        listener accepting.

        Cluster mode compares descriptions only: the checksum covers the endpoints a build saw, and an
        EndpointSlice whose watch event comes after the routes' build moves the live endpoints without a new
        build (as it should), leaving the process's checksum on the earlier endpoints. The description shows the
        live endpoints."""
        assert self.process is not None
        last = ""
        try:
            async with asyncio.timeout(DEADLINE):
                while True:
                    if self.process.process.returncode is not None:
                        raise AssertionError(f"pyngress exited ({self.process.process.returncode}):\n"
                                             f"{self.log()[-3000:]}")
                    status, body = await self.process.admin_get("/debug/routes")
                    if status == 200:
                        same = normalized(body) == expected.description
                        if same and (self.mode != "file" or body["checksum"] == expected.config.checksum):
                            ready, text = await self.process.admin_get("/readyz")
                            if ready == 200:
                                break
                            last = f"/readyz: {ready} {text}"
                        elif same:
                            last = f"checksum {body['checksum']} != expected {expected.config.checksum}"
                        else:
                            last = _first_difference(normalized(body), expected.description)
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"{self.mode} mode: the process did not serve the state within {DEADLINE}s; "
                                 f"first difference: {last}\n{self.log()[-3000:]}") from None
        self.current = expected

    # ---- status

    async def status_doc(self) -> dict[str, Any]:
        """The Gateway API status: file mode from /debug/gateways, cluster mode from what the status writer
        wrote to the API server (our entries only)."""
        assert self.process is not None
        if self.mode == "file":
            status, body = await self.process.admin_get("/debug/gateways")
            assert status == 200, body
            return body
        assert self.api is not None
        ours = {obj["metadata"]["name"] for obj in self.api.objects("GatewayClass")
                if obj["spec"].get("controllerName") == CONTROLLER}
        return {
            "gatewayClasses": {obj["metadata"]["name"]: obj.get("status") or {}
                               for obj in self.api.objects("GatewayClass") if obj["metadata"]["name"] in ours},
            "gateways": {f"{obj['metadata']['namespace']}/{obj['metadata']['name']}": obj.get("status") or {}
                         for obj in self.api.objects("Gateway") if obj["spec"].get("gatewayClassName") in ours},
            **{field: {
                f"{obj['metadata']['namespace']}/{obj['metadata']['name']}": [
                    p for p in (obj.get("status") or {}).get("parents") or () if p.get("controllerName") == CONTROLLER]
                for obj in self.api.objects(kind)
            } for field, kind in (("httpRoutes", "HTTPRoute"), ("grpcRoutes", "GRPCRoute"))},
            "backendTLSPolicies": {
                f"{obj['metadata']['namespace']}/{obj['metadata']['name']}": [
                    a for a in (obj.get("status") or {}).get("ancestors") or ()
                    if a.get("controllerName") == CONTROLLER]
                for obj in self.api.objects("BackendTLSPolicy")
            },
        }

    def expected_status_doc(self) -> dict[str, Any]:
        assert self.current is not None
        return describe_gateways(self.current.config)


def _submittable(obj: Obj) -> Obj:
    """An object as a client creates it: metadata the API server sets (uid, versions, timestamps) left out."""
    found = copy.deepcopy(obj)
    meta = found["metadata"]
    found["metadata"] = {k: v for k, v in meta.items() if k in ("name", "namespace", "labels", "annotations")}
    found.pop("status", None)
    return found

