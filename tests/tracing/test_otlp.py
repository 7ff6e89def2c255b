"""The hand-written protobuf, read back by the official opentelemetry-proto decoder."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from otlp_collector import value_of
from proxy import __version__
from proxy.tracing import otlp
from proxy.tracing.exporter import resource_attributes

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SPAN = "53995c3f42cd8ad8"
LABELS = ("shop", "web", "a.test", "/api", "api", "Ingress")


def record(**changes):
    values = {"traceparent": f"00-{TRACE}-{SPAN}-01".encode(), "incoming": None, "tracestate": None,
              "start": 1_700_000_000_000_000_000, "end": 1_700_000_000_250_000_000, "method": b"GET",
              "target": b"/api/items?q=1", "scheme": "https", "port": 443, "authority": b"a.test:8443",
              "client": b"10.0.0.9", "status": 200, "received": 120, "sent": 900, "upstream": ("10.1.2.3", 8080),
              "retries": 1, "labels": LABELS, "reason": "", "user_agent": b"curl/8", "request_id": b"abc",
              "protocol": b"HTTP/1.1"}
    values.update(changes)
    return tuple(values.values())


def decode(*records, resource=None):
    body = otlp.export_request(otlp.resource(resource or {"service.name": "pyngress"}),
                               [otlp.encode_span(r) for r in records])
    message = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = message.resource_spans
    [scope_spans] = resource_spans.scope_spans
    return resource_spans.resource, scope_spans, list(scope_spans.spans)


def attributes(span) -> dict:
    return {kv.key: value_of(kv.value) for kv in span.attributes}


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**32, 2**63 - 1, -1, -(2**63)])
def test_varints_read_back(value):
    encoded = otlp.Key("k").integer(value)
    assert KeyValue.FromString(encoded).value.int_value == value


def test_a_span_reads_back_with_every_field():
    resource, scope_spans, [span] = decode(record(), resource={"service.name": "pyngress", "process.pid": 42,
                                                               "flag": True})
    assert {kv.key: value_of(kv.value) for kv in resource.attributes} == {
        "service.name": "pyngress", "process.pid": 42, "flag": True}
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("pyngress", __version__)
    assert span.trace_id.hex() == TRACE and span.span_id.hex() == SPAN and span.parent_span_id == b""
    assert span.name == "GET /api" and span.kind == 2 and span.flags == 0x101
    assert span.start_time_unix_nano == 1_700_000_000_000_000_000
    assert span.end_time_unix_nano == 1_700_000_000_250_000_000
    assert span.status.code == 0
    assert attributes(span) == {
        "http.request.method": "GET", "url.path": "/api/items", "url.scheme": "https",
        "http.response.status_code": 200, "client.address": "10.0.0.9", "network.protocol.version": "1.1",
        "http.request.size": 120, "http.response.size": 900, "pyngress.request_id": "abc", "server.port": 443,
        "server.address": "a.test", "http.route": "/api", "pyngress.route.namespace": "shop",
        "pyngress.route.name": "web", "pyngress.route.kind": "Ingress", "pyngress.route.service": "api",
        "user_agent.original": "curl/8", "pyngress.upstream.address": "10.1.2.3:8080",
        "pyngress.upstream.retries": 1}


def test_a_continued_trace_names_its_remote_parent_and_state():
    *_, [span] = decode(record(incoming=f"00-{TRACE}-{PARENT}-01".encode(), tracestate=b"congo=t61rcWkgMzE"))
    assert span.parent_span_id.hex() == PARENT and span.trace_state == "congo=t61rcWkgMzE"
    assert span.flags == 0x301
    # An incoming header of another trace (not trusted, or invalid) is no parent.
    *_, [other] = decode(record(incoming=f"00-{'1' * 32}-{PARENT}-01".encode(), tracestate=None))
    assert other.parent_span_id == b"" and other.flags == 0x101


def test_proxy_answers_odd_methods_and_raw_bytes():
    *_, [span] = decode(record(status=503, reason="no-endpoints", upstream=None, method=b"PURGE",
                               labels=("", "", "", "", "", ""), authority=b"[fd00::1]:80", user_agent=b"caf\xe9",
                               request_id=b"\xff\x00", target=b"/\xc3(", protocol=b"HTTP/1.0"))
    values = attributes(span)
    assert span.name == "PURGE" and span.status.code == 2
    assert values["http.request.method"] == "_OTHER" and values["http.request.method_original"] == "PURGE"
    assert values["error.type"] == "no-endpoints" and values["pyngress.reason"] == "no-endpoints"
    assert values["server.address"] == "fd00::1" and values["user_agent.original"] == "café"
    assert values["pyngress.request_id"] == "\xff\x00" and values["url.path"] == "/\xc3("
    assert values["network.protocol.version"] == "1.0"
    assert "http.route" not in values and "pyngress.route.name" not in values
    assert "pyngress.upstream.address" not in values


def test_ipv6_upstream_and_many_spans_in_one_request():
    *_, spans = decode(*(record(upstream=("fd00::7", 80), status=500 + i) for i in range(3)))
    assert [attributes(s)["pyngress.upstream.address"] for s in spans] == ["[fd00::7]:80"] * 3
    assert [attributes(s)["error.type"] for s in spans] == ["500", "501", "502"]


def test_resource_attributes_from_the_downward_api():
    values = resource_attributes({"POD_NAME": "pyngress-abc", "POD_NAMESPACE": "ingress"})
    assert values["service.name"] == "pyngress" and values["k8s.pod.name"] == "pyngress-abc"
    assert values["k8s.namespace.name"] == "ingress"
    assert "k8s.pod.name" not in resource_attributes({})
