"""Tracing in the real process with `--workers 2`: every worker exports its spans to a real OTLP/HTTP collector
(decoded with opentelemetry-proto), sends W3C trace context to the pods, writes trace ids into the access log;
the control process's /metrics adds up the export counts and serves exemplars in OpenMetrics when asked."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))  # the collector

from e2e_harness import DEADLINE, INGRESS_CLASS, eventually, ingress, metric, service, start_pyngress
from otlp_collector import Collector
from test_workers import children

HOST = "app.example.test"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def collector():
    receiver = await Collector().start()
    yield receiver
    await receiver.stop()


async def test_workers_export_spans_and_propagate_trace_context(echo_pods, manifests, collector, tmp_path: Path):
    [web] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[web]))
    quiet = ingress("quiet", host=HOST, paths=[("/quiet", "Prefix", "web", 80)])
    quiet["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/enable-opentelemetry": "false"}
    manifests.write("ingress.yaml", [ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)]), quiet])
    proc = await start_pyngress(manifests.path, "--workers", "2", "--otlp-endpoint", collector.url,
                                "--trace-sample-ratio", "1", "--otlp-export-interval", "0.1",
                                log_path=tmp_path / "pyngress.log",
                                env={"POD_NAME": "pyngress-7d9f", "POD_NAMESPACE": "ingress"})
    try:
        workers = children(proc.process.pid)
        assert len(workers) == 2
        sent = 40
        upstream = []
        for index in range(sent):  # fresh connections: the kernel spreads them over both workers
            status, body = await proc.request(f"/page/{index}", host=HOST)
            assert status == 200, body
            upstream.append(body["headers"]["traceparent"])
        status, body = await proc.request("/page/continued", host=HOST,
                                          headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
        assert body["headers"]["traceparent"].startswith(f"00-{TRACE}-")
        upstream.append(body["headers"]["traceparent"])
        status, body = await proc.request("/quiet", host=HOST)
        assert status == 200 and "traceparent" not in body["headers"]  # enable-opentelemetry: "false"

        status, table = await proc.admin_get("/debug/routes")
        described = [entry for entry in _entries(table) if entry.get("ingress") == "default/quiet"]
        assert described and all(entry["tracing"] is False for entry in described), table

        spans = await collector.wait_for(sent + 1, timeout=DEADLINE)
        assert {f"00-{s.trace_id}-{s.span_id}-01" for s in spans} == set(upstream)
        assert {s.resource["process.pid"] for s in spans} == workers  # both workers exported theirs
        assert all(s.resource["k8s.pod.name"] == "pyngress-7d9f" and s.resource["k8s.namespace.name"] == "ingress"
                   for s in spans)

        records = await proc.access_log(sent + 2)
        logged = {r["path"]: (r["trace_id"], r["span_id"]) for r in records}
        assert logged["/quiet"] == (None, None)
        assert {f"00-{t}-{s}-01" for path, (t, s) in logged.items() if path != "/quiet"} == set(upstream)

        async def exported() -> bool:
            status, text = await proc.admin_get("/metrics")
            return metric(text, "pyngress_trace_spans_exported_total") == sent + 1
        await eventually(exported)
        status, text = await proc.admin_get("/metrics")
        assert metric(text, "pyngress_trace_spans_dropped_total", reason="queue-full") == 0
        assert metric(text, "pyngress_trace_spans_dropped_total", reason="export-failed") == 0
        assert "trace_id" not in text  # exemplars only in OpenMetrics
        status, text = await proc._fetch("GET", proc.admin + "/metrics", timeout=DEADLINE,
                                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert status == 200 and text.rstrip().endswith("# EOF")
        exemplars = set(re.findall(r'^pyngress_request_duration_seconds_bucket\{[^}]*ingress="app"[^}]*\} \S+ '
                                   r'# \{span_id="([0-9a-f]{16})",trace_id="([0-9a-f]{32})"\}', text, re.MULTILINE))
        assert exemplars and all(f"00-{t}-{s}-01" in upstream for s, t in exemplars), text
    finally:
        await proc.close()


def _entries(value):
    """Every JSON object nested in `value`."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _entries(item)
    elif isinstance(value, list):
        for item in value:
            yield from _entries(item)
