"""The upstream conformance suite's Gateway tests (suite_gateway.py), at the routing level: listener and
Gateway status as data, and requests through the built tables (end to end: tests/e2e/gateway)."""

from __future__ import annotations

from .conformance import routing_tests
from .suite_gateway import TESTS

globals().update(routing_tests(TESTS))
