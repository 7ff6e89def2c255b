"""HTTP/2 to a pod, one request: an `H2Stream` stands in for an HTTP/1.1 upstream connection to its exchange.

The exchange writes its HTTP/1.1 request bytes to ``stream.transport`` (the stream itself), which parses them
(httptools, C) into an HTTP/2 request (pseudo-headers, hop-by-hop fields dropped, the body as DATA); the pod's
response comes back as calls on the exchange (`response_head`, the writer's body, trailers, the end). The
connection that carries the streams, and the flow-control and refusal rules, are proxy/upstream/h2_connection.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from httptools import HttpParserError, HttpRequestParser

from proxy.upstream.errors import ProtocolError, UpstreamClosed, UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from proxy.upstream.connection import ConnectionUser
    from proxy.upstream.h2_connection import H2Connection
    from proxy.upstream.h2_pool import H2EndpointPool

logger = logging.getLogger("pyngress.proxy")

# Receive windows: per stream, what one stream (a slow client's) may have in flight unread, so what the proxy may
# hold for a client that stopped reading (besides its transport's buffer): 1,000 such streams hold ~64 MiB;
# per connection, large and given back at once, so paused streams never starve the others.
STREAM_WINDOW = 64 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
# A request body waiting for the pod's window: past this, the client is not read until it drains.
_PENDING_HIGH = 256 * 1024
# Request bytes kept to send a refused stream again (as the exchange's REPLAY_LIMIT), and how many times (a pod
# refusing every stream must not keep a request going round).
_REPLAY_LIMIT = 64 * 1024
_MAX_REFUSALS = 2

# Request fields HTTP/2 forbids or the proxy replaces (RFC 9113 8.2.2); Host becomes :authority.
_CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                  b"upgrade", b"te", b"host"))
_GRPC = b"application/grpc"
_GRPC_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 0.001, b"u": 0.000001, b"n": 0.000000001}
_SEP = b": "
_CRLF = b"\r\n"
_HTTP2_CLIENT = b"HTTP/2.0"
# A pod's answer to a gRPC request without grpc-status: the gRPC status its HTTP status means to a gRPC client
# (gRPC's doc/http-grpc-status-mapping.md, as Envoy's %GRPC_STATUS% infers it); others (200 too) are UNKNOWN (2).
GRPC_OF_HTTP = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


# Response fields, as proxy/http/headers.py classifies them for HTTP/1.1 pods (upstream/ does not import http/):
# hop-by-hop ones and the pod's X-Request-ID (the proxy answers with its own) are dropped.
_DROPPED = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
                      b"upgrade", b"x-request-id"))
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Listener(Protocol):
    hide_server: bool


class ResponseWriter(Protocol):
    """What the stream needs of the client side's response writer (proxy.http.h1_writer.H1Writer)."""

    listener: _Listener
    out: list[bytes]
    chunked: bool
    passthrough: list[bytes] | None

    def interim(self, ex: Any, status: int, reason: bytes, fields: list[bytes]) -> None: ...
    def body(self, chunk: bytes) -> None: ...
    def end(self) -> None: ...
    def end_with_trailers(self, trailers: list[bytes]) -> None: ...
    def flush(self) -> int: ...


class _Server(Protocol):
    now: float


class _Client(Protocol):
    server: _Server
    protocol: bytes  # b"HTTP/2.0" for an HTTP/2 client (it takes trailers whether or not it sent TE: trailers)


class StreamExchange(Protocol):
    """What the stream needs of the request using it (proxy.http.exchange.Exchange; upstream/ does not import
    http/, so the exchange is described here)."""

    writer: ResponseWriter
    client: _Client
    last_up: float
    maybe_stale: bool
    resp_done: bool
    resp_head_done: bool
    finished: bool
    reusable: bool
    sent: int
    grpc_status: int  # what the access log's grpc_status says (-1: null)

    def response_head(self, status: int, reason: bytes, fields: list[bytes], *, length: int, chunked: bool,
                      own_hsts: bool, reusable: bool) -> bool: ...
    def response_finished(self) -> None: ...
    def fail(self, error: UpstreamError) -> None: ...
    def upstream_lost(self, exc: Exception | None) -> None: ...


