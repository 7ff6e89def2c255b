"""The upstream Gateway API conformance tests end to end: the conformance data of tests/routing/gateway (the
same manifests, requests and expected answers) against the real `pyngress` process, in file mode and in
cluster mode, with echo pods behind it and real clients in front (conformance_runner.py says what this adds
to the routing level). One test per upstream test and mode, named after it: test_<Name>[file], [cluster].
"""

from __future__ import annotations

import json

import pytest

from e2e_harness import eventually, scrape
from routing.gateway.scenario import ConformanceTest
from routing.gateway.suite_backendtls import TESTS as BACKEND_TLS_TESTS
from routing.gateway.suite_gateway import TESTS as GATEWAY_TESTS
from routing.gateway.suite_grpcroute import TESTS as GRPCROUTE_TESTS
from routing.gateway.suite_httproute import TESTS as HTTPROUTE_TESTS

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


def _end_to_end(test: ConformanceTest):
    async def check(conformance) -> None:
        await conformance.run(test)

    check.__name__ = check.__qualname__ = f"test_{test.name}"
    check.__doc__ = f"Upstream conformance test {test.name}, end to end."
    if test.xfail:
        check = pytest.mark.xfail(strict=True, reason=test.xfail)(check)
    return check


globals().update({f"test_{test.name}": _end_to_end(test) for test in (*HTTPROUTE_TESTS, *GATEWAY_TESTS,
                                                                               *BACKEND_TLS_TESTS, *GRPCROUTE_TESTS)})


async def test_httproute_traffic_is_counted_and_logged(conformance) -> None:
    """HTTPRoute requests on /metrics (kind="HTTPRoute", the route's name in the `ingress` label) and in the JSON
    access log (route_kind "HTTPRoute")."""
    simple = next(test for test in HTTPROUTE_TESTS if test.name == "HTTPRouteSimpleSameNamespace")
    env = conformance.env
    await env.apply(simple.steps[0], fresh=True)
    path = "/counted-and-logged"
    answer = await conformance.client.send(local_port=80 + env.offset, path=path, host="example.com")
    assert answer.status == 200 and answer.echo is not None
    labels = {"kind": "HTTPRoute", "ingress": "gateway-conformance-infra-test",
              "namespace": "gateway-conformance-infra", "service": "infra-backend-v1", "method": "GET", "status": "200"}
    assert (await scrape(env.process, "pyngress_requests_total", **labels) or 0) >= 1
    def logged() -> dict | None:
        records = (json.loads(line) for line in env.process.stdout_lines if line.startswith("{"))
        return next((record for record in records if record["path"] == path), None)

    line = await eventually(logged)
    assert (line["route_kind"], line["ingress"], line["namespace"], line["service"], line["status"]) == (
        "HTTPRoute", "gateway-conformance-infra-test", "gateway-conformance-infra", "infra-backend-v1", 200)


async def test_grpcroute_traffic_is_counted_and_logged(conformance) -> None:
    """GRPCRoute calls on /metrics (kind="GRPCRoute", the route's name in the `ingress` label) and in the JSON access
    log (route_kind "GRPCRoute", protocol HTTP/2.0), as HTTPRoute traffic is (GRPCExactMethodMatching's state)."""
    exact = next(test for test in GRPCROUTE_TESTS if test.name == "GRPCExactMethodMatching")
    env = conformance.env
    await env.apply(exact.steps[0], fresh=True)
    answer = await conformance.client.grpc(local_port=80 + env.offset, method="EchoTwo", host="example.com")
    assert answer.grpc_status == 0 and answer.echo is not None
    labels = {"kind": "GRPCRoute", "ingress": "exact-matching", "namespace": "gateway-conformance-infra",
              "service": "grpc-infra-backend-v2", "method": "POST", "status": "200"}
    assert (await scrape(env.process, "pyngress_requests_total", **labels) or 0) >= 1
    path = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/EchoTwo"

    def logged() -> dict | None:
        records = (json.loads(line) for line in env.process.stdout_lines if line.startswith("{"))
        return next((record for record in records if record["path"] == path), None)

    line = await eventually(logged)
    assert (line["route_kind"], line["ingress"], line["service"], line["status"], line["protocol"]) == (
        "GRPCRoute", "exact-matching", "grpc-infra-backend-v2", 200, "HTTP/2.0")
