"""One HTTP/2 request stream: the `Downstream` an Exchange forwards for, and the writer it answers through.

The exchange, the pipeline and the HTTP/1.1 response reader are the ones HTTP/1.1 clients use; only the
framing differs. `H2Writer` turns response heads into HEADERS (lower-case names, ``:status``, no hop-by-hop
fields: the response reader dropped them) and queues body chunks on the stream, which the connection sends
as the client's flow-control windows allow (proxy/http2/connection.py). While a stream's queue is not empty it
is `write_paused` and its upstream connection stops reading: a slow reader holds back only its own pod.

Request bodies go the other way under the stream's receive window: bytes are acknowledged (the window reopens)
once they are handed to the upstream, and not while the exchange is blocked (dialing, or the pod not reading),
so a stream never makes the proxy hold more than its window.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from proxy.http.downstream import Downstream
from proxy.http.exchange import Exchange
from proxy.http.response_writer import ResponseWriter
from proxy.http.responses import (
    GRPC_STATUSES,
    REASONS,
    error_response,
    grpc_answered,
    grpc_message,
    grpc_request,
    log_answer,
    new_request_id,
)
from proxy.upstream.errors import BadRequest, ProtocolError

if TYPE_CHECKING:
    from proxy.http.listener import Listener
    from proxy.http2.connection import H2ClientConnection
    from proxy.routing.request import ClientCertificate
    from proxy.server import ProxyServer

logger = logging.getLogger("pyngress.proxy")

# :status values, made once.
_STATUS = {status: b"%d" % status for status in range(100, 600)}
# Marks the end of a response body in a stream's queue (an empty DATA frame carries END_STREAM).
END = b""
# A queue entry that is a list of header pairs is the trailers (HEADERS with END_STREAM) ending the body.
Trailers = list[tuple[bytes, bytes]]


def status_bytes(status: int) -> bytes:
    return _STATUS.get(status) or b"%d" % status


def fields_of(raw: bytes) -> list[tuple[bytes, bytes]]:
    """``Name: value\\r\\n`` lines (a listener's extra answer fields, a proxy answer's head) as h2 header pairs."""
    pairs = []
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep and name:
            pairs.append((name.strip().lower(), value.strip()))
    return pairs


class H2Writer(ResponseWriter):
    """The response side of one stream: heads become HEADERS, bodies queue for DATA frames (see the module).

    (A Python subclass of the writers' base, an extension type when compiled: its fields are the base's.)"""

    __slots__ = ("stream",)

    out: deque[bytes | Trailers]

    def __init__(self, stream: H2Stream) -> None:
        self.stream = stream
        self.listener = stream.listener
        # Body chunks not yet sent (END, or the trailers, last once the body is complete); the stream's
        # flow-control queue.
        self.out: deque[bytes | Trailers] = deque()
        self.passthrough: list[bytes] | None = None  # HTTP/2 always re-frames: body() and end() are called
        # A response body may end with trailers (HTTP/1.1's chunked encoding; always so in HTTP/2).
        self.chunked = True

    def head(self, ex: Exchange, status: int, reason: bytes, fields: list[bytes], length: int, chunked: bool,
             own_hsts: bool, draining: bool) -> bool:
        headers = [(b":status", status_bytes(status))]
        for index in range(0, len(fields), 4):
            headers.append((fields[index].lower(), fields[index + 2]))
        headers.append((b"x-request-id", ex.request_id))
        extra = self.listener.response_fields
        if extra and not own_hsts:
            headers += self.stream.connection.extra_fields(extra)
        head_only = ex.method == b"HEAD"
        self.stream.connection.send_headers(self.stream, headers, end=head_only)
        return not head_only

    def interim(self, ex: Exchange, status: int, reason: bytes, fields: list[bytes]) -> None:
        """1xx answers (103 Early Hints...) are HEADERS before the final ones."""
        headers = [(b":status", status_bytes(status))]
        for index in range(0, len(fields), 4):
            headers.append((fields[index].lower(), fields[index + 2]))
        connection = self.stream.connection
        connection.send_headers(self.stream, headers, end=False)
        connection.flush_soon()  # now, not with the final answer (no DATA is queued to carry it out)

    def switching(self, ex: Exchange, reason: bytes, fields: list[bytes], upgrade: bytes) -> None:
        # An HTTP/2 request never asks for a WebSocket upgrade (no Upgrade field), so the exchange refuses a 101.
        raise ProtocolError("101 Switching Protocols on an HTTP/2 stream")

    def body(self, chunk: bytes) -> None:
        if chunk:
            self.out.append(chunk)

    def end(self) -> None:
        stream = self.stream
        if not stream.ending:
            stream.ending = True
            self.out.append(END)

    def end_with_trailers(self, trailers: list[bytes]) -> None:
        """End the body with trailer fields (flat ``Name: value`` lines or name/sep/value/CRLF pieces: an HTTP/2
        pod's trailers, gRPC's status), sent as HEADERS with END_STREAM after the queued DATA."""
        stream = self.stream
        if not stream.ending:
            stream.ending = True
            pairs = fields_of(b"".join(trailers))
            self.out.append(pairs if pairs else END)

    def flush(self) -> int:
        """Send what the windows allow now (the rest waits for WINDOW_UPDATE); returns the DATA bytes sent."""
        return self.stream.connection.pump(self.stream)

    def answer(self, status: int, request_id: bytes, *, close: bool, http10: bool, detail: str, head_only: bool,
               location: bytes, fields: bytes = b"") -> int:
        """The proxy's own answer (proxy/http/responses.py's page), as HEADERS and DATA."""
        data = error_response(status, request_id, close=False, detail=detail, head_only=head_only,
                              location=location, fields=self.listener.response_fields + fields)
        head, _, body = data.partition(b"\r\n\r\n")
        headers = [(b":status", status_bytes(status))]
        headers += fields_of(head.partition(b"\r\n")[2])
        stream = self.stream
        stream.ending = True
        stream.connection.send_headers(stream, headers, end=not body)
        if body:
            self.out.append(body)
            self.out.append(END)
        return len(head) + stream.connection.pump(stream)

    def grpc_answer(self, status: int, request_id: bytes, *, close: bool, message: str, fields: bytes = b"") -> int:
        """The proxy's own answer to a gRPC request: a trailers-only response, HTTP 200 with the grpc-status of
        `status` (responses.GRPC_STATUSES) and its message."""
        headers = [(b":status", b"200"), (b"content-type", b"application/grpc"),
                   (b"grpc-status", b"%d" % GRPC_STATUSES.get(status, 2))]
        if message:
            headers.append((b"grpc-message", grpc_message(message)))
        headers += fields_of(self.listener.response_fields + fields)
        headers.append((b"x-request-id", request_id))
        stream = self.stream
        stream.ending = True
        stream.connection.send_headers(stream, headers, end=True)
        return sum(len(name) + len(value) + 4 for name, value in headers)

    def raw(self, data: bytes) -> int:
        return 0  # no tunnels on HTTP/2 streams (see switching)


class H2Stream(Downstream):
    """One request of an HTTP/2 connection, as the exchange and the pipeline see a client (`Downstream`)."""

    # (Downstream holds server, listener, writer, client_ip, scheme, forwarded, blocked, write_paused...)
    __slots__ = ("connection", "stream_id", "head", "exchange", "unacked", "ending", "ended", "received_end", "reset",
                 "cookies")

    writer: H2Writer

    protocol = b"HTTP/2.0"

    def __init__(self, connection: H2ClientConnection, stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.server: ProxyServer = connection.server
        self.listener: Listener = connection.listener
        self.client_ip = connection.client_ip
        self.scheme = connection.scheme
        self.forwarded = connection.forwarded
        self.forwarded_ip_end = connection.forwarded_ip_end
        self.blocked = 0
        self.write_paused = False
        self.write_paused_since = 0.0
        self.last_read = connection.server.now
        self.writer = H2Writer(self)
        self.exchange = Exchange(self)
        # The head add_field fills (proxy/http/request_fields.py); None once it is complete.
        self.head: Exchange | None = self.exchange
        # Request body bytes received but not acknowledged while the exchange is blocked.
        self.unacked = 0
        self.ending = False  # the response's end is queued
        self.ended = False  # ... and sent (END_STREAM)
        self.received_end = False  # the client's END_STREAM came
        self.reset = False  # reset by either side: nothing more is sent
        self.cookies: list[bytes] | None = None

    # ------------------------------------------------------------------ Downstream

    def client_certificate(self) -> ClientCertificate | None:
        return self.connection.client_certificate()

    def block(self, bit: int) -> None:
        self.blocked |= bit

    def unblock(self, bit: int) -> None:
        if self.blocked & bit:
            self.blocked &= ~bit
            if not self.blocked and self.unacked:
                self.connection.acknowledge(self, self.unacked)
                self.unacked = 0

    def send_error(self, ex: Exchange | None, status: int, cause: BaseException | None, *, detail: str = "",
                   close: bool = False, location: bytes = b"", fields: bytes = b"", reason: str = "") -> None:
        """Answer with the proxy's own response on this stream and log it once (`close` ends only the stream)."""
        if ex is None:
            ex = self.exchange
        if not ex.request_id:
            ex.request_id = new_request_id()
        ex.finished = True
        ex.status = status
        ex.reason = reason or (getattr(cause, "reason", "") if cause is not None else "")
        level = logging.WARNING if status >= 500 else logging.DEBUG
        if logger.isEnabledFor(level):
            log_answer(level, status, ex, ex.request_id, ex.client_ip, cause)
        if self.reset or self.ended:
            pass
        elif not ex.resp_head_done:
            if status >= 400 and grpc_request(ex):
                message = detail or (str(cause) if cause is not None else "") or REASONS.get(status, b"").decode()
                ex.sent += self.writer.grpc_answer(status, ex.request_id, close=False, message=message, fields=fields)
                grpc_answered(ex, status)
            else:
                ex.sent += self.writer.answer(status, ex.request_id, close=False, http10=False, detail=detail,
                                              head_only=ex.method == b"HEAD", location=location, fields=fields)
        else:  # a response already under way cannot become this answer: the client sees the stream reset
            self.connection.reset_stream(self, 2)
        self.exchange_finished(ex, True)

    def exchange_finished(self, ex: Exchange, keep_alive: bool) -> None:
        ex.account()
        if self.blocked:
            self.unblock(self.blocked)
        self.connection.stream_done(self)

    def client_timeout(self, ex: Exchange) -> None:
        ex.abandon()
        self.send_error(ex, 408, BadRequest("timed out reading the request body", status=408), close=True)

    def start_tunnel(self, ex: Exchange) -> None:
        self.cut()

    def cut(self) -> None:
        """The response cannot be completed: the client sees the stream reset (INTERNAL_ERROR)."""
        self.connection.reset_stream(self, 2)

    def abort(self) -> None:
        """The client stopped reading this stream: reset it (CANCEL)."""
        self.connection.reset_stream(self, 8)

    def close(self) -> None:
        self.connection.reset_stream(self, 0)
