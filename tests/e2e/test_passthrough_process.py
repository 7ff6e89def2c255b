"""SSL passthrough through the real `pyngress` process (--enable-ssl-passthrough): an ssl-passthrough Ingress
and a Gateway API TLSRoute, in file mode and in cluster mode, with pods that terminate TLS themselves.

ingress-nginx: test/e2e/settings/ssl_passthrough.go (the annotated host reaches the pod's TLS server, a
host without the annotation on the same port is served by the controller). Gateway API:
conformance/tests/tlsroute-simple-same-namespace (a TLS request matching the TLSRoute reaches the backend,
which terminates TLS: the client sees the backend's certificate) and its status (Accepted, ResolvedRefs).
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

from e2e_harness import DEADLINE, INGRESS_CLASS, eventually, ingress, scrape, service

_spec = importlib.util.spec_from_file_location("tls_pki", Path(__file__).resolve().parents[1] / "tls" / "conftest.py")
tls_pki = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("tls_pki", tls_pki)
_spec.loader.exec_module(tls_pki)

GROUP = "gateway.networking.k8s.io"
PASS_HOST = "pass.example.test"
ROUTE_HOST = "abc.example.com"


class TlsPod:
    """A pod terminating TLS with its own certificate: answers "<name>:" + each line it reads."""

    def __init__(self, name: str, address: str, leaf: Any, folder: Path) -> None:
        self.name = name
        self.address = address
        self.port = 0
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        cert.write_bytes(leaf.chain_pem)
        key.write_bytes(leaf.key_pem)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> TlsPod:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while line := await reader.readline():
                    writer.write(self.name.encode() + b":" + line)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_client, self.address, 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def _talk(port: int, name: str, cafile: Path) -> tuple[str, str]:
    """A TLS client trusting only the test CA: (the certificate's common name, the answer to "hi")."""
    context = ssl.create_default_context(cafile=str(cafile))
    async with asyncio.timeout(DEADLINE):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name)
        try:
            subject = dict(item[0] for item in writer.get_extra_info("peercert")["subject"])
            writer.write(b"hi\n")
            return subject["commonName"], (await reader.readline()).decode()
        finally:
            writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gateway_objects(pod: TlsPod, *, namespace: str = "default") -> list[dict]:
    return [
        {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": "pyngress"},
         "spec": {"controllerName": "pyngress.dev/gateway-controller"}},
        {"apiVersion": f"{GROUP}/v1", "kind": "Gateway",
         "metadata": {"name": "gateway-tlsroute", "namespace": namespace},
         "spec": {"gatewayClassName": "pyngress", "listeners": [
             {"name": "https", "port": 443, "protocol": "TLS", "hostname": "*.example.com",
              "allowedRoutes": {"namespaces": {"from": "Same"}, "kinds": [{"kind": "TLSRoute"}]},
              "tls": {"mode": "Passthrough"}}]}},
        {"apiVersion": f"{GROUP}/v1", "kind": "TLSRoute", "metadata": {"name": "tls", "namespace": namespace},
         "spec": {"parentRefs": [{"name": "gateway-tlsroute"}], "hostnames": [ROUTE_HOST],
                  "rules": [{"backendRefs": [{"name": "tcp-backend", "port": 8443}]}]}},
        *service("tcp-backend", namespace=namespace, port=8443, port_name="tls", pods=[pod]),
    ]


