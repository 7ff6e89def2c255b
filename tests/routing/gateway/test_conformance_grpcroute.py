"""The upstream conformance suite's GRPCRoute tests (suite_grpcroute.py), at the routing level: each call as the
routing sees it (POST /<service>/<method>, the metadata as header fields) played through the built tables; end to
end with a real grpcio client and grpcio echo pods in tests/e2e/gateway. test_grpc_routes.py has the spec's rules
around them."""

from __future__ import annotations

from .conformance import routing_tests
from .suite_grpcroute import TESTS

globals().update(routing_tests(TESTS))
