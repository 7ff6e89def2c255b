"""Tracing through real sockets: W3C trace context to the pods, spans to a real OTLP/HTTP collector (decoded with
opentelemetry-proto), exemplars in the OpenMetrics exposition, drops counted when the collector is away."""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import replace

import pytest

from otlp_collector import Collector
from proxy.metrics import Metrics
from proxy.routing.filters import HeaderEdits, RequestHeaderModifier, compose
from proxy.routing.global_config import GlobalConfig, parse_config
from proxy.routing.model import KIND_HTTP_ROUTE, Route
from proxy.routing.table import RouteTable, VirtualHost
from proxy.tracing.context import parse_traceparent
from server_harness import Rule, cluster, connect, encode_request, make_config, read_response, request

APP = "default/app:80"
EMPTY = "default/empty:80"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]")
DEADLINE = 10.0


@pytest.fixture
async def collector():
    receiver = await Collector().start()
    yield receiver
    await receiver.stop()


def sent_upstream(response, name: str) -> list[str]:
    """Values of header `name` the pod received (the echo pod lists raw headers)."""
    return [value for key, value in response.json()["headers"] if key.lower() == name]


def upstream_context(response) -> tuple[str, str, bool]:
    """(trace id, span id, sampled) of the one traceparent the pod received, which must be well formed."""
    [value] = sent_upstream(response, "traceparent")
    assert TRACEPARENT.fullmatch(value), value
    parsed = parse_traceparent(value.encode())
    assert parsed is not None
    return parsed[0].decode(), parsed[1].decode(), parsed[2]


async def start(make_proxy, make_pods, collector: Collector | None, rules=None, **settings):
    [pod] = await make_pods("app")
    if collector is not None:
        settings.setdefault("otlp_endpoint", collector.url)
    settings.setdefault("otlp_export_interval", 0.05)
    proxy = await make_proxy(**settings)
    proxy.publish(rules or [Rule("example.com", "/", APP)], [cluster(APP, [pod.endpoint]), cluster(EMPTY, [])])
    return proxy, pod


async def test_an_incoming_sampled_trace_is_continued_with_a_new_span(make_proxy, make_pods, collector):
    proxy, pod = await start(make_proxy, make_pods, collector, trace_sample_ratio=0.0)
    response = await request(proxy.port, "/items?id=3", headers=[
        ("traceparent", f"00-{TRACE}-{PARENT}-01"), ("tracestate", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7")])
    assert response.status == 200
    trace_id, span_id, sampled = upstream_context(response)
    assert (trace_id, sampled) == (TRACE, True) and span_id != PARENT
    assert sent_upstream(response, "tracestate") == ["congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"]
    [span] = await collector.wait_for(1)
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE, span_id, PARENT)
    assert span.span.trace_state == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert span.span.kind == 2 and span.span.name == "GET /"  # SERVER; method and the route's path pattern
    assert span.span.flags & 0x301 == 0x301  # sampled, and the parent is remote
    assert 0 < span.span.start_time_unix_nano <= span.span.end_time_unix_nano
    attributes = span.attributes
    assert attributes["http.request.method"] == "GET" and attributes["http.route"] == "/"
    assert attributes["http.response.status_code"] == 200 and attributes["url.path"] == "/items"
    assert attributes["url.scheme"] == "http" and attributes["server.address"] == "example.com"
    assert attributes["server.port"] == proxy.port and attributes["client.address"] == "127.0.0.1"
    assert attributes["pyngress.upstream.address"] == f"{pod.endpoint[0]}:{pod.endpoint[1]}"
    assert attributes["pyngress.upstream.retries"] == 0 and attributes["network.protocol.version"] == "1.1"
    assert (attributes["pyngress.route.namespace"], attributes["pyngress.route.name"],
            attributes["pyngress.route.service"], attributes["pyngress.route.kind"]) == (
        "default", "test", "app", "Ingress")
    assert attributes["http.request.size"] > 0 and attributes["http.response.size"] > len(response.body)
    assert attributes["pyngress.request_id"] == response.header("x-request-id")
    assert "pyngress.reason" not in attributes and "error.type" not in attributes
    assert span.resource["service.name"] == "pyngress" and span.scope[0] == "pyngress"
    assert collector.content_types == {"application/x-protobuf"}


async def test_an_unsampled_parent_is_followed_and_exports_nothing(make_proxy, make_pods, collector):
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=1.0)
    response = await request(proxy.port, "/", headers=[("traceparent", f"00-{TRACE}-{PARENT}-00")])
    trace_id, _, sampled = upstream_context(response)
    assert (trace_id, sampled) == (TRACE, False)
    # A sampled request after it: spans leave in order (its record was queued before the answer was read), so
    # a span of the first one would have arrived with or before this one.
    marker = await request(proxy.port, "/marker")
    [span] = await collector.wait_for(1)
    assert span.trace_id == upstream_context(marker)[0] and span.attributes["url.path"] == "/marker"


async def test_a_request_without_context_starts_a_new_trace(make_proxy, make_pods, collector):
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=1.0)
    first, second = [await request(proxy.port, "/") for _ in range(2)]
    ids = [upstream_context(first), upstream_context(second)]
    assert ids[0][0] != ids[1][0] and all(sampled for _, _, sampled in ids)
    # The new trace's id is the request id the proxy generated (as Envoy ties tracing to x-request-id): one id
    # to search for in the access log, the pod's logs and the tracing backend.
    for response, (trace_id, _, _) in zip((first, second), ids):
        assert sent_upstream(response, "x-request-id") == [trace_id] == [response.header("x-request-id")]
    spans = await collector.wait_for(2)
    assert {(s.trace_id, s.span_id) for s in spans} == {(t, s) for t, s, _ in ids}
    assert all(s.parent_span_id == "" and s.span.trace_state == "" and not s.span.flags & 0x200 for s in spans)


