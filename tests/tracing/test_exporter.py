"""The span exporter's thread against a real collector: batches, refusals and a dead collector counted, the
queue bounded, what is queued sent at close."""

from __future__ import annotations

import asyncio
import socket

import pytest

from otlp_collector import Collector
from proxy.tracing.exporter import SpanExporter, traces_url

DEADLINE = 10.0
LABELS = ("shop", "web", "a.test", "/api", "api", "Ingress")


def record(index: int) -> tuple:
    traceparent = b"00-%032x-%016x-01" % (index + 1, index + 1)
    return (traceparent, None, None, 1, 2, b"GET", b"/", "http", 80, b"a.test", b"127.0.0.1", 200, 1, 2, None, 0,
            LABELS, "", None, b"id", False)


@pytest.fixture
async def collector():
    receiver = await Collector().start()
    yield receiver
    await receiver.stop()


async def eventually(check, timeout: float = DEADLINE) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("http://collector:4318", ("http", "collector", 4318, "/v1/traces")),
    ("http://collector:4318/", ("http", "collector", 4318, "/v1/traces")),
    ("https://otel.example/custom/path?x=1", ("https", "otel.example", 443, "/custom/path?x=1")),
    ("http://[::1]:4318", ("http", "::1", 4318, "/v1/traces")),
])
def test_endpoint_urls(endpoint, expected):
    assert traces_url(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["collector:4318", "grpc://collector:4317", "http://", ""])
def test_endpoints_that_are_not_http_urls(endpoint):
    with pytest.raises(ValueError):
        traces_url(endpoint)


async def test_spans_go_out_in_batches(collector):
    exporter = SpanExporter(collector.url, interval=0.05, batch=100)
    try:
        for index in range(250):
            exporter.add(record(index))
        spans = await collector.wait_for(250)
        assert sorted(int(s.span_id, 16) for s in spans) == list(range(1, 251))
        assert collector.requests >= 3  # at most 100 spans per request
        await eventually(lambda: exporter.exported == 250)
        assert (exporter.dropped, exporter.failed) == (0, 0)
    finally:
        await asyncio.to_thread(exporter.close)


async def test_refused_batches_are_counted_and_the_thread_goes_on():
    collector = await Collector(status=503).start()
    exporter = SpanExporter(collector.url, interval=0.05)
    try:
        for index in range(10):
            exporter.add(record(index))
        await eventually(lambda: exporter.failed == 10)
        collector.status = 200
        exporter.add(record(10))
        await collector.wait_for(1)
        await eventually(lambda: exporter.exported == 1)
    finally:
        await asyncio.to_thread(exporter.close)
        await collector.stop()


async def test_a_collector_that_never_answers_fills_the_bounded_queue_and_adding_never_blocks():
    # A listener that accepts (the kernel does) but never reads or answers: each export waits out its timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        exporter = SpanExporter(f"http://127.0.0.1:{port}", interval=0.01, batch=10, limit=50, timeout=0.5)
        try:
            for index in range(1000):
                exporter.add(record(index))  # on the loop: must return at once whatever the collector does
            assert len(exporter.pending) <= 50
            assert exporter.dropped >= 1000 - 50 - 10
            await eventually(lambda: exporter.failed >= 10)
        finally:
            await asyncio.to_thread(exporter.close, 1.0)


async def test_close_sends_what_is_queued(collector):
    exporter = SpanExporter(collector.url, interval=3600)
    for index in range(7):
        exporter.add(record(index))
    await asyncio.to_thread(exporter.close)
    assert len(collector.spans) == 7 and exporter.exported == 7


async def test_idle_means_nothing_queued_and_no_export_under_way(collector):
    """POST /debug/tracing/flush answers at once when the exporter is idle (no thread hop for nothing to send); a
    queued span or an export in progress is waited for (tests/e2e/test_tracing_flush.py)."""
    exporter = SpanExporter(collector.url, interval=3600)
    try:
        assert exporter.idle()
        exporter.add(record(0))
        assert not exporter.idle()
        await asyncio.get_running_loop().run_in_executor(None, exporter.flush)
        assert exporter.idle() and exporter.exported == 1
        with exporter._lock:  # an export under way (the thread's, or another flush)
            assert not exporter.idle()
        assert exporter.idle()
    finally:
        await asyncio.get_running_loop().run_in_executor(None, exporter.close)
