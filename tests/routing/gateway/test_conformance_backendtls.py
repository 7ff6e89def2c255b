"""The upstream conformance suite's BackendTLSPolicy tests over HTTP/1.1 (suite_backendtls.py), at the routing level:
the policies' status.ancestors conditions as the build computes them, and how the upstream is told to dial each
backend (end to end, with real TLS handshakes to an HTTPS echo pod: tests/e2e/gateway)."""

from __future__ import annotations

from .conformance import routing_tests
from .suite_backendtls import TESTS

globals().update(routing_tests(TESTS))