async def test_file_mode_ingress_and_tlsroute(tmp_path, manifests, pyngress, echo_pods):
    pki = tls_pki.Pki(tmp_path)
    pass_pod = await TlsPod("pass-pod", "127.0.0.21", pki.leaf(PASS_HOST), tmp_path).start()
    route_pod = await TlsPod("route-pod", "127.0.0.22", pki.leaf(ROUTE_HOST), tmp_path).start()
    ours = pki.leaf("ours.example.test")
    web = await echo_pods.start("web", "127.0.0.23")
    try:
        passthrough = ingress("tls-app", host=PASS_HOST, paths=[("/", "Prefix", "secure", 443)])
        passthrough["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"}
        terminated = ingress("web", host="ours.example.test", paths=[("/", "Prefix", "web", 80)])
        terminated["spec"]["tls"] = [{"hosts": ["ours.example.test"], "secretName": "ours"}]
        secret = {"apiVersion": "v1", "kind": "Secret", **ours.secret("default", "ours")}
        secret["metadata"].pop("resourceVersion", None)
        local = _free_port()
        path = manifests.write("all.yaml", [
            INGRESS_CLASS, passthrough, terminated, secret, *service("secure", port=443, port_name="tls",
                                                                     pods=[pass_pod]),
            *service("web", pods=[web]), *_gateway_objects(route_pod)])
        proc = await pyngress(path, "--enable-ssl-passthrough", "--gateway-port-offset", str(local - 443))
        https = proc.ports["https"]

        # The annotated host: the pod's own certificate and answer (nothing decrypted here).
        assert await _talk(https, PASS_HOST, pki.cafile) == (PASS_HOST, "pass-pod:hi\n")
        # Another host on the same port: terminated by pyngress with the Ingress's certificate.
        context = ssl.create_default_context(cafile=str(pki.cafile))
        async with asyncio.timeout(DEADLINE):
            reader, writer = await asyncio.open_connection("127.0.0.1", https, ssl=context,
                                                           server_hostname="ours.example.test")
            writer.write(b"GET / HTTP/1.1\r\nHost: ours.example.test\r\nConnection: close\r\n\r\n")
            answer = await reader.read()
            writer.close()
        assert answer.startswith(b"HTTP/1.1 200") and b'"pod": "web"' in answer.replace(b'":"', b'": "')

        # The TLSRoute, on the Gateway's own TLS-only port.
        await eventually(lambda: _port_open(local))
        assert await _talk(local, ROUTE_HOST, pki.cafile) == (ROUTE_HOST, "route-pod:hi\n")
        status, document = await proc.admin_get("/debug/gateways")
        assert status == 200
        conditions = {c["type"]: c["status"] for c in document["tlsRoutes"]["default/tls"][0]["conditions"]}
        assert conditions == {"Accepted": "True", "ResolvedRefs": "True"}

        assert await scrape(proc, "pyngress_ssl_passthrough_connections_total", host=PASS_HOST) == 1
        assert await scrape(proc, "pyngress_ssl_passthrough_connections_total", host=ROUTE_HOST) == 1
        received = await scrape(proc, "pyngress_ssl_passthrough_bytes_total", host=PASS_HOST, direction="received")
        assert received is not None and received > 3
    finally:
        await pass_pod.stop()
        await route_pod.stop()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_cluster_mode_tlsroute_is_watched_served_and_its_status_written(tmp_path, kube_api, cluster):
    pki = tls_pki.Pki(tmp_path)
    pod = await TlsPod("route-pod", "127.0.0.24", pki.leaf(ROUTE_HOST), tmp_path).start()
    try:
        # An older bundle: TLSRoute served at v1alpha2 only (watched, and its status written, at that version).
        kube_api.install_gateway_api(["GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant", "TLSRoute"],
                                     versions={"TLSRoute": ["v1alpha2"]})
        for obj in _gateway_objects(pod, namespace="infra"):
            if obj["kind"] == "TLSRoute":
                obj = {**obj, "apiVersion": f"{GROUP}/v1alpha2"}
            kube_api.create(obj)
        local = _free_port()
        await cluster.start("--enable-ssl-passthrough", "--gateway-port-offset", str(local - 443),
                            "--publish-status-address", "192.0.2.10")
        await eventually(lambda: _port_open(local))
        assert await _talk(local, ROUTE_HOST, pki.cafile) == (ROUTE_HOST, "route-pod:hi\n")

        def accepted() -> bool:
            route = kube_api.get("TLSRoute", "infra", "tls")
            parents = (route.get("status") or {}).get("parents") or []
            return any(c["type"] == "Accepted" and c["status"] == "True"
                       for p in parents for c in p.get("conditions", []))

        await eventually(accepted)
        assert any(r.resource == "tlsroutes" and r.verb == "watch" for r in kube_api.requests)
    finally:
        await pod.stop()
