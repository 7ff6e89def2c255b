"""The upstream conformance suite's HTTPRoute tests (suite_httproute.py), at the routing level.

One test per upstream test, named after it: each step's manifests built on the base manifests, the status
the upstream test waits for checked on the status the build computed, and its requests played through the
built tables by `harness.send` (the data plane's own part, sockets, timeouts firing, mirrors sent, is
exercised end to end in tests/e2e/gateway on the same data).
"""

from __future__ import annotations

from .conformance import conformance, route_has, routing_tests
from .harness import send
from .objects import backend, http_route, parent, rule
from .suite_httproute import TESTS

globals().update(routing_tests(TESTS))


def test_h2c_backends_are_refused_until_http2():
    """HTTPRouteBackendProtocolH2C is out of scope (h2c needs HTTP/2): its manifest gets the status the spec
    asks for a backend protocol that cannot be spoken, and its requests 500."""
    config = conformance(
        http_route("backend-protocol-h2c", rule(backends=[backend("infra-backend-v1", 8081)]),
                   parents=[parent("same-namespace")]),
        gateways=("same-namespace",),
    )
    assert route_has(config, "backend-protocol-h2c", "same-namespace", "ResolvedRefs", "False", "UnsupportedProtocol")
    assert send(config, "/").status == 500
