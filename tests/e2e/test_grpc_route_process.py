"""A GRPCRoute served by the real process in file mode, end to end in gRPC: a real grpcio client speaks h2c
(prior knowledge) to the Gateway listener, pyngress routes each call by its service/method and speaks h2c to
real grpcio servers.

Reproduces grpcroute-exact-method-matching.go (conformance/tests of sigs.k8s.io/gateway-api): its manifest's
rules, Echo → v1, EchoTwo → v2, EchoThree → no route (UNIMPLEMENTED, answered by the proxy); plus the three
streaming kinds (issue 13: "unary and all three streaming kinds, end to end, with trailers").
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest

from e2e_harness import eventually, service

GROUP = "gateway.networking.k8s.io"
ECHO = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
OTHER = "other.Svc"


@dataclass
class _GrpcPod:
    """A real grpcio server on a loopback address answering every method of ECHO with its own name."""

    name: str
    address: str
    server: grpc.Server
    port: int = 0


def _start_pod(name: str, address: str) -> _GrpcPod:
    me = name.encode()

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.set_trailing_metadata((("x-pod", name),))
        return me + b":" + request

    def server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for index in range(int(request)):
            yield me + b":%d" % index

    def client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return me + b":" + b"+".join(requests)

    def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests:
            yield me + b":" + request.upper()

    handler = grpc.method_handlers_generic_handler(ECHO, {
        "Echo": grpc.unary_unary_rpc_method_handler(unary),
        "EchoTwo": grpc.unary_unary_rpc_method_handler(unary),
        "EchoThree": grpc.unary_unary_rpc_method_handler(unary),
        "Count": grpc.unary_stream_rpc_method_handler(server_stream),
        "Join": grpc.stream_unary_rpc_method_handler(client_stream),
        "Shout": grpc.stream_stream_rpc_method_handler(bidi),
    })
    other = grpc.method_handlers_generic_handler(OTHER, {"Echo": grpc.unary_unary_rpc_method_handler(unary)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler, other))
    pod = _GrpcPod(name, address, server)
    pod.port = server.add_insecure_port(f"{address}:0")
    server.start()
    return pod


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manifests(v1: _GrpcPod, v2: _GrpcPod, rules: list[dict] | None = None) -> list[dict]:
    gateway_class = {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": "pyngress"},
                     "spec": {"controllerName": "pyngress.dev/gateway-controller"}}
    gateway = {"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "edge", "namespace": "default"},
               "spec": {"gatewayClassName": "pyngress",
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}

    def rule(method: str, backend: str) -> dict:
        return {"matches": [{"method": {"service": ECHO, "method": method}}],
                "backendRefs": [{"name": backend, "port": 80}]}

    route = {"apiVersion": f"{GROUP}/v1", "kind": "GRPCRoute",
             "metadata": {"name": "exact-matching", "namespace": "default"},
             "spec": {"parentRefs": [{"name": "edge"}], "rules": rules or [
                 rule("Echo", "grpc-v1"), rule("EchoTwo", "grpc-v2"), rule("Count", "grpc-v1"),
                 rule("Join", "grpc-v2"), rule("Shout", "grpc-v1")]}}
    return [gateway_class, gateway, route, *service("grpc-v1", pods=[v1]), *service("grpc-v2", pods=[v2])]  # type: ignore[list-item]


@pytest.fixture
def grpc_pods():
    pods = [_start_pod("grpc-v1-pod", "127.0.0.3"), _start_pod("grpc-v2-pod", "127.0.0.4")]
    yield pods
    for pod in pods:
        pod.server.stop(grace=None)


def _calls(target: str) -> dict:
    """What the test asks of the proxy, run in a thread (grpcio's blocking client, every call with a deadline)."""
    identity = {"request_serializer": None, "response_deserializer": None}
    with grpc.insecure_channel(target) as channel:
        def unary(method: str, message: bytes) -> tuple[bytes | None, grpc.StatusCode, dict]:
            call = channel.unary_unary(f"/{ECHO}/{method}", **identity)
            try:
                answer, state = call.with_call(message, timeout=5)
                return answer, state.code(), dict(state.trailing_metadata() or ())
            except grpc.RpcError as error:
                return None, error.code(), {"details": error.details()}

        results: dict = {
            "echo": unary("Echo", b"hello"),
            "two": unary("EchoTwo", b"hi"),
            "three": unary("EchoThree", b"hi"),
        }
        results["count"] = list(channel.unary_stream(f"/{ECHO}/Count", **identity)(b"3", timeout=5))
        results["join"] = channel.stream_unary(f"/{ECHO}/Join", **identity)(iter([b"a", b"b", b"c"]), timeout=5)
        results["shout"] = list(channel.stream_stream(f"/{ECHO}/Shout", **identity)(iter([b"x", b"y"]), timeout=5))
    return results


async def test_grpc_calls_reach_the_pod_of_their_method(grpc_pods, manifests, pyngress):
    v1, v2 = grpc_pods
    gateway_port = _free_port()  # the listener's port 80 lands on 80 + offset
    path = manifests.write("grpc.yaml", _manifests(v1, v2))
    proc = await pyngress(path, "--gateway-port-offset", str(gateway_port - 80))
    target = f"127.0.0.1:{gateway_port}"

    async def served() -> bool:
        try:
            results = await asyncio.wait_for(asyncio.to_thread(_calls, target), 30)
        except grpc.RpcError:
            return False
        return results["echo"][1] == grpc.StatusCode.OK

    await eventually(served)
    results = await asyncio.wait_for(asyncio.to_thread(_calls, target), 30)
    # Unary, with the pod's trailers carried through both HTTP/2 hops.
    assert results["echo"] == (b"grpc-v1-pod:hello", grpc.StatusCode.OK, {"x-pod": "grpc-v1-pod"})
    assert results["two"][:2] == (b"grpc-v2-pod:hi", grpc.StatusCode.OK)
    # No rule for EchoThree: the proxy's own answer is a gRPC error, not an HTML 404.
    assert results["three"][:2] == (None, grpc.StatusCode.UNIMPLEMENTED)
    # Server streaming, client streaming, bidirectional streaming.
    assert results["count"] == [b"grpc-v1-pod:0", b"grpc-v1-pod:1", b"grpc-v1-pod:2"]
    assert results["join"] == b"grpc-v2-pod:a+b+c"
    assert results["shout"] == [b"grpc-v1-pod:X", b"grpc-v1-pod:Y"]

    # /debug/routes: the GRPCRoute's rules on the Gateway port's table (HTTP/2 clusters), and its status.
    status, dump = await proc.admin_get("/debug/routes")
    assert status == 200
    (table,) = [entry for entry in dump["listeners"].values() if entry["port"] == 80]
    text = json.dumps(table)
    assert '"kind": "GRPCRoute"' in text and f"/{ECHO}/EchoTwo" in text and '"protocol": "h2"' in text
    (entry,) = dump["gateways"]["grpcRoutes"]["default/exact-matching"]
    assert {c["type"]: c["status"] for c in entry["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}


async def test_a_service_match_wins_over_a_method_match(grpc_pods, manifests, pyngress):
    """apis/v1/grpcroute_types.go (GRPCRouteRule.matches): precedence goes to more characters in a matching service,
    then in a matching method. A method-only rule (listed first) and a service-only rule both match
    `/<ECHO>/Echo`: the service-only one takes it; the method-only one takes Echo of any other service."""
    v1, v2 = grpc_pods
    gateway_port = _free_port()
    rules = [{"matches": [{"method": {"method": "Echo"}}], "backendRefs": [{"name": "grpc-v2", "port": 80}]},
             {"matches": [{"method": {"service": ECHO}}], "backendRefs": [{"name": "grpc-v1", "port": 80}]}]
    path = manifests.write("grpc.yaml", _manifests(v1, v2, rules))
    await pyngress(path, "--gateway-port-offset", str(gateway_port - 80))

    def calls() -> list[bytes | grpc.StatusCode]:
        found: list[bytes | grpc.StatusCode] = []
        with grpc.insecure_channel(f"127.0.0.1:{gateway_port}") as channel:
            for service_name in (ECHO, OTHER):
                try:
                    found.append(channel.unary_unary(f"/{service_name}/Echo")(b"hi", timeout=5))
                except grpc.RpcError as error:
                    found.append(error.code())
        return found

    async def served() -> bool:
        return all(isinstance(answer, bytes) for answer in await asyncio.wait_for(asyncio.to_thread(calls), 30))

    await eventually(served)
    assert await asyncio.wait_for(asyncio.to_thread(calls), 30) == [b"grpc-v1-pod:hi", b"grpc-v2-pod:hi"]


async def test_a_grpc_call_without_endpoints_is_unavailable(manifests, pyngress):
    """No ready pod behind the route: grpc-status 14 (UNAVAILABLE), HTTP 200, as gRPC clients expect."""
    gateway_port = _free_port()
    empty = _GrpcPod("none", "127.0.0.5", None, 9)  # type: ignore[arg-type]
    objects = _manifests(empty, empty)
    for obj in objects:
        if obj["kind"] == "EndpointSlice":
            obj["endpoints"] = []
    path = manifests.write("grpc.yaml", objects)
    proc = await pyngress(path, "--gateway-port-offset", str(gateway_port - 80))
    assert proc is not None

    def call() -> tuple[grpc.StatusCode, str]:
        with grpc.insecure_channel(f"127.0.0.1:{gateway_port}") as channel:
            try:
                channel.unary_unary(f"/{ECHO}/Echo")(b"x", timeout=5)
            except grpc.RpcError as error:
                return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    async def unavailable_from_the_proxy() -> bool:
        # (a client that cannot connect gets UNAVAILABLE too: the proxy's message tells them apart)
        code, details = await asyncio.wait_for(asyncio.to_thread(call), 30)
        return code == grpc.StatusCode.UNAVAILABLE and "endpoints" in details

    await eventually(unavailable_from_the_proxy)