def grpc_timeout(value: bytes) -> float | None:
    """Seconds of a `grpc-timeout` value (at most 8 digits and a unit: 100m, 5S); None when malformed."""
    unit = _GRPC_TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


class GrpcDeadline(UpstreamTimeout):
    """The request's grpc-timeout passed before the response was complete."""

    reason = "grpc-timeout"


class H2Stream:
    """One request on an `H2Connection`, standing in for an HTTP/1.1 upstream connection to its exchange (it is
    the exchange's ``conn``, that connection's ``transport`` and its response ``reader`` alike)."""

    __slots__ = ("pool", "connection", "stream_id", "user", "requests", "closed",
                 "reading_paused", "writing_paused", "parser", "url", "fields", "authority", "grpc", "te_trailers",
                 "headers", "body_length", "pending", "pending_size", "body_ended", "end_sent", "log", "log_size",
                 "unacked", "responded", "trailers", "timer", "exchange", "writer", "ended", "refusals")

    def __init__(self, pool: H2EndpointPool) -> None:
        self.pool = pool
        self.connection: H2Connection | None = None
        self.stream_id = 0  # 0: not opened on a connection yet
        # The exchange using the stream (attach sets it; `exchange` too, through begin), or a mirror's copy (no begin).
        self.user: ConnectionUser | None = None
        self.requests = 0
        self.closed = False
        self.reading_paused = False
        self.writing_paused = False
        self.parser: HttpRequestParser | None = HttpRequestParser(self)
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.authority = b""
        self.grpc = False
        self.te_trailers = False
        # The request as HTTP/2: the header block (None until the head is parsed), then body pieces not sent.
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.body_length = -1
        self.pending: deque[bytes] = deque()
        self.pending_size = 0
        self.body_ended = False
        self.end_sent = False
        # The request bytes as the exchange wrote them, for sending a refused stream again (None: over the limit).
        self.log: list[bytes] | None = []
        self.log_size = 0
        self.unacked = 0  # response bytes received and not yet given back to the stream's window
        self.responded = False
        self.trailers: list[bytes] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.exchange: StreamExchange | None = None
        self.writer: ResponseWriter | None = None
        self.ended = False
        self.refusals = 0  # times a pod refused this stream (sent again at most _MAX_REFUSALS times)

    # ------------------------------------------------------------------ what the exchange calls

    @property
    def reader(self) -> H2Stream:
        """The connection's response reader, to the exchange: this stream (a property: no reference cycle)."""
        return self

    @property
    def transport(self) -> H2Stream:
        """What the exchange writes its request bytes to: this stream."""
        return self

    def begin(self, exchange: StreamExchange, writer: ResponseWriter) -> None:
        """Attach (the exchange's reader protocol): responses go to `exchange` through `writer`."""
        self.exchange = exchange
        self.writer = writer
        self.te_trailers = getattr(exchange, "te_trailers", False)

    def close_delimited(self) -> bool:
        return False

    def broken(self) -> None:
        pass

    def end(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: bytes) -> None:
        """HTTP/1.1 request bytes from the exchange: parsed into the stream's HTTP/2 request."""
        if self.closed:
            return
        log = self.log
        if log is not None:
            size = self.log_size + len(data)
            if size <= _REPLAY_LIMIT and not self.responded:
                log.append(data)
                self.log_size = size
            else:
                self.log = None
        parser = self.parser
        if parser is None:
            return
        try:
            parser.feed_data(data)
        except HttpParserError as exc:
            # Our own request bytes: only a bug gets here; the request fails rather than the connection.
            logger.error("h2 stream: cannot translate the request: %s", exc)
            self._lost(ProtocolError(f"cannot translate the request to HTTP/2: {exc}"))
            return
        connection = self.connection
        if connection is not None and self.stream_id:
            self._pump()
            connection.flush_soon()

    def pause_reading(self) -> None:
        """The client stopped reading: stop giving this stream's window back (the pod pauses this stream only)."""
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False
        if self.unacked and self.stream_id and not self.closed:
            self._ack(0)

    def close(self) -> None:
        """The exchange is done with the stream: reset it if it is still open (a client that went away)."""
        if self.closed:
            return
        self.closed = True
        self.user = None
        self.exchange = self.writer = None
        self.parser = None  # (it refers back to this stream: no cycle left for the cyclic collector)
        self.log = None
        self._stop_timer()
        connection = self.connection
        if connection is not None:
            # Reset unless both sides ended (a pod that answered before the request body was all sent, too).
            connection.drop(self, reset=not (self.ended and self.end_sent))
        else:
            self.pool.forget(self)

    abort = close

    # ------------------------------------------------------------------ request parsing (httptools callbacks)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in _CONNECTION_SPECIFIC:
            if name == b"host":
                self.authority = value
            elif name == b"te" and b"trailers" in value.lower():
                self.te_trailers = True
            return
        if name == b"content-type" and value.startswith(_GRPC):
            self.grpc = True
        elif name == b"content-length":
            self.body_length = int(value)
        elif name == b"grpc-timeout":
            seconds = grpc_timeout(value)
            if seconds is not None:
                self._start_timer(seconds)
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        pool = self.pool
        parser = self.parser
        assert parser is not None
        headers = [(b":method", parser.get_method()), (b":scheme", pool.scheme),
                   (b":authority", self.authority or pool.authority), (b":path", self.url or b"/")]
        headers += self.fields
        if self.grpc or self.te_trailers:
            headers.append((b"te", b"trailers"))
        self.headers = headers
        self.fields = []

    def on_body(self, chunk: bytes) -> None:
        self.pending.append(chunk)
        self.pending_size += len(chunk)

    def on_message_complete(self) -> None:
        self.body_ended = True

    # ------------------------------------------------------------------ sending (called with a stream id)

    def opened(self, connection: H2Connection, stream_id: int) -> None:
        """The connection gave this stream its id: send what is ready."""
        self.connection = connection
        self.stream_id = stream_id
        self._pump()

    def _pump(self) -> None:
        """Send the head once, then body pieces within the pod's windows, then the end."""
        connection = self.connection
        assert connection is not None
        conn = connection.h2
        stream_id = self.stream_id
        headers = self.headers
        if headers is None:
            return
        if headers:
            self.headers = []
            no_body = self.body_ended and not self.pending
            conn.send_headers(stream_id, headers, end_stream=no_body)
            if no_body:
                self.end_sent = True
                return
        pending = self.pending
        while pending and not connection.writing_paused:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                break
            chunk = pending.popleft()
            if len(chunk) > window:
                pending.appendleft(chunk[window:])
                chunk = chunk[:window]
            self.pending_size -= len(chunk)
            conn.send_data(stream_id, chunk)
        if not pending and self.body_ended and not self.end_sent:
            self.end_sent = True
            conn.end_stream(stream_id)
        user = self.user
        if self.pending_size > _PENDING_HIGH:
            if not self.writing_paused:
                self.writing_paused = True
                if user is not None:
                    user.upstream_write_paused()
        elif self.writing_paused:
            self.writing_paused = False
            if user is not None:
                user.upstream_write_resumed()

    def refused(self) -> bool:
        """The pod did not process this stream (REFUSED_STREAM, GOAWAY): send it again elsewhere if it can be.
        True when it will be."""
        log = self.log
        if self.closed or self.responded or log is None or self.refusals >= _MAX_REFUSALS:
            return False
        self.refusals += 1
        self.connection = None
        self.stream_id = 0
        self.parser = HttpRequestParser(self)
        self.url = b""
        self.fields = []
        self.authority = b""
        self.headers = None
        self.pending.clear()
        self.pending_size = 0
        self.body_ended = self.end_sent = False
        self.log = []
        self.log_size = 0
        for data in log:
            self.write(data)
        self.pool.place(self)
        return True

    # ------------------------------------------------------------------ the response (H2Connection's events)

    def response(self, fields: list[tuple[bytes, bytes]], ended: bool) -> None:
        ex = self.exchange
        if ex is None or self.user is None:
            self.responded = True
            self.log = None
            return  # a mirror's copy (see ended_by_pod) or nobody: the answer is not relayed
        status = 0
        kept: list[bytes] = []
        length = -1
        own_hsts = False
        hide_server = ex.writer.listener.hide_server
        for name, value in fields:
            if name[:1] == b":":
                if name == b":status":
                    status = int(value)
                continue
            if name in _DROPPED:
                continue
            if name == b"content-length":
                length = int(value)
            elif name == b"strict-transport-security":
                own_hsts = True
            elif name == b"server" and hide_server:
                continue
            kept += (name, _SEP, value, _CRLF)
        if status < 200:
            return  # 1xx (h2 reports them as informational(), not here): the final response follows
        self.responded = True
        self.log = None
        if self.grpc:
            # The pod's gRPC status for the access log: a trailers-only answer's, else what its HTTP status means
            # until trailers say otherwise (Envoy's %GRPC_STATUS%: trailers, then headers, then the HTTP status).
            ex.grpc_status = grpc_status_of(fields, GRPC_OF_HTTP.get(status, 2))
        if ended and length < 0:
            length = 0  # a trailers-only (gRPC) or empty answer: its head says all
            kept += (b"content-length", _SEP, b"0", _CRLF)
        server = ex.client.server
        ex.last_up = server.now
        ex.maybe_stale = False
        body = ex.response_head(status, _REASONS.get(status, b""), kept, length=length, chunked=False,
                                own_hsts=own_hsts, reusable=True)
        if not body:
            ex.resp_done = True
        self._flush(ex)

    def informational(self, fields: list[tuple[bytes, bytes]]) -> None:
        """A 1xx answer (100 Continue, 103 Early Hints) before the final one: relayed to the client as the HTTP/1.1
        pods' are (the writer leaves it out for HTTP/1.0 clients)."""
        ex = self.exchange
        if ex is None or self.user is None or self.responded:
            return
        status = 0
        kept: list[bytes] = []
        for name, value in fields:
            if name[:1] == b":":
                if name == b":status":
                    status = int(value)
            elif name not in _DROPPED:
                kept += (name, _SEP, value, _CRLF)
        if 100 <= status < 200 and status != 101:
            ex.writer.interim(ex, status, _REASONS.get(status, b""), kept)
            self._flush(ex)

    def data(self, chunk: bytes, flow: int) -> None:
        ex = self.exchange
        if ex is None or self.user is None:
            self._ack(flow)
            return
        if not chunk:  # an empty DATA frame (its END_STREAM comes as StreamEnded): an empty chunk would end the body
            if flow:
                self._ack(flow)
            return
        writer = ex.writer
        passthrough = writer.passthrough
        if passthrough is not None:
            passthrough.append(chunk)
        else:
            writer.body(chunk)
        ex.last_up = ex.client.server.now
        self._flush(ex)
        if not self.closed:
            self._ack(flow)

    def trailers_received(self, fields: list[tuple[bytes, bytes]]) -> None:
        ex = self.exchange
        if ex is not None and self.grpc and self.user is not None:
            ex.grpc_status = grpc_status_of(fields, ex.grpc_status)  # (logged even for a client that takes none)
        if ex is None or self.user is None or not (self.te_trailers or ex.client.protocol == _HTTP2_CLIENT):
            return  # an HTTP/1.1 client that did not send TE: trailers gets none
        kept: list[bytes] = []
        for name, value in fields:
            if name[:1] != b":" and name not in _DROPPED and name != b"content-length":
                kept += (name, _SEP, value, _CRLF)
        self.trailers = kept

    def ended_by_pod(self) -> None:
        self.ended = True
        user = self.user
        if user is not None and self.exchange is None:
            # A user that is no exchange (a mirror's copy, proxy/http/mirror.py) only wants to know the answer ended.
            finish = getattr(user, "on_message_complete", None)
            if finish is not None and self.responded:
                finish()
            else:
                self._lost(ProtocolError("the pod ended the stream without a response"))
            return
        ex = self.exchange
        if ex is None or user is None or not self.responded:
            if ex is not None:
                self._lost(ProtocolError("the pod ended the stream without a response"))
            return
        if not ex.resp_done:
            writer = ex.writer
            trailers = self.trailers
            if trailers and writer.chunked:
                writer.end_with_trailers(trailers)
            elif writer.passthrough is None:
                writer.end()
            ex.resp_done = True
        self._stop_timer()
        self._flush(ex)

    def reset_by_pod(self, code: int) -> None:
        self.ended = True
        if code == h2.errors.ErrorCodes.REFUSED_STREAM and self.refused():
            return
        name = error_name(code)
        self._lost(UpstreamClosed(f"the pod reset the HTTP/2 stream ({name})"))

    def connection_lost(self, error: Exception) -> None:
        """The connection closed or went away with this stream on it."""
        self.ended = True
        self._lost(error)

    def _lost(self, error: Exception) -> None:
        """The stream is over without a complete response: the exchange fails (or retries) as with a lost
        HTTP/1.1 connection."""
        self._stop_timer()
        user = self.user
        ex = self.exchange
        self.user = None
        if user is not None and ex is None:
            user.upstream_lost(error)  # a mirror's copy
        elif ex is not None and user is not None:
            if isinstance(error, UpstreamTimeout) or (isinstance(error, ProtocolError) and not ex.resp_head_done):
                ex.fail(error)
            else:
                ex.upstream_lost(error)
        if not self.closed:
            self.close()

    def _flush(self, ex: StreamExchange) -> None:
        writer = ex.writer
        if writer.out:
            ex.sent += writer.flush()
        if ex.resp_done:
            ex.response_finished()

    def _ack(self, flow: int) -> None:
        """Give received bytes back to the stream's window while the client reads (batched: half a window)."""
        unacked = self.unacked + flow
        if self.reading_paused or unacked < STREAM_WINDOW // 2:
            self.unacked = unacked
            return
        self.unacked = 0
        connection = self.connection
        if connection is not None and unacked:
            try:
                connection.h2.increment_flow_control_window(unacked, stream_id=self.stream_id)
            except h2.exceptions.StreamClosedError:
                return
            connection.flush_soon()

    # ------------------------------------------------------------------ grpc-timeout

    def _start_timer(self, seconds: float) -> None:
        self._stop_timer()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._deadline)

    def _stop_timer(self) -> None:
        timer = self.timer
        if timer is not None:
            self.timer = None
            timer.cancel()

    def _deadline(self) -> None:
        """grpc-timeout passed: DEADLINE_EXCEEDED to the client (a trailer when the response has begun)."""
        self.timer = None
        ex = self.exchange
        if ex is None or self.user is None or ex.finished:
            return
        if ex.resp_head_done and not ex.resp_done and ex.writer.chunked:
            self.user = None
            if self.te_trailers:
                ex.grpc_status = 4
                ex.writer.end_with_trailers([b"grpc-status: 4\r\n",
                                             b"grpc-message: deadline exceeded at the proxy\r\n"])
            else:
                ex.writer.end()
            ex.resp_done = True
            self.close()
            ex.reusable = False
            self._flush(ex)
            return
        self._lost(GrpcDeadline("the request's grpc-timeout passed before the response was complete"))

    def __repr__(self) -> str:
        return f"<H2Stream {self.stream_id} of {self.pool!r}>"


def grpc_status_of(fields: list[tuple[bytes, bytes]], default: int) -> int:
    """The grpc-status among a pod's header or trailer fields (`default` when there is none; UNKNOWN, 2, when it
    is not a number, as a gRPC client reads it)."""
    for name, value in fields:
        if name == b"grpc-status":
            return grpc_status_value(value)
    return default


def grpc_status_value(value: bytes) -> int:
    """A grpc-status field's value as a gRPC client reads it (UNKNOWN, 2, when it is not a number)."""
    return int(value) if value.isdigit() and len(value) < 10 else 2


def error_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error {code}"
