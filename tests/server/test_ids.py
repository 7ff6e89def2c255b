"""Request ids from the pool (proxy.http.ids): unique, 32 lower-case hex digits, each request's own; with tracing,
each request's part of the pool is the traceparent value of a new unsampled trace around its ids."""

from __future__ import annotations

import re

import pytest

from proxy.http.ids import POOL_IDS, REQUEST_ID, STEP, TRACE_IDS, TRACEPARENT_AFTER, TRACEPARENT_BEFORE, IdPool
from proxy.tracing.context import parse_traceparent

_HEX = re.compile(rb"[0-9a-f]+")


@pytest.mark.parametrize("traceparents", [False, True])
def test_ids_are_hex_unique_and_each_request_gets_its_own_part(traceparents):
    pool = IdPool()
    if traceparents:
        pool.lay_out_traceparents()
    request_ids, span_ids = set(), set()
    for _ in range(POOL_IDS * 3 + 5):  # across refills
        data, at = pool.take()
        request_id = data[at : at + REQUEST_ID]
        span_id = data[at + 33 : at + TRACE_IDS]
        assert len(request_id) == 32 and _HEX.fullmatch(request_id)
        assert len(span_id) == 16 and _HEX.fullmatch(span_id)
        # The request's part ends before the next request's begins.
        assert at + TRACEPARENT_AFTER <= len(data) and TRACEPARENT_BEFORE + TRACEPARENT_AFTER <= STEP
        request_ids.add(request_id)
        span_ids.add(span_id)
    assert len(request_ids) == len(span_ids) == POOL_IDS * 3 + 5


def test_each_request_part_of_the_pool_is_an_unsampled_traceparent_around_its_ids():
    """Tracing takes a new trace's traceparent value as one slice of the pool (proxy.http.ids layout); W3C Trace
    Context's version 00 format: https://www.w3.org/TR/trace-context/#traceparent-header-field-values."""
    pool = IdPool()
    pool.take()  # a pool made before tracing asked for the layout is not used after it
    pool.lay_out_traceparents()
    for _ in range(POOL_IDS * 2 + 3):
        data, at = pool.take()
        value = data[at - TRACEPARENT_BEFORE : at + TRACEPARENT_AFTER]
        assert parse_traceparent(value) == (data[at : at + 32], data[at + 33 : at + 49], False)
        assert value == b"00-" + data[at : at + TRACE_IDS] + b"-00"


def test_the_request_path_literals_agree_with_the_layout():
    """Pipeline.dispatch cuts a new trace's traceparent value as ``id_pool[at - 3 : at + 52]`` and marks it sampled
    at index 54, and record() reads the sampled flag as ``trace[54] == 0x31``: literals (compiled, C constants, no
    global lookups) that must stay the layout's and W3C Trace Context's (version 00, flags' last digit)."""
    from proxy.tracing.context import SAMPLED_AT, SAMPLED_BYTE

    assert (TRACEPARENT_BEFORE, TRACEPARENT_AFTER, SAMPLED_AT, SAMPLED_BYTE) == (3, 52, 54, 0x31)
    sampled = b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"
    parsed = parse_traceparent(sampled)
    assert sampled[54] == 0x31 and parsed is not None and parsed[2]
