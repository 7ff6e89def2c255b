"""OTLP trace export requests, encoded by hand as protobuf (opentelemetry/proto/collector/trace/v1).

Hand-encoded rather than built with the `opentelemetry-proto` message classes: a span here is always the
same handful of fields, so attribute keys are encoded once at import and a span is a few dozen byte
concatenations, where building message objects costs tens of microseconds per span and a protobuf runtime
as a dependency. The encoder runs in the exporter thread (never on the event loop), but it holds the GIL
while it works, so its cost still comes out of the proxy's. The tests decode what it writes with the
official `opentelemetry-proto` package.

Messages and field numbers used (proto3; wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32):
ExportTraceServiceRequest{1 resource_spans} · ResourceSpans{1 resource, 2 scope_spans} · Resource{1 attributes}
· ScopeSpans{1 scope, 2 spans} · InstrumentationScope{1 name, 2 version} · Span{1 trace_id, 2 span_id,
3 trace_state, 4 parent_span_id, 5 name, 6 kind, 7 start_time_unix_nano (fixed64), 8 end_time_unix_nano
(fixed64), 9 attributes, 15 status, 16 flags (fixed32)} · Status{3 code} · KeyValue{1 key, 2 value} ·
AnyValue{1 string_value, 2 bool_value, 3 int_value}.
"""

from __future__ import annotations

import struct
from binascii import unhexlify
from collections.abc import Iterable
from typing import Any

from proxy import __version__

SPAN_KIND_SERVER = 2
STATUS_CODE_ERROR = 2
# Span.flags: the W3C trace flags in the low byte, and whether the parent is remote (bits 8 and 9).
FLAG_SAMPLED = 0x01
FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200

# HTTP methods the semantic conventions know; others are reported as "_OTHER" (and the original kept).
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"))

_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative numbers as 64-bit two's complement (int64)."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or an embedded message)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


class Key:
    """An attribute key, encoded once; its methods make a whole KeyValue message with a value, and the
    `span_*` ones a whole Span.attributes entry (field 9), from templates made here (the request path's
    spans are made of these: one `%` format per attribute while lengths fit in one byte)."""

    __slots__ = ("name", "prefix", "_text", "_number", "_short")

    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix = field(1, name.encode())
        # Entry of a string value: 0x4a len(kv) | key | 0x12 len(any) | 0x0a len(s) s; one-byte lengths while
        # len(key) + len(s) + 4 < 128.
        self._text = b"J%c" + self.prefix.replace(b"%", b"%%") + b"\x12%c\n%c%s"
        self._short = 123 - len(self.prefix)
        # Entry of an int64 value: 0x4a len(kv) | key | 0x12 len(any) | 0x18 varint.
        self._number = b"J%c" + self.prefix.replace(b"%", b"%%") + b"\x12%c\x18%s"

    def string(self, value: str | bytes) -> bytes:
        return self.prefix + field(2, field(1, utf8(value)))

    def integer(self, value: int) -> bytes:
        return self.prefix + field(2, b"\x18" + varint(value))

    def boolean(self, value: bool) -> bytes:
        return self.prefix + field(2, b"\x10\x01" if value else b"\x10\x00")

    def span_text(self, data: bytes) -> bytes:
        """The Span.attributes entry of a string value given as UTF-8 bytes."""
        size = len(data)
        if size <= self._short:
            return self._text % (size + len(self.prefix) + 4, size + 2, size, data)
        return field(9, self.prefix + field(2, field(1, data)))

    def span_number(self, value: int) -> bytes:
        """The Span.attributes entry of an int64 value."""
        encoded = _VARINTS[value] if 0 <= value < _VARINT_TABLE else varint(value)
        return self._number % (len(self.prefix) + len(encoded) + 3, len(encoded) + 1, encoded)


def utf8(value: str | bytes) -> bytes:
    """Protobuf strings must be UTF-8: text is encoded, raw header bytes read as latin-1 (every byte kept)."""
    if isinstance(value, bytes):
        return value if value.isascii() else value.decode("latin-1").encode("utf-8")
    return value.encode("utf-8", "replace")