@pytest.mark.parametrize("settings", [{}, {"use_forwarded_headers": True}, {"enable_real_ip": True}])
async def test_our_traceparent_ends_the_upstream_head_once_whatever_the_client_names(make_proxy, make_pods,
                                                                                    collector, settings):
    """The pipeline writes our traceparent after the proxy's own fields (both ways of writing them: the
    connection's, or a trusted client's forwarded fields); a client's Connection header naming the trace
    context drops neither ours nor a continued trace's tracestate, and the X-Request-ID stays the trace id."""
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=0.0, **settings)
    fresh = await request(proxy.port, "/", headers=[("Connection", "traceparent, tracestate")])
    trace_id, _, sampled = upstream_context(fresh)
    assert not sampled and sent_upstream(fresh, "x-request-id") == [trace_id]
    assert [key.lower() for key, _ in fresh.json()["headers"]][-1] == "traceparent"
    continued = await request(proxy.port, "/", headers=[("Connection", "traceparent, tracestate"),
                                                        ("traceparent", f"00-{TRACE}-{PARENT}-00"),
                                                        ("tracestate", "a=1")])
    assert upstream_context(continued)[0] == TRACE
    assert sent_upstream(continued, "tracestate") == ["a=1"]


@pytest.mark.parametrize("headers", [
    [("traceparent", "garbage")],
    [("traceparent", f"00-{TRACE.upper()}-{PARENT}-01")],  # upper-case hex
    [("traceparent", f"00-{'0' * 32}-{PARENT}-01")],  # all-zero trace id
    [("traceparent", f"00-{TRACE}-{'0' * 16}-01")],  # all-zero parent id
    [("traceparent", f"ff-{TRACE}-{PARENT}-01")],  # version ff
    [("traceparent", f"00-{TRACE}-{PARENT}-01-extra")],  # version 00 has exactly four fields
    [("traceparent", f"01-{TRACE}-{PARENT}-01-" + "x" * 300)],  # oversized
    [("traceparent", f"00-{TRACE}-{PARENT}-01"), ("traceparent", f"00-{TRACE}-{PARENT}-01")],  # two of them
])
async def test_invalid_or_oversized_context_is_replaced_never_forwarded(make_proxy, make_pods, collector, headers):
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=1.0)
    response = await request(proxy.port, "/", headers=[*headers, ("tracestate", "congo=t61rcWkgMzE")])
    assert response.status == 200
    trace_id, span_id, _ = upstream_context(response)  # exactly one traceparent, well formed
    assert trace_id != TRACE and span_id != PARENT
    assert sent_upstream(response, "tracestate") == []  # it belonged to the trace that was not continued
    [span] = await collector.wait_for(1)
    assert span.trace_id == trace_id and span.parent_span_id == ""


@pytest.mark.parametrize("tracestate", ["Bad Key=1", "a=1,a=2", "k=" + "v" * 250 + "," + ",".join(
    f"k{i}=v" for i in range(40)), "x=" + "y" * 600])
async def test_an_invalid_or_oversized_tracestate_is_dropped_and_the_trace_continued(make_proxy, make_pods,
                                                                                     collector, tracestate):
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=0.0)
    response = await request(proxy.port, "/", headers=[("traceparent", f"00-{TRACE}-{PARENT}-01"),
                                                        ("tracestate", tracestate)])
    assert upstream_context(response)[0] == TRACE
    assert sent_upstream(response, "tracestate") == []
    [span] = await collector.wait_for(1)
    assert span.span.trace_state == ""


