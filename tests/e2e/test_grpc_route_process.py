"""A GRPCRoute served by the real process in file mode: gRPC calls (HTTP/1.1 POSTs with content-type
application/grpc, until HTTP/2 to clients exists) reach the echo pod of the rule their service/method selects.

Reproduces grpcroute-exact-method-matching.go (conformance/tests of sigs.k8s.io/gateway-api) end to end, minus
the wire: its manifest's rules, Echo → v1, EchoTwo → v2, EchoThree → no route. The backends are spoken HTTP/1.1
here; once h2c to pods lands (Cluster.protocol "h2c"), the pods of this test must speak h2c too.
"""

from __future__ import annotations

import json
import socket
import struct

from e2e_harness import eventually, service

GROUP = "gateway.networking.k8s.io"
ECHO = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manifests(v1: list, v2: list) -> list[dict]:
    gateway_class = {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": "pyngress"},
                     "spec": {"controllerName": "pyngress.dev/gateway-controller"}}
    gateway = {"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "edge", "namespace": "default"},
               "spec": {"gatewayClassName": "pyngress",
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
    route = {"apiVersion": f"{GROUP}/v1", "kind": "GRPCRoute", "metadata": {"name": "exact-matching",
                                                                          "namespace": "default"},
             "spec": {"parentRefs": [{"name": "edge"}], "rules": [
                 {"matches": [{"method": {"service": ECHO, "method": "Echo"}}],
                  "backendRefs": [{"name": "grpc-v1", "port": 80}]},
                 {"matches": [{"method": {"service": ECHO, "method": "EchoTwo"}}],
                  "backendRefs": [{"name": "grpc-v2", "port": 80}]}]}}
    return [gateway_class, gateway, route, *service("grpc-v1", pods=v1), *service("grpc-v2", pods=v2)]


async def test_grpc_calls_reach_the_pod_of_their_method(echo_pods, manifests, pyngress):
    v1 = await echo_pods.start("grpc-v1-pod", "127.0.0.3")
    v2 = await echo_pods.start("grpc-v2-pod", "127.0.0.4")
    gateway_port = _free_port()  # the listener's port 80 lands on 80 + offset
    path = manifests.write("grpc.yaml", _manifests([v1], [v2]))
    proc = await pyngress(path, "--gateway-port-offset", str(gateway_port - 80))
    url = f"http://127.0.0.1:{gateway_port}"
    message = b"\x0a\x05hello"  # a protobuf field 1 = "hello"
    frame = b"\x00" + struct.pack(">I", len(message)) + message  # gRPC length-prefixed message
    grpc = {"content-type": "application/grpc", "te": "trailers", "grpc-timeout": "5S"}

    async def call(method: str) -> tuple[int, object]:
        return await proc._fetch("POST", f"{url}/{ECHO}/{method}", headers=grpc, timeout=10, data=frame)

    async def both_served() -> bool:
        first, second = await call("Echo"), await call("EchoTwo")
        return first[0] == 200 and second[0] == 200

    await eventually(both_served)
    status, body = await call("Echo")
    assert status == 200 and isinstance(body, dict)
    assert body["pod"] == "grpc-v1-pod" and body["method"] == "POST" and body["path"] == f"/{ECHO}/Echo"
    assert body["headers"]["content-type"] == "application/grpc"
    assert body["body"].encode("latin-1", errors="replace")[:5] == frame[:5]
    status, body = await call("EchoTwo")
    assert status == 200 and isinstance(body, dict) and body["pod"] == "grpc-v2-pod"
    status, _ = await call("EchoThree")
    assert status == 404  # UNIMPLEMENTED once the gRPC error answers exist
    status, body = await proc._fetch("GET", f"{url}/{ECHO}/Echo", headers={}, timeout=10)
    assert status == 404  # gRPC is POST only

    # /debug/routes: the GRPCRoute's rules on the Gateway port's table (h2c clusters), and its status.
    status, dump = await proc.admin_get("/debug/routes")
    assert status == 200
    (table,) = [entry for entry in dump["listeners"].values() if entry["port"] == 80]
    text = json.dumps(table)
    assert '"kind": "GRPCRoute"' in text and f"/{ECHO}/EchoTwo" in text and '"protocol": "h2c"' in text
    (entry,) = dump["gateways"]["grpcRoutes"]["default/exact-matching"]
    assert {c["type"]: c["status"] for c in entry["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}
