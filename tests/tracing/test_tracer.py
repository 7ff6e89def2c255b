"""The request path's part of tracing, on a bare request head: ids, the sampling rule, the fields written."""

from __future__ import annotations

import pytest

from proxy.http.head import RequestHead
from proxy.http.ids import ids
from proxy.tracing.context import parse_traceparent
from proxy.tracing.tracer import Tracer

TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = b"00f067aa0ba902b7"


def head(*fields: tuple[bytes, bytes]) -> RequestHead:
    """A head as the protocol leaves it: the fields, the trace context seen, and its ids' place in the pool
    (laid out for tracing, as the server asks when it has a tracer)."""
    if not ids.traceparents:
        ids.lay_out_traceparents()
    request = RequestHead()
    request.id_pool, request.id_at = ids.take()
    for name, value in fields:
        request.add_header(name, value)
        if name.lower() == b"traceparent":
            request.traceparent = value if request.traceparent is None else b""
        elif name.lower() == b"tracestate":
            request.tracestate = value
    return request


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_new_traces_follow_the_ratio_rule_and_never_repeat_an_id(ratio):
    tracer = Tracer(ratio=ratio)
    seen = set()
    for _ in range(1000):  # several refills of the id pool
        request = head()
        tracer.start(request)
        trace_id, span_id, sampled = parse_traceparent(request.trace)
        assert sampled == (int(trace_id, 16) >> 64 < tracer.bound)
        assert request.fields == []  # (the pipeline writes `trace` as the upstream head's last field)
        # A new trace's id is the request's generated id (proxy.http.ids: the protocol cuts it from there).
        assert trace_id == request.id_pool[request.id_at : request.id_at + 32]
        seen.update((trace_id, span_id))
    assert len(seen) == 2000


def test_a_trusted_parent_is_continued_with_its_flag_and_state():
    tracer = Tracer(ratio=1.0)
    request = head((b"Accept", b"*/*"), (b"traceparent", b"00-" + TRACE + b"-" + PARENT + b"-00"),
                   (b"tracestate", b"a=1, b=2"))
    tracer.start(request)
    trace_id, span_id, sampled = parse_traceparent(request.trace)
    assert (trace_id, sampled) == (TRACE, False) and span_id != PARENT
    assert request.tracestate == b"a=1,b=2"
    assert request.fields == [b"Accept", b": ", b"*/*", b"\r\n", b"tracestate", b": ", b"a=1,b=2", b"\r\n"]


@pytest.mark.parametrize(("fields", "trust"), [
    (((b"traceparent", b"00-" + TRACE + b"-" + PARENT + b"-01"),), False),
    (((b"TraceParent", b"nonsense"), (b"tracestate", b"a=1")), True),
    (((b"tracestate", b"a=1"),), True),  # a state without its traceparent
])
def test_untrusted_or_invalid_context_starts_a_new_trace_and_drops_the_state(fields, trust):
    request = head(*fields)
    request.connection_names = {b"traceparent"}  # a Connection header naming it must not drop ours
    Tracer(ratio=1.0, trust_incoming=trust).start(request)
    trace_id, _, _ = parse_traceparent(request.trace)
    assert trace_id != TRACE and request.tracestate is None
    assert request.fields == []
    assert request.connection_names == set()
