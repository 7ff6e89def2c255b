"""Request ids from the pool (proxy.http.ids): unique, 32 lower-case hex digits, each request's own."""

from __future__ import annotations

import re

from proxy.http.ids import POOL_IDS, STEP, TRACE_IDS, TRACEPARENT_AFTER, TRACEPARENT_BEFORE, IdPool
from proxy.tracing.context import parse_traceparent

_HEX32 = re.compile(rb"[0-9a-f]{32}")


def test_ids_are_hex_unique_and_each_request_gets_two_groups_of_its_own():
    pool = IdPool()
    request_ids, span_ids = set(), set()
    for _ in range(POOL_IDS * 3 + 5):  # across refills
        data, at = pool.take()
        window = data[at : at + 49]
        assert _HEX32.fullmatch(window[:32]) and window[32:33] == b"-" and re.fullmatch(rb"[0-9a-f]{16}", window[33:])
        # The window ends before the next request's ids begin.
        assert at + 49 <= len(data) and STEP > 49
        request_ids.add(window[:32])
        span_ids.add(window[33:])
    assert len(request_ids) == len(span_ids) == POOL_IDS * 3 + 5


def test_each_request_part_of_the_pool_is_an_unsampled_traceparent_around_its_ids():
    """Tracing takes a new trace's traceparent value as one slice of the pool (proxy.http.ids layout); W3C Trace
    Context's version 00 format: https://www.w3.org/TR/trace-context/#traceparent-header-field-values."""
    pool = IdPool()
    for _ in range(POOL_IDS * 2 + 3):
        data, at = pool.take()
        value = data[at - TRACEPARENT_BEFORE : at + TRACEPARENT_AFTER]
        assert parse_traceparent(value) == (data[at : at + 32], data[at + 33 : at + 49], False)
        assert value == b"00-" + data[at : at + TRACE_IDS] + b"-00"
