"""POST /debug/tracing/flush on the admin port: the spans queued so far reach the collector before the answer, so
tests and bench.instructions count every span of a window without waiting for --otlp-export-interval (issue #15).
(pyngress's own endpoint; ingress-nginx has none: its OpenTelemetry module exports on the BatchSpanProcessor's
schedule only.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))  # the collector

from e2e_harness import DEADLINE, INGRESS_CLASS, ingress, service, start_pyngress
from otlp_collector import Collector

HOST = "app.example.test"


@pytest.fixture
async def collector():
    receiver = await Collector().start()
    yield receiver
    await receiver.stop()


async def _flush(proc) -> tuple[int, dict]:
    return await proc._fetch("POST", proc.admin + "/debug/tracing/flush", headers={}, timeout=DEADLINE)


async def test_flush_exports_queued_spans_before_answering(echo_pods, manifests, collector, tmp_path: Path):
    [web] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[web]))
    manifests.write("ingress.yaml", ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)]))
    # An hour between timed exports: within the test only the flush sends spans.
    proc = await start_pyngress(manifests.path, "--otlp-endpoint", collector.url, "--trace-sample-ratio", "1",
                                "--otlp-export-interval", "3600", log_path=tmp_path / "pyngress.log")
    try:
        upstream = []
        for index in range(3):
            status, body = await proc.request(f"/page/{index}", host=HOST)
            assert status == 200, body
            upstream.append(body["headers"]["traceparent"])
        assert collector.spans == []
        status, answer = await _flush(proc)
        assert status == 200, answer
        assert answer == {"exported": 3, "failed": 0, "dropped": 0, "pending": 0}
        # Already there when the answer came: no waiting.
        assert {f"00-{s.trace_id}-{s.span_id}-01" for s in collector.spans} == set(upstream)
        status, answer = await _flush(proc)  # nothing queued: nothing sent
        assert status == 200 and answer["exported"] == 3 and collector.requests == 1
    finally:
        await proc.close()


async def test_flush_without_an_exporter_in_the_process(echo_pods, manifests, collector, tmp_path: Path):
    """No --otlp-endpoint: 404; with --workers the workers export their own spans, the control process has none."""
    manifests.write("class.yaml", INGRESS_CLASS)
    for args in ((), ("--workers", "2", "--otlp-endpoint", collector.url)):
        proc = await start_pyngress(manifests.path, *args, log_path=tmp_path / "pyngress.log")
        try:
            status, answer = await _flush(proc)
            assert status == 404 and "no span exporter" in answer["error"], answer
        finally:
            await proc.close()
