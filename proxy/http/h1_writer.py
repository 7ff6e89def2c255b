# cython: annotation_typing=False
"""HTTP/1.1 framing of responses to a client: the exchange hands over heads and bodies, this writes bytes.

Everything a response sends in one callback is collected and written with ONE
``transport.write`` by `flush()` (a response head and a small body share a write, which is
where a proxy's time goes). Framing decisions live here: whether the connection stays open,
chunked re-framing of bodies of unknown length (or close-delimited for HTTP/1.0 clients), HEAD,
204 and 304 without bodies, HTTP/1.0 keep-alive, the 1xx interim answers an HTTP/1.0 client
must not see, and the 101 of a WebSocket upgrade.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from proxy.http.response_writer import ResponseWriter
from proxy.http.responses import STATUS_PREFIXES, error_response, grpc_error_response, status_prefix

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.http.listener import Listener

_CRLF = b"\r\n"
_STATUS_PREFIXES = STATUS_PREFIXES
_CHUNK_END = b"0\r\n\r\n"
# A last piece this long is written beside what precedes it instead of joined to it (flush()): below it,
# one joined write is cheaper than a gathered one.
_NO_COPY = 16384


class H1Writer(ResponseWriter):
    """The response side of one HTTP/1.1 client connection (one response at a time, in request order).

    (`annotation_typing=False`: the `.pxd`s declare the types; see proxy/http/response_writer.py.)"""

    __slots__ = ("transport", "write")

    out: list[bytes]

    def __init__(self, transport: asyncio.Transport, listener: Listener) -> None:
        self.transport = transport
        # The transport's write, bound once per connection: a method lookup less on every response.
        self.write = transport.write
        self.listener = listener
        self.out: list[bytes] = []
        # The response being written re-frames its body as chunks (unknown length, HTTP/1.1 client).
        self.chunked = False
        # While body bytes go out as they came (no re-framing), the list they are appended to:
        # readers append to it directly instead of calling body() per chunk and end() at the end.
        self.passthrough: list[bytes] | None = self.out

    def head(self, ex: Exchange, status: int, reason: bytes, fields: list[bytes], length: int, chunked: bool,
             own_hsts: bool, draining: bool) -> bool:
        """Frame a final response head; returns False when no body follows (HEAD).

        `length`: the upstream's Content-Length (-1: none); `chunked`: the upstream sent chunks;
        `own_hsts`: the upstream sent its own Strict-Transport-Security (the listener's is left out).
        Sets ``ex.keep_alive``: whether the connection can carry another request after this one.
        """
        out = self.out
        request = ex  # typed as the Exchange it is, compiled (h1_writer.pxd)
        out += (_STATUS_PREFIXES.get(status) or status_prefix(status), reason, _CRLF)
        out += fields
        out += (b"X-Request-ID: ", request.request_id, _CRLF)
        extra = self.listener.response_fields
        if extra and not own_hsts:
            out.append(extra)  # Strict-Transport-Security on the HTTPS listener
        # An answer that starts before the request body is in leaves unread bytes on the
        # connection: say so now, or the client would send its next request into a close.
        keep_alive = request.keep_alive and request.req_done and not draining
        http10 = request.http10
        head_request = request.method == b"HEAD"
        self.chunked = False
        self.passthrough = self.out
        if head_request or status == 204 or status == 304:
            if head_request and chunked and not http10:
                out.append(b"Transfer-Encoding: chunked\r\n")
        elif length >= 0:
            pass
        elif http10:
            keep_alive = False  # an HTTP/1.0 client reads an unknown length until the close
        else:
            out.append(b"Transfer-Encoding: chunked\r\n")
            self.chunked = True
            self.passthrough = None
        if not keep_alive:
            out.append(b"Connection: close\r\n\r\n")
        elif http10:
            out.append(b"Connection: keep-alive\r\n\r\n")
        else:
            out.append(_CRLF)
        request.keep_alive = keep_alive
        return not head_request

    def interim(self, ex: Exchange, status: int, reason: bytes, fields: list[bytes]) -> None:
        """100 Continue, 102, 103 Early Hints: relayed to HTTP/1.1 clients only."""
        if not ex.http10:
            out = self.out
            out += (status_prefix(status), reason, _CRLF)
            out += fields
            out.append(_CRLF)

    def switching(self, ex: Exchange, reason: bytes, fields: list[bytes], upgrade: bytes) -> None:
        """The 101 of an accepted WebSocket upgrade; what follows is tunnelled."""
        out = self.out
        out += (status_prefix(101), reason, _CRLF)
        out += fields
        out += (b"Connection: Upgrade\r\nUpgrade: ", upgrade, _CRLF)
        out += (b"X-Request-ID: ", ex.request_id, b"\r\n\r\n")

    def body(self, chunk: bytes) -> None:
        out = self.out
        if self.chunked:
            out += (b"%x\r\n" % len(chunk), chunk, _CRLF)
        else:
            out.append(chunk)

    def end(self) -> None:
        """The response body is complete (a chunked one gets its last chunk); not needed while `passthrough`."""
        if self.chunked:
            out = self.out
            out.append(_CHUNK_END)
            self.chunked = False
            self.passthrough = out

    def end_with_trailers(self, trailers: list[bytes]) -> None:
        """End a chunked body with trailer fields (flat ready bytes: an HTTP/2 pod's trailers, gRPC's status);
        only for a client that sent TE: trailers (the caller checks)."""
        if self.chunked:
            self.out.append(b"0\r\n")
            self.out += trailers
            self.out.append(_CRLF)
            self.chunked = False
            self.passthrough = self.out

    def flush(self) -> int:
        """Write what was collected; returns the bytes written."""
        out = self.out
        if not out:
            return 0
        if len(out) == 1:
            data = out[0]
        else:
            last = out[-1]
            if len(last) >= _NO_COPY:
                # A big body chunk after the head (or after small pieces): joining would copy it once more
                # in user space; a gathered write (writev) sends the head and the chunk as they are.
                del out[-1]
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                self.transport.writelines((data, last))
                return len(data) + len(last)
            data = b"".join(out)
        out.clear()
        self.write(data)
        return len(data)

    def answer(self, status: int, request_id: bytes, *, close: bool, http10: bool, detail: str, head_only: bool,
               location: bytes, fields: bytes = b"") -> int:
        """The proxy's own answer (an error, a redirect), written at once; returns the bytes written.
        `fields`: extra header fields, ready bytes."""
        data = error_response(status, request_id, close=close, http10=http10, detail=detail, head_only=head_only,
                              location=location, fields=self.listener.response_fields + fields)
        self.write(data)
        return len(data)

    def grpc_answer(self, status: int, request_id: bytes, *, close: bool, message: str, fields: bytes = b"") -> int:
        """The proxy's own answer to a gRPC request: HTTP 200 with the matching grpc-status (see
        responses.grpc_error_response); returns the bytes written."""
        data = grpc_error_response(status, request_id, close=close, message=message,
                                   fields=self.listener.response_fields + fields)
        self.write(data)
        return len(data)

    def raw(self, data: bytes) -> int:
        """Tunnelled bytes (after a 101), written as they are."""
        self.write(data)
        return len(data)