async def test_without_trust_every_request_starts_a_new_trace(make_proxy, make_pods, collector):
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=1.0, trace_trust_incoming=False)
    response = await request(proxy.port, "/", headers=[("traceparent", f"00-{TRACE}-{PARENT}-00")])
    trace_id, _, sampled = upstream_context(response)
    assert trace_id != TRACE and sampled  # the ratio decided, not the client's flag
    [span] = await collector.wait_for(1)
    assert span.trace_id == trace_id and span.parent_span_id == ""


async def test_sampling_ratio_within_statistical_tolerance(make_proxy, make_pods, collector):
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=0.25)
    total = 800
    reader, writer = await connect(proxy.port)
    sampled_traces = set()
    try:
        for _ in range(total):
            writer.write(encode_request("/"))
            trace_id, _, sampled = upstream_context(await read_response(reader))
            if sampled:
                sampled_traces.add(trace_id)
    finally:
        writer.close()
    # Binomial(800, 0.25): mean 200, standard deviation ~12.2; five of them either way.
    assert 139 <= len(sampled_traces) <= 261, len(sampled_traces)
    spans = await collector.wait_for(len(sampled_traces))
    assert {span.trace_id for span in spans} == sampled_traces  # a span for every sampled request, no other


async def test_per_route_switches_and_the_default(make_proxy, make_pods, collector):
    rules = [Rule("example.com", "/on", APP, tracing=True), Rule("example.com", "/off", APP, tracing=False),
             Rule("example.com", "/", APP)]
    proxy, _ = await start(make_proxy, make_pods, collector, rules, trace_sample_ratio=1.0, trace_by_default=False)
    incoming = [("traceparent", "not-valid"), ("tracestate", "a=1")]
    off = await request(proxy.port, "/off", headers=incoming)
    default = await request(proxy.port, "/", headers=incoming)
    for response in (off, default):  # not traced: the client's fields pass through as they came
        assert sent_upstream(response, "traceparent") == ["not-valid"]
        assert sent_upstream(response, "tracestate") == ["a=1"]
    assert sent_upstream(await request(proxy.port, "/off"), "traceparent") == []
    on = await request(proxy.port, "/on", headers=incoming)
    trace_id, _, _ = upstream_context(on)
    [span] = await collector.wait_for(1)
    assert span.trace_id == trace_id and span.attributes["http.route"] == "/on"


async def test_without_an_endpoint_trace_context_passes_through_untouched(make_proxy, make_pods):
    proxy, _ = await start(make_proxy, make_pods, None)
    assert proxy.server.tracer is None
    value = f"00-{TRACE}-{PARENT}-01"
    response = await request(proxy.port, "/", headers=[("traceparent", value), ("tracestate", "a=1")])
    assert sent_upstream(response, "traceparent") == [value] and sent_upstream(response, "tracestate") == ["a=1"]
    assert sent_upstream(await request(proxy.port, "/"), "traceparent") == []


async def test_the_proxys_own_answers_have_spans_with_their_reason(make_proxy, make_pods, collector):
    rules = [Rule("example.com", "/", APP), Rule("example.com", "/empty", EMPTY)]
    proxy, _ = await start(make_proxy, make_pods, collector, rules, trace_sample_ratio=1.0)
    response = await request(proxy.port, "/empty")
    assert response.status == 503
    [span] = await collector.wait_for(1)
    attributes = span.attributes
    assert attributes["http.response.status_code"] == 503 and attributes["pyngress.reason"] == "no-endpoints"
    assert attributes["error.type"] == "no-endpoints" and span.span.status.code == 2  # ERROR
    assert "pyngress.upstream.address" not in attributes
    # No route, no span (and no traceparent to invent for a request going nowhere).
    assert (await request(proxy.port, "/", host="unknown.test")).status == 404


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _dropped(proxy, reason: str) -> float:
    text = Metrics(holder=proxy.holder, server=proxy.server).render().decode()
    found = re.search(rf'^pyngress_trace_spans_dropped_total{{reason="{reason}"}} (\S+)$', text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


async def test_an_unreachable_collector_never_affects_requests_and_drops_are_counted(make_proxy, make_pods):
    proxy, _ = await start(make_proxy, make_pods, None, otlp_endpoint=f"http://127.0.0.1:{_closed_port()}",
                           trace_sample_ratio=1.0)
    for _ in range(20):
        assert (await request(proxy.port, "/")).status == 200
    async with asyncio.timeout(DEADLINE):
        while await _dropped(proxy, "export-failed") < 20:
            await asyncio.sleep(0.05)
    assert await _dropped(proxy, "queue-full") == 0


async def test_a_full_queue_drops_new_spans_and_counts_them(make_proxy, make_pods, collector):
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=1.0, otlp_export_interval=3600)
    exporter = proxy.server.tracer.exporter
    exporter.limit = 5  # (the queue bound, small enough to reach with a few requests)
    exporter.batch = 1000  # no early export: the queue only fills
    for _ in range(8):
        assert (await request(proxy.port, "/")).status == 200
    assert await _dropped(proxy, "queue-full") == 3
    await proxy.server.close()  # what was queued still goes out
    assert len(collector.spans) == 5


