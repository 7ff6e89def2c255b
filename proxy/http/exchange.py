# cython: annotation_typing=False
"""One proxied request: the upstream request head and body going up, the response coming down.

Everything runs in transport callbacks (no Task per request): the client connection
feeds request bytes in, the upstream connection feeds response bytes in, and each
side's output is collected and written with ONE write at the end of the callback that
produced it (a response head and a small body share a write). A Task exists only while
dialing a new upstream connection.

The upstream side speaks HTTP/1.1 (the request head arrives ready from the pipeline, the
response is parsed here); the client side is the connection's writer (``H1Writer`` for
HTTP/1.1 clients): this module hands it response heads and bodies and knows no client
wire format. Which endpoint an attempt goes to is the upstream balancer's choice; a request
under a traffic policy (its route's or its cluster's) is driven by its `Attempts`
(proxy/http/attempts.py: retries, circuit breaker, affinity, fault delay), every other one by
`start` alone.

Flow control both ways: a transport whose write buffer passes its high-water mark
calls ``pause_writing`` on its protocol, which pauses reading on the other side
until ``resume_writing``; so no body is ever buffered beyond one read plus one
write buffer, whatever its size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade

from proxy.http import error_pages, mirror

# The modules, not their names: compiled, record (a typed argument) and h1_response (its reader's typed exchange)
# cimport Exchange, so importing either first imports this module, which must not need their names before they ran.
from proxy.http import h1_response as _h1
from proxy.http import raw_body as _raw
from proxy.http import record as _record
from proxy.http.deadlines import check_timeouts
from proxy.http.downstream import BLOCK_CONNECT, BLOCK_UPSTREAM
from proxy.http.head import RequestHead
from proxy.http.response_head import ResponseHead
from proxy.http.responses import grpc_end_with_error
from proxy.http.upstream_faults import log_fault
from proxy.upstream.errors import (
    BadRequest,
    ConnectError,
    NoEndpoints,
    ProtocolError,
    UpstreamClosed,
    UpstreamError,
    UpstreamTimeout,
)

if TYPE_CHECKING:
    from proxy.http.attempts import Attempts
    from proxy.http.auth_request import AuthGate
    from proxy.http.downstream import Downstream
    from proxy.http.h1_response import H1Response
    from proxy.http.response_writer import ResponseWriter
    from proxy.routing.filters import ResponseFilter
    from proxy.routing.model import Timeouts
    from proxy.routing.request import ClientCertificate
    from proxy.stats import RouteStats
    from proxy.upstream.cluster import Upstream
    from proxy.upstream.connection import UpstreamConnection
    from proxy.upstream.pool import EndpointPool

logger = logging.getLogger("pyngress.proxy")

# Request bytes kept for a transparent retry when a reused keep-alive connection turns
# out to be closed by the upstream before answering, and for a retry policy's retries;
# larger requests are not replayed once sent.
REPLAY_LIMIT = 64 * 1024

IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))

# Failures that count against the endpoint (besides connect failures, reported as they happen).
_UPSTREAM_FAULTS = (UpstreamTimeout, UpstreamClosed, ProtocolError)

_CHUNK_END = b"0\r\n\r\n"
_CRLF = b"\r\n"
# Request and upstream durations: a monotonic clock with sub-microsecond resolution (uvloop's
# loop.time() is the cached millisecond time of the loop iteration).
_clock = time.perf_counter


class Exchange(RequestHead):
    """State of one request from its first byte to the end of its response (or tunnel).

    An exchange *is* its request head: the client protocol fills the RequestHead fields, the pipeline
    and the rule's filters read and edit them, and this class adds what forwarding needs. (One object
    per request rather than two: the second one measured about 1.5% more instructions per request.)
    """

    __slots__ = (
        # request: the head (RequestHead's fields, filled by the client protocol), then the body as it arrives
        "client", "client_ip", "keep_alive", "head_done", "req_done",
        # forwarding
        "upstream", "pool", "conn", "connecting", "attempts", "max_attempts", "up_out", "replay", "replay_size",
        "maybe_stale", "last_up", "body_limit", "timeouts", "deadline", "attempt_deadline", "response_filters",
        "mirrors", "policy",
        # response
        "writer", "response", "resp_head_done", "resp_done", "reusable", "tunnel", "finished",
        # accounting (metrics and access log), see account()
        "started", "status", "received", "sent", "sent_at", "upstream_time", "retries", "route_stats", "accounted",
        "reason", "grpc_status",
    )

    # Set when the exchange is attached to an upstream connection (see attach).
    reusable: bool
    # Set only with a route's timeouts (see `timeouts`).
    deadline: float
    attempt_deadline: float
    attempts: int
    max_attempts: int
    replay_size: int
    # The current connection was reused and nothing came back on it yet: its closing may mean the upstream
    # had closed it while idle (set by attach).
    maybe_stale: bool
    last_up: float
    sent_at: float

    # RequestHead fields the request path always writes before anything reads them: Exchange.__init__
    # leaves them out (RequestHead.__init__ is not called: it would cost a call and these stores on every
    # request). The pipeline sets host/path/scheme/port/https_port/rewritten before filters run, the
    # protocol sets server_name and id_pool/id_at with the head. tests/server/test_head.py checks this list.
    SET_BEFORE_READ = frozenset({"scheme", "host", "path", "port", "https_port", "rewritten", "server_name", "id_pool",
                                 "id_at"})
    # RequestHead fields set only when their header is seen (their readers use getattr with the default).
    SET_WHEN_SEEN = frozenset({"te_trailers"})

    def __init__(self, client: Downstream) -> None:
        # The RequestHead defaults (see RequestHead.__init__), but for SET_BEFORE_READ.
        self.method = b""
        self.target = b""
        self.authority = None
        self.fields = []
        self.header_count = 0
        self.header_bytes = 0
        self.forwarded_for = None
        self.forwarded_in = None
        self.request_id = b""
        self.upgrade = None
        self.connection_names = None
        self.content_length = -1
        self.chunked = False
        self.http10 = False
        self.websocket = False
        self.user_agent = None
        self.traceparent = None
        self.tracestate = None
        self.trace = None
        self.query = b""
        self._query_values = None
        # The exchange's own state.
        self.client = client
        downstream = self.client  # (typed as the Downstream it is, compiled: exchange.pxd)
        # The client's address for this request: the connection's (its peer, or its PROXY header's), unless a
        # trusted X-Forwarded-For names another (proxy/http/forwarded.py).
        self.client_ip = downstream.client_ip
        self.writer: ResponseWriter = downstream.writer
        self.keep_alive = True
        self.head_done = False
        self.req_done = False
        self.upstream: Upstream | None = None
        self.pool: EndpointPool | None = None
        self.conn: UpstreamConnection | None = None
        # Dialing (a Task), or a timer before the next attempt (a fault delay, a retry's backoff, a wait for
        # a connection): what a client going away cancels.
        self.connecting: asyncio.Task[None] | asyncio.TimerHandle | asyncio.Future[bool] | None = None
        self.up_out: list[bytes] = []
        self.replay: list[bytes] | None = None
        # A chunked body longer than this gets 413 (0: no limit); set by the pipeline (proxy-body-size).
        self.body_limit = 0
        # A route's timeouts; only then `deadline` (the request's, as a loop time, 0: none) and
        # `attempt_deadline` (the current attempt's, see start) are set.
        self.timeouts: Timeouts | None = None
        self.response_filters: tuple[ResponseFilter, ...] = ()
        # Copies of this request still collecting its body; None: no mirror waits.
        self.mirrors: mirror.Copies | None = None
        # The request's attempts under a traffic policy; None: the plain path (see start).
        self.policy: Attempts | AuthGate | None = None
        self.response: H1Response | None = None  # the current attempt's response reader
        self.resp_head_done = False
        self.resp_done = False
        self.tunnel = False
        self.finished = False
        self.started = _clock()
        self.status = 0  # of the response the client got (0: none yet)
        self.received = 0  # request body bytes (the head is added up in account())
        self.sent = 0
        self.upstream_time = -1.0
        self.retries = 0
        self.route_stats: RouteStats | None = None
        self.accounted = False
        self.reason = ""  # why the proxy answered itself (the access log's "reason"; "" when it did not)
        self.grpc_status = -1  # of a gRPC answer, the proxy's (grpc_answered) or the pod's (H2Stream); -1: none

    # ------------------------------------------------------------------ request side

    @property
    def client_address(self) -> bytes:
        """The client's address (Request.client_address): read only by filters that check it."""
        return self.client_ip

    @property
    def client_certificate(self) -> ClientCertificate | None:
        """The connection's client certificate (Request.client_certificate): read only by the auth-tls check."""
        return self.client.client_certificate()

    def start(self, upstream: Upstream, head: list[bytes], retries: int) -> None:
        """Send ``head`` (plus any body already read) to the endpoint the upstream's balancer picks."""
        self.upstream = upstream
        if self.up_out:
            head.extend(self.up_out)
        self.up_out = head
        self.attempts = 1
        self.max_attempts = min(retries, len(upstream.pools)) if retries > 1 else 1
        self.sent_at = _clock()
        timeouts = self.timeouts
        if timeouts is not None:
            limit = timeouts.backend_request
            self.attempt_deadline = self.client.server.now + limit if limit else 0.0
        pool = upstream.balancer.pick()
        if pool is None:
            self.fail(NoEndpoints(f"no ready endpoints for {upstream.key}"))
            return
        conn = pool.acquire()
        if conn is not None:
            self.attach(conn, pool)
        else:
            self.dial(pool)

    def dial(self, pool: EndpointPool) -> None:
        self.client.block(BLOCK_CONNECT)
        self.connecting = asyncio.get_running_loop().create_task(self._connect(pool))

    async def _connect(self, pool: EndpointPool) -> None:
        """Dial ``pool``, then the endpoints the balancer picks after it, until one accepts or attempts run out."""
        error: UpstreamError | None = None
        conn: UpstreamConnection | None
        try:
            while True:
                try:
                    conn = await pool.connect()
                except ConnectError as exc:
                    error = exc
                    if self.finished:
                        return
                    logger.debug("request %s: %s", self.request_id.decode("latin-1"), exc)
                    upstream = self.upstream
                    if upstream is None:
                        break
                    upstream.report(pool, 0)
                    if self.attempts >= self.max_attempts:
                        break
                    following = upstream.balancer.pick(pool)
                    if following is None:
                        break
                    pool = following
                    self.attempts += 1
                    self.retries += 1
                    conn = pool.acquire()
                    if conn is None:
                        continue
                self.connecting = None
                if self.finished:
                    pool.release(conn)
                    return
                self.attach(conn, pool)
                self.client.unblock(BLOCK_CONNECT)
                self.flush_upstream()
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: answer and log it rather than leaving the client hanging
            logger.exception("request %s: unexpected error while connecting", self.request_id.decode("latin-1"))
            error = ConnectError(f"unexpected error: {exc!r}")
            error.__cause__ = exc
        self.connecting = None
        self.fail(error or NoEndpoints("no endpoints"))

    def attach(self, conn: UpstreamConnection, pool: EndpointPool) -> None:
        reused = conn.requests > 0
        conn.requests += 1
        conn.user = self
        self.conn = conn
        previous = self.pool
        if previous is not pool:
            if previous is not None:
                previous.in_flight -= 1
            pool.in_flight += 1
            self.pool = pool
        reader = conn.reader
        if reader is None:
            reader = conn.reader = _h1.H1Response()
        reader.begin(self, self.writer)  # type: ignore[attr-defined]  # the connection holds our H1Response
        self.response = reader  # type: ignore[assignment]
        self.reusable = False
        self.maybe_stale = reused
        client = self.client
        self.last_up = client.server.now
        # Only a reused connection can turn out stale; only a replayable request is retried (and the
        # requests a retry policy may send again).
        if (reused and self.method in IDEMPOTENT) or (self.policy is not None and self.policy.replays):
            self.replay = []
            self.replay_size = 0
        else:
            self.replay = None
        if conn.writing_paused:
            client.block(BLOCK_UPSTREAM)
        if client.write_paused:
            conn.pause_reading()

    def flush_upstream(self) -> None:
        out = self.up_out
        conn = self.conn
        if not out or conn is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        replay = self.replay
        if replay is not None:
            size = self.replay_size + len(data)
            if size <= REPLAY_LIMIT:
                replay.append(data)
                self.replay_size = size
            else:
                self.replay = None
        conn.transport.write(data)

    def add_body(self, chunk: bytes) -> None:
        """A piece of the client's request body (already de-chunked by the parser)."""
        received = self.received = self.received + len(chunk)
        if self.chunked:
            limit = self.body_limit
            if limit and received > limit:
                # Raised inside the parser's callback: the connection answers 413 and closes (reject).
                raise BadRequest(f"chunked request body over the limit of {limit} bytes", status=413)
            framed: tuple[bytes, ...] = (b"%x\r\n" % len(chunk), chunk, _CRLF)
            self.up_out += framed
        else:
            framed = (chunk,)
            self.up_out.append(chunk)
        mirrors = self.mirrors
        if mirrors is not None and not mirrors.add(framed, len(chunk)):
            self.mirrors = None

    def request_complete(self) -> None:
        """The client's request message (head and body) has been fully read."""
        if self.finished:
            return
        self.req_done = True
        if self.chunked:
            self.up_out.append(_CHUNK_END)
        self.last_up = self.client.server.now
        mirrors = self.mirrors
        if mirrors is not None:
            self.mirrors = None
            mirrors.send(_CHUNK_END if self.chunked else b"")

    def tunnel_to_upstream(self, data: bytes) -> None:
        self.received += len(data)
        conn = self.conn
        if conn is not None and self.tunnel:
            conn.transport.write(data)
        else:
            self.up_out.append(data)

    def client_lost(self) -> None:
        """The client closed or reset: drop the upstream side (its state is unknown)."""
        if self.finished:
            self.account()  # a tunnel or a response that ended with the connection
            return
        self.finished = True
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.close()
        if not self.tunnel and self.head_done:
            logger.debug(
                "request %s: client went away before the response was complete", self.request_id.decode("latin-1")
            )
        self.account()

    # ------------------------------------------------------------------ upstream side

    def upstream_data(self, data: bytes | memoryview) -> None:
        """A read from the upstream: `bytes`, or on uvloop a view of the connection's read buffer, valid only during
        this call (proxy.upstream.connection): whatever keeps bytes of it past the call copies them, but for a raw
        body's pieces, handed to the client's transport as they are (proxy.http.raw_body)."""
        client = self.client
        if self.tunnel:
            self.sent += self.writer.raw(data if type(data) is bytes else bytes(data))
            self.last_up = client.server.now
            return
        self.last_up = client.server.now
        self.maybe_stale = False
        response = self.response
        if response.remaining:  # type: ignore[union-attr]  # attached: our H1Response
            _raw.take(self, data, 0)
            _raw.flush(self, data)
            if self.resp_done:
                self.response_finished()
            return
        try:
            if self.resp_head_done or response.tail is None:  # type: ignore[union-attr]  # attached: our H1Response
                response.parser.feed_data(data)  # type: ignore[union-attr]
            elif _raw.feed(self, data):  # the head ended in this read, and the raw body after it is written
                if self.resp_done:
                    self.response_finished()
                return
        except HttpParserUpgrade as exc:
            writer = self.writer
            writer.body(bytes(data[exc.args[0] :]))
            self.sent += writer.flush()
            self.tunnel = True
            client.start_tunnel(self)
            return
        except HttpParserCallbackError as exc:
            response.broken()  # type: ignore[union-attr]
            cause = exc.__context__
            if isinstance(cause, _h1.RawBody):
                cause.__traceback__ = None  # its frames lead back to this one (see UpstreamError below)
                _raw.start(self, data)
            elif isinstance(cause, _h1.SkipBody):
                # A HEAD response ends with its head; only reuse the connection if nothing followed it.
                self.reusable = self.reusable and data[-4:] == b"\r\n\r\n"
            elif isinstance(cause, _h1.ExtraResponse):
                self.extra_bytes()
            elif isinstance(cause, UpstreamError):
                # Its traceback's frames lead back to this one, which holds it: a reference cycle per failed (or
                # retried) response unless the traceback goes (the log line names the error, not its frames).
                cause.__traceback__ = None
                self.fail(cause)
                return
            else:
                logger.error(
                    "request %s: error handling the upstream response", self.request_id.decode("latin-1"),
                    exc_info=cause,
                )
                error = ProtocolError("internal error handling the response")
                error.__cause__ = cause
                self.fail(error)
                return
        except HttpParserError as exc:
            self.response.broken()  # type: ignore[union-attr]
            if self.resp_done:  # e.g. bytes after a `Connection: close` response: what came before is whole
                self.extra_bytes()
            else:
                error = ProtocolError(f"invalid response from upstream: {exc}")
                error.__cause__ = exc
                self.fail(error)
                return
        writer = self.writer
        if writer.out:
            self.sent += writer.flush()
        if self.resp_done:
            self.response_finished()
        elif not self.resp_head_done:
            _raw.keep_tail(response, data)  # type: ignore[arg-type]  # the head goes on in the next read

    def extra_bytes(self) -> None:
        """The pod sent bytes after its complete response (garbage, or a response nobody asked for): the client
        has a whole, well-framed answer and keeps it; those bytes are not forwarded and the pod connection, out of
        step, is closed instead of reused (as a raw body does past its Content-Length)."""
        self.reusable = False
        log_fault(self, "bytes after the complete response")

    def upstream_eof(self) -> None:
        if self.tunnel:
            self.client.close()
            return
        if self._close_delimited():
            self._end_close_delimited()

    def upstream_lost(self, exc: Exception | None) -> None:
        """The upstream connection closed while this exchange owned it."""
        self.conn = None
        if self.finished:
            return
        if self.tunnel:
            self.finished = True
            self.client.close()
            return
        if self.resp_done:
            self.response_finished()
        elif exc is None and self._close_delimited():
            self._end_close_delimited()
        elif self.replay is not None and self.maybe_stale and self.pool is not None:
            # A keep-alive connection the upstream had already closed: nothing was answered,
            # the request is idempotent and still in hand, so send it again on a fresh connection.
            data = self.replay
            self.replay = None
            self.up_out[:0] = data
            self.retries += 1
            logger.debug(
                "request %s: reused upstream connection was closed, retrying", self.request_id.decode("latin-1")
            )
            policy = self.policy
            if policy is None:
                self.dial(self.pool)
            elif policy.connect(self.pool):
                self.flush_upstream()
        else:
            error = UpstreamClosed("upstream closed the connection before the response was complete")
            error.__cause__ = exc
            self.fail(error)

    def _close_delimited(self) -> bool:
        response = self.response
        return (self.resp_head_done and not self.resp_done and not self.finished and response is not None
                and response.close_delimited())

    def _end_close_delimited(self) -> None:
        writer = self.writer
        writer.end()
        self.sent += writer.flush()
        self.resp_done = True
        self.reusable = False
        self.response_finished()

    def upstream_write_paused(self) -> None:
        self.last_up = self.client.server.now  # from now on the upstream must drain what we sent
        self.client.block(BLOCK_UPSTREAM)

    def upstream_write_resumed(self) -> None:
        self.last_up = self.client.server.now
        self.client.unblock(BLOCK_UPSTREAM)

    # the response, as H1Response reads it

    def response_head(self, status: int, reason: bytes, fields: list[bytes], length: int, chunked: bool,
                      own_hsts: bool, reusable: bool) -> bool:
        """A final response head arrived: run the rule's response filters and frame it for the client.
        Returns False when no body follows (a HEAD request's answer)."""
        self.resp_head_done = True
        self.status = status
        self.upstream_time = _clock() - self.sent_at
        self.reusable = reusable
        if self.response_filters:
            response = ResponseHead(status, fields)
            for response_filter in self.response_filters:
                response_filter.on_response(self, response)
            fields = response.fields
        client = self.client
        body = self.writer.head(self, status, reason, fields, length=length, chunked=chunked, own_hsts=own_hsts,
                                draining=client.server.draining or client.listener.closing)
        if not body:
            self.resp_done = True
        return body

    def switching(self, reason: bytes, fields: list[bytes], upgrade: bytes | None) -> None:
        """101 Switching Protocols: only for a WebSocket upgrade the client asked for."""
        if not self.websocket or upgrade is None:
            raise ProtocolError("101 Switching Protocols to a request that did not ask for a WebSocket")
        self.resp_head_done = True
        self.status = 101
        self.upstream_time = _clock() - self.sent_at
        self.reusable = False
        self.writer.switching(self, reason, fields, upgrade)

    # ------------------------------------------------------------------ endings

    def account(self) -> None:
        """Count the finished request once: its route's series, and the access log when on.

        Also drops the response reader, which refers back to this exchange: breaking that
        cycle here lets reference counting free every exchange at once, instead of leaving
        them to the cyclic garbage collector, whose full passes stall the loop.
        """
        if not self.accounted:
            self.accounted = True
            _record.record(self)

    def response_finished(self) -> None:
        """The response is complete: give the connection back (or close it) and free the client."""
        if self.finished:
            return
        self.finished = True
        client = self.client
        conn = self.conn
        pool = self.pool
        if conn is not None:
            self.conn = None
            conn.user = None
            if self.reusable and self.req_done and not self.up_out and pool is not None:
                pool.release(conn)
            else:
                conn.close()
        upstream = self.upstream
        if pool is not None and upstream is not None and (
                pool.failures or self.status >= 500 or upstream.reports_success):
            upstream.report(pool, self.status, self.upstream_time)
        if client.blocked:
            client.unblock(BLOCK_UPSTREAM)
        # A response that ended before its request body was read leaves unread bytes: close.
        client.exchange_finished(self, self.keep_alive and self.req_done)

    def abandon(self) -> None:
        """Stop forwarding: cancel a dial, drop the upstream connection (its state is unknown)."""
        connecting = self.connecting
        if connecting is not None:
            self.connecting = None
            if connecting is not asyncio.current_task():
                connecting.cancel()
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.abort()
        self.client.unblock(BLOCK_CONNECT | BLOCK_UPSTREAM)

    def fail(self, error: UpstreamError) -> None:
        """Answer ``error`` if nothing was sent to the client yet, else cut the client connection."""
        if self.finished:
            return
        self.abandon()
        if self.response_filters and error_pages.divert(self, error):
            return  # the route's error backend answers instead
        policy = self.policy
        if policy is not None:
            if policy.failed(error):
                return  # another attempt is under way
        else:
            upstream, pool = self.upstream, self.pool
            if upstream is not None and pool is not None and isinstance(error, _UPSTREAM_FAULTS):
                upstream.report(pool, 0)  # connect failures were reported as they happened
        client = self.client
        if not self.resp_head_done:
            client.send_error(self, error.status, error, fields=error.fields)
        elif not grpc_end_with_error(self, error):  # (a gRPC answer ends with its error as trailers, not cut)
            self.finished = True
            logger.warning(
                "request %s: response aborted after it started (%s: %s)",
                self.request_id.decode("latin-1") or "-",
                type(error).__name__,
                error,
            )
            self.account()
            client.cut()

    def check(self, now: float) -> None:
        """Timeouts, called by the server's clock tick (no timer per request); see proxy.http.deadlines."""
        if not self.finished:
            check_timeouts(self, now)


__all__ = ["Exchange"]
