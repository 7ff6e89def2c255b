"""Reading one HTTP/1.1 response from an upstream connection (the protocol spoken to pods).

`H1Response` is the ``httptools`` response parser's target for one attempt of an exchange: it
classifies header fields once (kept, framing, hop-by-hop), hands the exchange a complete head,
and passes body chunks straight to the client's writer. The exchange decides what a head means
(filters, the client's framing, reuse of the connection); this class only reads the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from httptools import HttpResponseParser

from proxy.http import headers as h
from proxy.upstream.errors import ProtocolError

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.http.h1_writer import H1Writer

_response_cache = h.response_cache
_CRLF = b"\r\n"
_SEP = b": "


class SkipBody(Exception):
    """Raised from on_headers_complete to stop the parser after the head of a HEAD response."""


class ExtraResponse(Exception):
    """The upstream sent more than one final response for one request."""


class H1Response:
    """The response to one upstream attempt, as it is parsed."""

    __slots__ = ("exchange", "writer", "parser", "reason", "fields", "length", "chunked", "upgrade", "connection",
                 "interim", "hsts")

    def __init__(self, exchange: Exchange, writer: H1Writer) -> None:
        self.exchange = exchange
        self.writer = writer
        self.parser = HttpResponseParser(self)
        self.reason = b""
        # Forwarded fields, flat (name, b": ", value, CRLF, ...).
        self.fields: list[bytes] = []
        self.length = -1  # Content-Length (-1: none)
        self.chunked = False
        self.upgrade: bytes | None = None
        self.connection: set[bytes] | None = None  # names the Connection header lists
        self.interim = False  # inside a 1xx answer (its message end is not the response's)
        self.hsts = False  # the upstream sent its own Strict-Transport-Security

    def feed(self, data: bytes) -> None:
        """Parse bytes from the upstream; parser and callback errors propagate to the exchange."""
        self.parser.feed_data(data)

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
        self.writer.body(chunk)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        exchange = self.exchange
        if exchange.tunnel or not exchange.resp_head_done:
            return
        self.writer.end()
        exchange.resp_done = True
