"""Classifying a client's request header fields into a `RequestHead`: one function every client protocol runs.
(Compiled, proxy/extensions.py: it runs once per header field of every request.)

The HTTP/1.1 connection uses `add_field` as its parser's ``on_header`` callback (a function in the class body is
a method, so it costs what one defined there would); an HTTP/2 stream calls it for each decoded field. Either
way the same fields are kept, rewritten (Host, X-Forwarded-For...) or dropped (hop-by-hop), and the same limits
apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from proxy.http import headers as h
from proxy.http.responses import GRPC_PENDING
from proxy.upstream.errors import BadRequest

if TYPE_CHECKING:
    from proxy.http.downstream import ServerState
    from proxy.http.exchange import Exchange
    from proxy.server import ProxyServer

_SEP = b": "
_CRLF = b"\r\n"
_request_cache = h.request_cache
# headers.py's request field classes as this module's globals: compiled, a global is a cached lookup, where `h.HOST`
# is an attribute read of the module per field.
_request_class = h.request_class
_HOST = h.HOST
_CONTENT_LENGTH = h.CONTENT_LENGTH
_TRANSFER_ENCODING = h.TRANSFER_ENCODING
_CONNECTION = h.CONNECTION
_UPGRADE = h.UPGRADE
_FORWARDED_FOR = h.FORWARDED_FOR
_REQUEST_ID = h.REQUEST_ID
_USER_AGENT = h.USER_AGENT
_TRACEPARENT = h.TRACEPARENT
_TRACESTATE = h.TRACESTATE
_OURS = h.OURS
_TE = h.TE
_HOP_BY_HOP = h.HOP_BY_HOP


class FieldReader(Protocol):
    """What `add_field` reads: the head being filled (None: trailer fields, dropped) and the server's limits."""

    @property
    def head(self) -> Exchange | None: ...

    @property
    def server(self) -> ProxyServer: ...


def add_field(self: FieldReader, name: bytes, value: bytes) -> None:
    """One request header field into the head being read: counted against the limits, then kept, rewritten
    or dropped by its class (proxy/http/headers.py). Raises BadRequest (400, 431) for what cannot be served."""
    head: Exchange | None = self.head  # (typed, compiled: request_fields.pxd)
    if head is None:
        return  # trailer fields of a chunked body: dropped
    server: ServerState = self.server  # (typed, compiled: request_fields.pxd)
    count = head.header_count = head.header_count + 1
    size = head.header_bytes = head.header_bytes + len(name) + len(value) + 4
    if count > server.max_headers:
        raise BadRequest(f"more than {server.max_headers} header fields", status=431)
    if size > server.max_header_bytes:
        raise BadRequest(f"header fields over {server.max_header_bytes} bytes", status=431)
    code = _request_cache.get(name)
    if code is None:
        code = _request_class(name)
    if code == 0:  # h.KEEP
        head.fields += (name, _SEP, value, _CRLF)
    elif code == _HOST:
        if head.authority is not None:
            raise BadRequest("duplicate Host header")
        head.authority = value
        head.fields += (name, _SEP, value, _CRLF)
    elif code == _CONTENT_LENGTH:
        head.content_length = int(value)
        head.fields += (name, _SEP, value, _CRLF)
    elif code == _TRANSFER_ENCODING:
        if head.chunked or value.strip().lower() != b"chunked":
            raise BadRequest(f"unsupported Transfer-Encoding {value!r}")
        head.chunked = True
    elif code == _CONNECTION:
        # Set even when it names nothing (an empty set): None means no Connection header came (see
        # ClientConnection.on_headers_complete), and every reader tests it for truth.
        names = h.named_by_connection(value)
        head.connection_names = names if head.connection_names is None else head.connection_names | names
    elif code == _UPGRADE:
        head.upgrade = value
    elif code == _FORWARDED_FOR:
        head.forwarded_for = value if head.forwarded_for is None else head.forwarded_for + b", " + value
    elif code == _REQUEST_ID:
        if 0 < len(value) <= 200:
            head.request_id = value
    elif code == _USER_AGENT:
        head.user_agent = value
        head.fields += (name, _SEP, value, _CRLF)
    elif code == _TRACEPARENT:
        # Two of them make it invalid (b"": never a valid value), as the W3C spec asks.
        head.traceparent = value if head.traceparent is None else b""
        head.fields += (name, _SEP, value, _CRLF)
    elif code == _TRACESTATE:
        head.tracestate = value if head.tracestate is None else head.tracestate + b"," + value
        head.fields += (name, _SEP, value, _CRLF)
    elif code == _OURS:  # replaced by ours; kept aside for a proxy trusted with them
        if head.forwarded_in is None:
            head.forwarded_in = [name, value]
        else:
            head.forwarded_in += (name, value)
    elif code == _TE and b"trailers" in value.lower():
        head.te_trailers = True  # (HTTP/2 pods send trailers: gRPC)
        if head.grpc_status == -1:
            head.grpc_status = GRPC_PENDING  # a gRPC client, maybe: its answer's grpc-status is looked for
    elif code == _HOP_BY_HOP and head.connection_names is None:
        head.connection_names = set()  # dropped; noted as a Connection header is (llhttp reads Proxy-Connection as one)
