"""The upstream conformance suite's HTTPRoute tests (suite_httproute.py), at the routing level.

One test per upstream test, named after it: each step's manifests built on the base manifests, the status
the upstream test waits for checked on the status the build computed, and its requests played through the
built tables by `harness.send` (the data plane's own part, sockets, timeouts firing, mirrors sent, is
exercised end to end in tests/e2e/gateway on the same data).
"""

from __future__ import annotations

from proxy.routing.policies import HTTP2

from .conformance import conformance, route_has, routing_tests
from .objects import backend, http_route, parent, rule
from .suite_httproute import TESTS

globals().update(routing_tests(TESTS))


def test_h2c_backends_are_spoken_to_in_http2():
    """HTTPRouteBackendProtocolH2C: a Service port with appProtocol kubernetes.io/h2c is a resolved backend whose
    cluster is spoken to in HTTP/2 (h2c; tests/server/test_h2_upstream.py has the data plane)."""
    config = conformance(
        http_route("backend-protocol-h2c", rule(backends=[backend("infra-backend-v1", 8081)]),
                   parents=[parent("same-namespace")]),
        gateways=("same-namespace",),
    )
    assert route_has(config, "backend-protocol-h2c", "same-namespace", "ResolvedRefs", "True", "ResolvedRefs")
    assert config.clusters["gateway-conformance-infra/infra-backend-v1:8081"].protocol == HTTP2