# Varints of small numbers (status codes, sizes of most requests), looked up rather than computed.
_VARINT_TABLE = 1 << 14
_VARINTS = [varint(number) for number in range(_VARINT_TABLE)]


def attributes(number: int, entries: Iterable[bytes]) -> bytes:
    """Repeated KeyValue entries as field `number` of the enclosing message."""
    return b"".join(field(number, entry) for entry in entries)


# Span attributes (OpenTelemetry HTTP semantic conventions, then ours under pyngress.*).
METHOD = Key("http.request.method")
METHOD_ORIGINAL = Key("http.request.method_original")
ROUTE = Key("http.route")
STATUS = Key("http.response.status_code")
URL_PATH = Key("url.path")
URL_SCHEME = Key("url.scheme")
SERVER_ADDRESS = Key("server.address")
SERVER_PORT = Key("server.port")
CLIENT_ADDRESS = Key("client.address")
PROTOCOL_VERSION = Key("network.protocol.version")
USER_AGENT = Key("user_agent.original")
REQUEST_SIZE = Key("http.request.size")
RESPONSE_SIZE = Key("http.response.size")
ERROR_TYPE = Key("error.type")
UPSTREAM_ADDRESS = Key("pyngress.upstream.address")
RETRIES = Key("pyngress.upstream.retries")
ROUTE_NAMESPACE = Key("pyngress.route.namespace")
ROUTE_NAME = Key("pyngress.route.name")
ROUTE_KIND = Key("pyngress.route.kind")
ROUTE_SERVICE = Key("pyngress.route.service")
REASON = Key("pyngress.reason")
REQUEST_ID = Key("pyngress.request_id")

_SCOPE = field(1, b"pyngress") + field(2, __version__.encode())
_KIND = b"\x30" + varint(SPAN_KIND_SERVER)
_ERROR_STATUS = field(15, b"\x18" + varint(STATUS_CODE_ERROR))
_KNOWN_METHOD_BYTES = frozenset(method.encode() for method in KNOWN_METHODS)
_unhexlify = unhexlify


def resource(values: dict[str, Any]) -> bytes:
    """A Resource message from attribute values (str, bool or int)."""
    entries = []
    for name, value in values.items():
        key = Key(name)
        if isinstance(value, bool):
            entries.append(key.boolean(value))
        elif isinstance(value, int):
            entries.append(key.integer(value))
        else:
            entries.append(key.string(str(value)))
    return attributes(1, entries)


def export_request(resource_message: bytes, spans: Iterable[bytes]) -> bytes:
    """An ExportTraceServiceRequest carrying encoded spans under one resource and our scope."""
    scope_spans = field(1, _SCOPE) + b"".join(field(2, span) for span in spans)
    return field(1, field(1, resource_message) + field(2, scope_spans))


# Parts of spans that repeat from request to request (per route and method, per listener, per peer), encoded
# once; each cache is emptied when it reaches _CACHE_LIMIT entries, so odd Host or User-Agent values cannot grow it.
_CACHE_LIMIT = 1024
_routes: dict[tuple[tuple[str, ...], bytes], bytes] = {}
_listeners: dict[tuple[str, int, bool], bytes] = {}
_statuses: dict[tuple[int, str], bytes] = {}
_clients: dict[bytes, bytes] = {}
_upstreams: dict[tuple[str, int], bytes] = {}
_hosts: dict[bytes, bytes] = {}
_agents: dict[bytes, bytes] = {}


def _remember(cache: dict[Any, bytes], key: Any, value: bytes) -> bytes:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


def _route_part(labels: tuple[str, ...], method: bytes) -> bytes:
    """Span name, kind, method and the route's attributes."""
    namespace, name, _host, pattern, service, kind = labels
    known = method in _KNOWN_METHOD_BYTES
    route = utf8(pattern) if pattern else b""
    parts = [field(5, method + b" " + route if route else method), _KIND,
             METHOD.span_text(method if known else b"_OTHER")]
    if not known:
        parts.append(METHOD_ORIGINAL.span_text(utf8(method)))
    if route:
        parts.append(ROUTE.span_text(route))
    if name:
        parts += (ROUTE_NAMESPACE.span_text(utf8(namespace)), ROUTE_NAME.span_text(utf8(name)),
                  ROUTE_KIND.span_text(utf8(kind)), ROUTE_SERVICE.span_text(utf8(service)))
    return b"".join(parts)