async def test_exemplars_carry_the_trace_of_sampled_requests_in_openmetrics_only(make_proxy, make_pods, collector):
    proxy, _ = await start(make_proxy, make_pods, collector, trace_sample_ratio=1.0)
    response = await request(proxy.port, "/")
    trace_id, span_id, _ = upstream_context(response)
    metrics = Metrics(holder=proxy.holder, server=proxy.server)
    text, content_type = metrics.render_for("application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert content_type.startswith("application/openmetrics-text")
    lines = [line for line in text.decode().splitlines() if line.startswith("pyngress_request_duration_seconds_bucket")
             and f'trace_id="{trace_id}"' in line]
    assert len(lines) == 1 and f'span_id="{span_id}"' in lines[0] and ' # {' in lines[0], text.decode()
    assert text.decode().rstrip().endswith("# EOF")
    plain, plain_type = metrics.render_for("text/plain")
    assert plain_type.startswith("text/plain") and b"trace_id" not in plain
    assert b"pyngress_request_duration_seconds_bucket" in plain


async def test_the_configmaps_enable_opentelemetry_switches_the_default_on_a_running_proxy(make_proxy, make_pods,
                                                                                          collector):
    """ingress-nginx configmap.md "enable-opentelemetry" (and test/e2e/settings/opentelemetry.go): the ConfigMap
    decides whether routes without the annotation are traced; a new ConfigMap takes effect on the running proxy
    (the pipeline's copy of the default follows it), an annotated route keeps its own choice."""
    [pod] = await make_pods("app")
    proxy = await make_proxy(otlp_endpoint=collector.url, otlp_export_interval=0.05, trace_sample_ratio=1.0,
                             configmap="ingress-nginx/controller")
    rules = [Rule("example.com", "/", APP), Rule("example.com", "/on", APP, tracing=True)]
    clusters = [cluster(APP, [pod.endpoint])]

    def publish(data: dict[str, str]) -> None:
        config, _ = parse_config(data, base=GlobalConfig.from_settings(proxy.settings),
                                 where="ingress-nginx/controller")
        proxy.publish_config(replace(make_config(rules, clusters), global_config=config), clusters)

    publish({"enable-opentelemetry": "false"})
    assert sent_upstream(await request(proxy.port, "/"), "traceparent") == []
    trace_on, _, _ = upstream_context(await request(proxy.port, "/on"))
    publish({"enable-opentelemetry": "true"})
    trace_default, _, _ = upstream_context(await request(proxy.port, "/"))
    publish({"enable-opentelemetry": "false"})
    assert sent_upstream(await request(proxy.port, "/"), "traceparent") == []
    spans = await collector.wait_for(2)
    assert sorted(span.trace_id for span in spans) == sorted((trace_on, trace_default))


@pytest.mark.parametrize("edits", [
    HeaderEdits(set=((b"Traceparent", f"00-{TRACE}-{PARENT}-01".encode()),)),
    HeaderEdits(remove=(b"traceparent",)),
])
async def test_a_header_filter_that_edits_traceparent_has_the_last_word(make_proxy, make_pods, collector, edits):
    """A rule whose request header modifier sets or removes traceparent: the pod gets what the filter left (one
    field or none), never the proxy's own beside it (two traceparent fields are an invalid context downstream).
    The proxy's span is still made; a rule without such a filter keeps the proxy's traceparent."""
    [pod] = await make_pods("app")
    proxy = await make_proxy(otlp_endpoint=collector.url, otlp_export_interval=0.05, trace_sample_ratio=1.0)
    edited = Route("default", "r", "edit.test", "/edit", "Prefix", cluster=APP, kind=KIND_HTTP_ROUTE,
                   filters=compose([RequestHeaderModifier(edits)]))
    other = Route("default", "r", "edit.test", "/other", "Prefix", cluster=APP, kind=KIND_HTTP_ROUTE,
                  filters=compose([RequestHeaderModifier(HeaderEdits(set=((b"X-Other", b"1"),)))]))
    assert edited.own_traceparent and not other.own_traceparent
    proxy.publish_table(RouteTable(hosts={"edit.test": VirtualHost(prefix={"/edit": edited, "/other": other})}),
                        [cluster(APP, [pod.endpoint])])
    response = await request(proxy.port, "/edit", host="edit.test")
    assert response.status == 200, (response.status, response.body)
    assert sent_upstream(response, "traceparent") == [f"00-{TRACE}-{PARENT}-01" for _ in edits.set]
    assert (await collector.wait_for(1))[0].attributes["http.route"] == "/edit"
    upstream_context(await request(proxy.port, "/other", host="edit.test"))  # exactly one, well formed: the proxy's
