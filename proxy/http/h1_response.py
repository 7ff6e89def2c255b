"""Reading one HTTP/1.1 response from an upstream connection (the protocol spoken to pods).

`H1Response` is the ``httptools`` response parser's target: it classifies header fields once (kept,
framing, hop-by-hop), hands the exchange a complete head, and passes body chunks straight to the
client's writer. The exchange decides what a head means (filters, the client's framing, reuse of
the connection); this class only reads the wire.

One reader (and its parser) serves every response of one keep-alive upstream connection, reset by
`begin()` for each exchange: making a reader and a parser per request measured about 2% more
instructions per request. A parser stopped by a callback's exception (a HEAD response's end, a
broken response) cannot go on, so `broken()` makes the next `begin()` start a fresh one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from httptools import HttpResponseParser

from proxy.http import headers as h
from proxy.upstream.errors import ProtocolError

if TYPE_CHECKING:
    from proxy.http.downstream import ResponseWriter
    from proxy.http.exchange import Exchange

_response_cache = h.response_cache
_CRLF = b"\r\n"
_SEP = b": "


class SkipBody(Exception):
    """Raised from on_headers_complete to stop the parser after the head of a HEAD response."""


class ExtraResponse(Exception):
    """The upstream sent more than one final response for one request."""


class H1Response:
    """The response to one upstream attempt, as it is parsed (the exchange feeds `parser` the upstream's bytes;
    parser and callback errors propagate to it)."""

    __slots__ = ("exchange", "writer", "parser", "reason", "fields", "length", "chunked", "upgrade", "connection",
                 "interim", "hsts")

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

    def on_message_begin(self) -> None:
        if self.exchange.resp_done:
            raise ExtraResponse()

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.exchange.resp_head_done:
            return  # trailer fields of a chunked body: dropped
        code = _response_cache.get(name)
        if code is None:
            code = h.response_class(name)
        if code == 0:  # h.KEEP
            self.fields += (name, _SEP, value, _CRLF)
        elif code == h.SERVER:
            if not self.writer.listener.hide_server:
                self.fields += (name, _SEP, value, _CRLF)
        elif code == h.CONTENT_LENGTH:
            self.length = int(value)
            self.fields += (name, _SEP, value, _CRLF)
        elif code == h.TRANSFER_ENCODING:
            if value.strip().lower() != b"chunked":
                raise ProtocolError(f"unsupported response Transfer-Encoding {value!r}")
            self.chunked = True
        elif code == h.CONNECTION:
            names = h.named_by_connection(value)
            if names:
                self.connection = names if self.connection is None else self.connection | names
        elif code == h.UPGRADE:
            self.upgrade = value
        elif code == h.STRICT_TRANSPORT_SECURITY:
            self.hsts = True
            self.fields += (name, _SEP, value, _CRLF)

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
            self.writer.interim(exchange, status, self.reason, fields)
            self.reason = b""
            self.fields = []
            self.length = -1
            self.chunked = False
            self.connection = None
            return
        body = exchange.response_head(status, self.reason, fields, length=self.length, chunked=self.chunked,
                                      own_hsts=self.hsts, reusable=parser.should_keep_alive())
        if not body:
            raise SkipBody()

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
        if exchange.tunnel or not exchange.resp_head_done:
            return
        writer = self.writer
        if writer.passthrough is None:
            writer.end()
        exchange.resp_done = True
