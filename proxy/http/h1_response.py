"""Reading one HTTP/1.1 response from an upstream connection (the protocol spoken to pods).

`H1Response` is the ``httptools`` response parser's target: it classifies header fields once (kept,
framing, hop-by-hop), hands the exchange a complete head, and passes body chunks straight to the
client's writer. The exchange decides what a head means (filters, the client's framing, reuse of
the connection); this class only reads the wire.

One reader (and its parser) serves every response of one keep-alive upstream connection, reset by
`begin()` for each exchange: making a reader and a parser per request measured about 2% more
instructions per request. A parser stopped by a callback's exception (a HEAD response's end, a
broken response) cannot go on, so `broken()` makes the next `begin()` start a fresh one.

Raw bodies: a body of at least `RAW_MIN` bytes framed by Content-Length, going to an HTTP/1.1 writer that
passes bodies through, leaves the parser after its head (the parser was fed the read only up to the head's end,
proxy.http.raw_body.feed; or `RawBody`, raised from on_headers_complete, when the read was short): the
exchange then slices the upstream's reads itself and counts `remaining` down to zero (proxy.http.raw_body), so
the body's bytes reach the client's transport as they were read, without the parser's copy per chunk (on uvloop
as views of the buffer the connection reads into, without a copy at all: proxy.upstream.connection). Such a
response costs a fresh parser for the next one, which only pays at that size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from httptools import HttpResponseParser

from proxy.http import headers as h
from proxy.http.responses import GRPC_PENDING, grpc_request
from proxy.upstream.errors import ProtocolError
from proxy.upstream.h2_stream import GRPC_OF_HTTP, grpc_status_value

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.http.response_writer import ResponseWriter

_response_cache = h.response_cache
# headers.py's response field classes and helpers as this module's globals: compiled, a global is a cached lookup,
# where `h.SERVER` is an attribute read of the module per field.
_response_class = h.response_class
_named_by_connection = h.named_by_connection
_SERVER = h.SERVER
_CONTENT_LENGTH = h.CONTENT_LENGTH
_TRANSFER_ENCODING = h.TRANSFER_ENCODING
_CONNECTION = h.CONNECTION
_UPGRADE = h.UPGRADE
_STRICT_TRANSPORT_SECURITY = h.STRICT_TRANSPORT_SECURITY
_CRLF = b"\r\n"
_SEP = b": "
_HTTP2 = b"HTTP/2.0"

# Fields a trailer section must not carry or the proxy does not forward in one (RFC 9110 6.5.1: framing,
# routing, request modifiers, response control data, content processing, authentication), the hop-by-hop ones
# (RFC 9110 7.6.1), and the pod's X-Request-ID (the proxy answers with its own).
TRAILER_DROPPED = frozenset((
    b"transfer-encoding", b"content-length", b"host", b"trailer", b"te", b"connection", b"keep-alive",
    b"proxy-connection", b"upgrade", b"content-encoding", b"content-type", b"content-range", b"age",
    b"cache-control", b"expires", b"date", b"location", b"retry-after", b"vary", b"warning", b"authorization",
    b"proxy-authorization", b"www-authenticate", b"proxy-authenticate", b"authentication-info",
    b"proxy-authentication-info", b"set-cookie", b"cookie", b"expect", b"max-forwards", b"range", b"if-match",
    b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"if-range", b"x-request-id", b"server",
    b"strict-transport-security",
))


class SkipBody(Exception):
    """Raised from on_headers_complete to stop the parser after the head of a HEAD response."""


class RawBody(Exception):
    """Raised from on_headers_complete to leave a long Content-Length body to the exchange (see the module)."""


# The smallest body read raw: below it the parser's copy costs less than the parser made for the next response.
RAW_MIN = 16384


class ExtraResponse(Exception):
    """The upstream sent more than one final response for one request."""


class H1Response:
    """The response to one upstream attempt, as it is parsed (the exchange feeds `parser` the upstream's bytes;
    parser and callback errors propagate to it)."""

    __slots__ = ("exchange", "writer", "parser", "reason", "fields", "length", "chunked", "upgrade", "connection",
                 "interim", "hsts", "trailers", "remaining", "tail", "split")

    exchange: Exchange
    writer: ResponseWriter
    reason: bytes
    # Forwarded fields, flat (name, b": ", value, CRLF, ...).
    fields: list[bytes]
    length: int  # Content-Length (-1: none)
    chunked: bool
    upgrade: bytes | None
    connection: set[bytes] | None  # names the Connection header lists
    interim: bool  # inside a 1xx answer (its message end is not the response's)
    hsts: bool  # the upstream sent its own Strict-Transport-Security
    # Trailer fields of a chunked body the client can take (flat as `fields`); None until one comes.
    trailers: list[bytes] | None
    # Raw body bytes still to come (0: the parser reads the body, if any).
    remaining: int
    # The last bytes of the head read so far when it spans several upstream reads (proxy.http.raw_body.head_end finds
    # where it ends); None once an interim (1xx) answer came: such a response is left to the parser.
    tail: bytes | None
    # The parser is being fed a read only up to the end of the head (proxy.http.raw_body.feed): a raw body is then
    # announced by `remaining` alone, without RawBody (its exception, raised through the parser, costs more).
    split: bool

    def __init__(self) -> None:
        self.parser: HttpResponseParser | None = None

    def begin(self, exchange: Exchange, writer: ResponseWriter) -> None:
        """Read the next response on this connection for `exchange`."""
        self.exchange = exchange
        self.writer = writer
        if self.parser is None:
            self.parser = HttpResponseParser(self)
        self.reason = b""
        self.fields = []
        self.length = -1
        self.chunked = False
        self.upgrade = None
        self.connection = None
        self.interim = False
        self.hsts = False
        self.trailers = None
        self.remaining = 0
        self.tail = b""
        self.split = False

    def end(self) -> None:
        """The exchange is done with this response: forget it (the connection may serve another)."""
        self.exchange = None  # type: ignore[assignment]
        self.writer = None  # type: ignore[assignment]

    def broken(self) -> None:
        """A callback raised: this parser cannot continue; the next response gets a new one."""
        self.parser = None

    def close(self) -> None:
        """The connection is gone: drop the parser (it refers back to this reader) and the exchange."""
        self.parser = None
        self.end()

    def close_delimited(self) -> bool:
        """The body has no length: it ends when the upstream closes."""
        return self.length < 0 and not self.chunked

    # httptools response parser callbacks

    # (Compiled, `exchange` is a typed field read as a struct: a callback after end() must not read through its
    # None, hence the checks; end() comes before the parser's last callback when an answer finishes the exchange.)

    def on_message_begin(self) -> None:
        exchange = self.exchange
        if exchange is None or exchange.resp_done:
            raise ExtraResponse()

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        if exchange.resp_head_done:
            self.trailer(name, value)  # a field after the body: the chunked body's trailer section
            return
        code = _response_cache.get(name)
        if code is None:
            code = _response_class(name)
        if code == 0:  # h.KEEP
            self.fields += (name, _SEP, value, _CRLF)
        elif code == _SERVER:
            if not self.writer.listener.hide_server:
                self.fields += (name, _SEP, value, _CRLF)
        elif code == _CONTENT_LENGTH:
            self.length = int(value)
            self.fields += (name, _SEP, value, _CRLF)
        elif code == _TRANSFER_ENCODING:
            if value.strip().lower() != b"chunked":
                raise ProtocolError(f"unsupported response Transfer-Encoding {value!r}")
            self.chunked = True
        elif code == _CONNECTION:
            names = _named_by_connection(value)
            if names:
                self.connection = names if self.connection is None else self.connection | names
        elif code == _UPGRADE:
            self.upgrade = value
        elif code == _STRICT_TRANSPORT_SECURITY:
            self.hsts = True
            self.fields += (name, _SEP, value, _CRLF)

    def trailer(self, name: bytes, value: bytes) -> None:
        """A trailer field of a chunked body (only responses with trailers come here): kept for the end of the
        body when the client can take it (HTTP/2, or an HTTP/1.1 client that sent TE: trailers), unless it is
        hop-by-hop, named by Connection, or not allowed in trailers (TRAILER_DROPPED)."""
        exchange = self.exchange
        if exchange.grpc_status >= 0 and name.lower() == b"grpc-status":  # a gRPC answer's status, for the log
            exchange.grpc_status = grpc_status_value(value)
        if exchange.client.protocol != _HTTP2 and not getattr(exchange, "te_trailers", False):
            return  # HTTP/1.1 cannot carry them to this client
        lower = name.lower()
        if lower in TRAILER_DROPPED or (self.connection is not None and lower in self.connection):
            return
        trailers = self.trailers
        if trailers is None:
            self.trailers = trailers = []
        trailers += (name, _SEP, value, _CRLF)

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None
        status = parser.get_status_code()
        fields = self.fields
        if self.connection:
            fields = h.drop_named(fields, self.connection)
        exchange = self.exchange
        if status == 101:
            self.interim = True  # on_message_complete of the 101 is not the end of anything
            exchange.switching(self.reason, fields, self.upgrade)
            return
        if status < 200:
            # 100 Continue, 102, 103 Early Hints: relayed, then the final response is awaited.
            self.interim = True
            self.tail = None
            self.writer.interim(exchange, status, self.reason, fields)
            self.reason = b""
            self.fields = []
            self.length = -1
            self.chunked = False
            self.connection = None
            return
        if exchange.grpc_status == GRPC_PENDING:  # (only a request with TE: trailers, as gRPC clients send)
            exchange.grpc_status = _grpc_status(exchange, status, fields)
        body = exchange.response_head(status, self.reason, fields, length=self.length, chunked=self.chunked,
                                      own_hsts=self.hsts, reusable=parser.should_keep_alive())
        if not body:
            raise SkipBody()
        length = self.length
        if (length >= RAW_MIN and not self.chunked and self.tail is not None and status != 304 and status != 204
                and self.writer.passthrough is not None):
            self.remaining = length
            if not self.split:
                raise RawBody()

    def on_body(self, chunk: bytes) -> None:
        writer = self.writer
        passthrough = writer.passthrough
        if passthrough is not None:
            passthrough.append(chunk)
        else:
            writer.body(chunk)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        exchange = self.exchange
        if exchange is None or exchange.tunnel or not exchange.resp_head_done:
            return
        writer = self.writer
        if writer.passthrough is None:  # a re-framed body (chunked, or HTTP/2): the only kind with trailers
            trailers = self.trailers
            if trailers is None:
                writer.end()
            else:
                self.trailers = None
                writer.end_with_trailers(trailers)
        exchange.resp_done = True


def _grpc_status(exchange: Exchange, status: int, fields: list[bytes]) -> int:
    """The gRPC status a pod's HTTP/1.1 answer gives a gRPC request (-1 for another request), as its HTTP/2 answer's
    (H2Stream.response) and Envoy's %GRPC_STATUS%: the head's grpc-status (a trailers-only answer), else what the
    HTTP status means to a gRPC client, until trailers say otherwise (H1Response.trailer)."""
    if not grpc_request(exchange):
        return -1
    for index in range(0, len(fields), 4):
        if fields[index].lower() == b"grpc-status":
            return grpc_status_value(fields[index + 2])
    return GRPC_OF_HTTP.get(status, 2)