def _status_part(status: int, reason: str) -> bytes:
    """Status code, the proxy's reason, and for 5xx error.type and the ERROR status."""
    parts = [STATUS.span_number(status)]
    if reason:
        parts.append(REASON.span_text(reason.encode()))
    if status >= 500:
        parts += (ERROR_TYPE.span_text(reason.encode() if reason else b"%d" % status), _ERROR_STATUS)
    return b"".join(parts)


# network.protocol.version of the access log's protocol words.
_VERSIONS = {b"HTTP/1.0": b"1.0", b"HTTP/1.1": b"1.1", b"HTTP/2.0": b"2"}


def encode_span(record: tuple[Any, ...]) -> bytes:
    """One Span message from a finished request's record (made by proxy.http.record; the order is below).
    Runs in the exporter thread, once per span: what repeats between requests comes from the caches above."""
    (traceparent, incoming, tracestate, start, end, method, target, scheme, port, authority, client, status,
     received, sent, upstream, retries, labels, reason, user_agent, request_id, protocol) = record
    flags = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE
    out = [b"\x0a\x10" + _unhexlify(traceparent[3:35]), b"\x12\x08" + _unhexlify(traceparent[36:52])]
    if incoming is not None and incoming[3:35] == traceparent[3:35]:  # a continued trace: its parent is remote
        if tracestate:
            out.append(field(3, tracestate))
        out.append(b"\x22\x08" + _unhexlify(incoming[36:52]))
        flags |= FLAG_IS_REMOTE
    key = (labels, method)
    part = _routes.get(key) or _remember(_routes, key, _route_part(labels, method))
    listener = (scheme, port, protocol)
    common = _listeners.get(listener) or _remember(_listeners, listener, URL_SCHEME.span_text(scheme.encode(
        )) + SERVER_PORT.span_number(port) + PROTOCOL_VERSION.span_text(_VERSIONS.get(protocol, b"1.1")))
    answer = (status, reason)
    outcome = _statuses.get(answer) or _remember(_statuses, answer, _status_part(status, reason))
    peer = _clients.get(client) or _remember(_clients, client, CLIENT_ADDRESS.span_text(utf8(client)))
    query = target.find(b"?")
    out += (part, b"\x39" + _fixed64(start), b"\x41" + _fixed64(end), common, outcome, peer,
            URL_PATH.span_text(utf8(target if query < 0 else target[:query])), REQUEST_SIZE.span_number(received),
            RESPONSE_SIZE.span_number(sent), REQUEST_ID.span_text(utf8(request_id)), RETRIES.span_number(retries))
    if authority:
        out.append(_hosts.get(authority) or _remember(_hosts, authority, SERVER_ADDRESS.span_text(utf8(_host_of(
            authority)))))
    if user_agent:
        out.append(_agents.get(user_agent) or _remember(_agents, user_agent, USER_AGENT.span_text(utf8(user_agent))))
    if upstream is not None:
        address, upstream_port = upstream
        endpoint = (address, upstream_port)
        out.append(_upstreams.get(endpoint) or _remember(_upstreams, endpoint, UPSTREAM_ADDRESS.span_text((
            f"[{address}]:{upstream_port}" if ":" in address else f"{address}:{upstream_port}").encode())))
    out.append(b"\x85\x01" + _fixed32(flags))  # field 16, fixed32
    return b"".join(out)


def _host_of(authority: bytes) -> bytes:
    """The host of a Host header value, without the port (IPv6 without its brackets)."""
    text = authority.strip()
    if text.startswith(b"["):
        return text[1 : text.find(b"]")] if b"]" in text else text
    return text.rpartition(b":")[0] if text.count(b":") == 1 else text


__all__ = ["FLAG_HAS_IS_REMOTE", "FLAG_IS_REMOTE", "FLAG_SAMPLED", "KNOWN_METHODS", "Key", "SPAN_KIND_SERVER",
           "STATUS_CODE_ERROR", "attributes", "encode_span", "export_request", "field", "resource", "varint"]
