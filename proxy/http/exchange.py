"""One proxied request: the upstream request head and body going up, the response coming down.

Everything runs in transport callbacks (no Task per request): the client connection
feeds request bytes in, the upstream connection feeds response bytes in, and each
side's output is collected in a list and written with ONE ``transport.write`` at the
end of the callback that produced it (a response head and a small body share a
write, which is where a proxy's time goes). A Task exists only while dialing a new
upstream connection.

Flow control both ways: a transport whose write buffer passes its high-water mark
calls ``pause_writing`` on its protocol, which pauses reading on the other side
until ``resume_writing``; so no body is ever buffered beyond one read plus one
write buffer, whatever its size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpResponseParser

from proxy.accesslog import address_text, route_fields
from proxy.http import headers as h
from proxy.http.responses import status_prefix
from proxy.upstream.errors import (
    ConnectError,
    NoEndpoints,
    ProtocolError,
    UpstreamClosed,
    UpstreamError,
    UpstreamTimeout,
)

if TYPE_CHECKING:
    from proxy.stats import RouteStats
    from proxy.upstream.cluster import Upstream
    from proxy.upstream.connection import UpstreamConnection
    from proxy.upstream.pool import EndpointPool

logger = logging.getLogger("pyngress.proxy")

# Reasons the client connection stops reading (a bit mask: reading resumes when all clear).
BLOCK_CONNECT = 1  # dialing an upstream: hold the body until there is somewhere to send it
BLOCK_UPSTREAM = 2  # the upstream transport's write buffer is full
BLOCK_PIPELINE = 4  # a pipelined request waits for the one before it
BLOCK_UPGRADE = 8  # a WebSocket upgrade waits for the upstream's 101

# Request bytes kept for a transparent retry when a reused keep-alive connection turns
# out to be closed by the upstream before answering; larger requests are not replayed.
REPLAY_LIMIT = 64 * 1024

IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))

_CHUNK_END = b"0\r\n\r\n"
_response_cache = h.response_cache
_CRLF = b"\r\n"
_SEP = b": "
# Request and upstream durations: a monotonic clock with sub-microsecond resolution (uvloop's
# loop.time() is the cached millisecond time of the loop iteration).
_clock = time.perf_counter
_wall = time.time


class _SkipBody(Exception):
    """Raised from on_headers_complete to stop the parser after the head of a HEAD response."""


class _ExtraResponse(Exception):
    """The upstream sent more than one final response for one request."""


class Exchange:
    """State of one request from its first byte to the end of its response (or tunnel)."""

    __slots__ = (
        # request, filled by the client connection's parser callbacks
        "client",
        "url",
        "headers",
        "header_count",
        "header_bytes",
        "host",
        "forwarded_for",
        "request_id",
        "upgrade",
        "connection_names",
        "content_length",
        "chunked",
        "method",
        "http10",
        "keep_alive",
        "websocket",
        "head_done",
        "req_done",
        # forwarding
        "upstream",
        "pool",
        "conn",
        "connecting",
        "start_index",
        "attempts",
        "max_attempts",
        "up_out",
        "replay",
        "replay_size",
        "last_up",
        # response
        "parser",
        "down_out",
        "reason",
        "resp_headers",
        "resp_length",
        "resp_chunked",
        "resp_upgrade",
        "resp_connection",
        "resp_head_done",
        "resp_done",
        "interim",
        "chunked_down",
        "reusable",
        "tunnel",
        "finished",
        # accounting (metrics and access log), see account()
        "started",
        "status",
        "received",
        "sent",
        "sent_at",
        "upstream_time",
        "retries",
        "route_stats",
        "user_agent",
        "accounted",
        "resp_hsts",
    )

    # Set when the exchange is attached to an upstream connection (see attach).
    parser: HttpResponseParser
    down_out: list[bytes]
    reason: bytes
    resp_headers: list[bytes]
    resp_length: int
    resp_chunked: bool
    resp_upgrade: bytes | None
    resp_connection: set[bytes] | None
    interim: bool
    chunked_down: bool
    reusable: bool
    start_index: int
    attempts: int
    max_attempts: int
    replay_size: int
    last_up: float
    sent_at: float
    resp_hsts: bool

    def __init__(self, client: Any) -> None:
        self.client = client
        self.url = b""
        # Forwarded fields, flat: name, b": ", value, b"\r\n", name, ...
        self.headers: list[bytes] = []
        self.header_count = 0
        self.header_bytes = 0
        self.host: bytes | None = None
        self.forwarded_for: bytes | None = None
        # The client's X-Request-ID or a generated one; set once the head is read (b"" before).
        self.request_id = b""
        self.upgrade: bytes | None = None
        self.connection_names: set[bytes] | None = None
        self.content_length = -1
        self.chunked = False
        self.method = b""
        self.http10 = False
        self.keep_alive = True
        self.websocket = False
        self.head_done = False
        self.req_done = False
        self.upstream: Upstream | None = None
        self.pool: EndpointPool | None = None
        self.conn: UpstreamConnection | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.up_out: list[bytes] = []
        self.replay: list[bytes] | None = None
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
        self.user_agent: bytes | None = None
        self.accounted = False

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    # ------------------------------------------------------------------ request side

    def start(self, upstream: Upstream, head: list[bytes], *, retries: int) -> None:
        """Send ``head`` (plus any body already read) to the next endpoint of ``upstream``."""
        self.upstream = upstream
        if self.up_out:
            head.extend(self.up_out)
        self.up_out = head
        pools = upstream.pools
        count = len(pools)
        self.start_index = index = upstream.cursor
        upstream.cursor = index + 1 if index < 0x3FFFFFFF else 0
        self.attempts = 1
        self.max_attempts = min(retries, count) if retries > 1 else 1
        self.sent_at = _clock()
        pool = pools[index % count]
        conn = pool.acquire()
        if conn is not None:
            self.attach(conn, pool)
        else:
            self.dial(pool)

    def dial(self, pool: EndpointPool) -> None:
        self.client.block(BLOCK_CONNECT)
        self.connecting = asyncio.get_running_loop().create_task(self._connect(pool))

    async def _connect(self, pool: EndpointPool) -> None:
        """Dial ``pool``, then the following endpoints, until one accepts or attempts run out."""
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
                    pools = upstream.pools if upstream is not None else ()
                    if self.attempts >= self.max_attempts or not pools:
                        break
                    pool = pools[(self.start_index + self.attempts) % len(pools)]
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
        self.pool = pool
        self.parser = HttpResponseParser(self)
        self.down_out = []
        self.reason = b""
        self.resp_headers = []
        self.resp_length = -1
        self.resp_chunked = False
        self.resp_upgrade = None
        self.resp_connection = None
        self.interim = False
        self.chunked_down = False
        self.reusable = False
        self.resp_hsts = False
        self.last_up = self.client.server.now
        # Only a reused connection can turn out stale; only a replayable request is retried.
        if reused and self.method in IDEMPOTENT:
            self.replay = []
            self.replay_size = 0
        else:
            self.replay = None
        if conn.writing_paused:
            self.client.block(BLOCK_UPSTREAM)
        if self.client.write_paused:
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
        self.received += len(chunk)
        if self.chunked:
            self.up_out += (b"%x\r\n" % len(chunk), chunk, _CRLF)
        else:
            self.up_out.append(chunk)

    def request_complete(self) -> None:
        """The client's request message (head and body) has been fully read."""
        if self.finished:
            return
        self.req_done = True
        if self.chunked:
            self.up_out.append(_CHUNK_END)
        self.last_up = self.client.server.now

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

    def upstream_data(self, data: bytes) -> None:
        client = self.client
        if self.tunnel:
            client.transport.write(data)
            self.sent += len(data)
            self.last_up = client.server.now
            return
        self.last_up = client.server.now
        self.replay = None
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            self.down_out.append(data[exc.args[0] :])
            self._flush_down()
            self.tunnel = True
            client.start_tunnel(self)
            return
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _SkipBody):
                # A HEAD response ends with its head; only reuse the connection if nothing followed it.
                self.reusable = self.reusable and data.endswith(b"\r\n\r\n")
            elif isinstance(cause, _ExtraResponse):
                self.reusable = False
            elif isinstance(cause, UpstreamError):
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
            error = ProtocolError(f"invalid response from upstream: {exc}")
            error.__cause__ = exc
            self.fail(error)
            return
        if self.down_out:
            self._flush_down()
        if self.resp_done:
            self.response_finished()

    def _flush_down(self) -> None:
        out = self.down_out
        data = out[0] if len(out) == 1 else b"".join(out)
        self.sent += len(data)
        self.client.transport.write(data)
        out.clear()

    def upstream_eof(self) -> None:
        if self.tunnel:
            self.client.transport.close()
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
            self.client.transport.close()
            return
        if self.resp_done:
            self.response_finished()
        elif exc is None and self._close_delimited():
            self._end_close_delimited()
        elif self.replay is not None and self.pool is not None:
            # A keep-alive connection the upstream had already closed: nothing was answered,
            # the request is idempotent and still in hand, so send it again on a fresh connection.
            data = self.replay
            self.replay = None
            self.up_out[:0] = data
            self.retries += 1
            logger.debug(
                "request %s: reused upstream connection was closed, retrying", self.request_id.decode("latin-1")
            )
            self.dial(self.pool)
        else:
            error = UpstreamClosed("upstream closed the connection before the response was complete")
            error.__cause__ = exc
            self.fail(error)

    def _close_delimited(self) -> bool:
        return (
            self.resp_head_done
            and not self.resp_done
            and self.resp_length < 0
            and not self.resp_chunked
            and not self.finished
        )

    def _end_close_delimited(self) -> None:
        if self.chunked_down:
            self.client.transport.write(_CHUNK_END)
            self.sent += len(_CHUNK_END)
        self.resp_done = True
        self.reusable = False
        self.response_finished()

    def upstream_write_paused(self) -> None:
        self.last_up = self.client.server.now  # from now on the upstream must drain what we sent
        self.client.block(BLOCK_UPSTREAM)

    def upstream_write_resumed(self) -> None:
        self.last_up = self.client.server.now
        self.client.unblock(BLOCK_UPSTREAM)

    # httptools response parser callbacks

    def on_message_begin(self) -> None:
        if self.resp_done:
            raise _ExtraResponse()

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.resp_head_done:
            return  # trailer fields of a chunked body: dropped
        code = _response_cache.get(name)
        if code is None:
            code = h.response_class(name)
        if code == 0:  # h.KEEP
            self.resp_headers += (name, _SEP, value, _CRLF)
        elif code == h.CONTENT_LENGTH:
            self.resp_length = int(value)
            self.resp_headers += (name, _SEP, value, _CRLF)
        elif code == h.TRANSFER_ENCODING:
            if value.strip().lower() != b"chunked":
                raise ProtocolError(f"unsupported response Transfer-Encoding {value!r}")
            self.resp_chunked = True
        elif code == h.CONNECTION:
            names = h.named_by_connection(value)
            if names:
                self.resp_connection = names if self.resp_connection is None else self.resp_connection | names
        elif code == h.UPGRADE:
            self.resp_upgrade = value
        elif code == h.STRICT_TRANSPORT_SECURITY:
            self.resp_hsts = True
            self.resp_headers += (name, _SEP, value, _CRLF)

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        client = self.client
        fields = self.resp_headers
        if self.resp_connection:
            fields = h.drop_named(fields, self.resp_connection)
        if status < 200:
            self._interim(status, fields)
            return
        self.resp_head_done = True
        self.status = status
        self.upstream_time = _clock() - self.sent_at
        self.reusable = parser.should_keep_alive()
        out = self.down_out
        out += (status_prefix(status), self.reason, _CRLF)
        out += fields
        out += (b"X-Request-ID: ", self.request_id, _CRLF)
        listener = client.listener
        if listener is not None and listener.response_fields and not self.resp_hsts:
            out.append(listener.response_fields)  # Strict-Transport-Security on the HTTPS listener
        # An answer that starts before the request body is in leaves unread bytes on the
        # connection: say so now, or the client would send its next request into a close.
        keep_alive = self.keep_alive and self.req_done and not client.server.draining
        head_request = self.method == b"HEAD"
        if head_request or status == 204 or status == 304:
            if head_request and self.resp_chunked and not self.http10:
                out.append(b"Transfer-Encoding: chunked\r\n")
        elif self.resp_length >= 0:
            pass
        elif self.http10:
            keep_alive = False  # an HTTP/1.0 client reads an unknown length until the close
        else:
            out.append(b"Transfer-Encoding: chunked\r\n")
            self.chunked_down = True
        if not keep_alive:
            out.append(b"Connection: close\r\n\r\n")
        elif self.http10:
            out.append(b"Connection: keep-alive\r\n\r\n")
        else:
            out.append(_CRLF)
        self.keep_alive = keep_alive
        if head_request:
            self.resp_done = True
            raise _SkipBody()

    def _interim(self, status: int, fields: list[bytes]) -> None:
        if status == 101:
            if not self.websocket or self.resp_upgrade is None:
                raise ProtocolError("101 Switching Protocols to a request that did not ask for a WebSocket")
            self.resp_head_done = True
            self.status = 101
            self.upstream_time = _clock() - self.sent_at
            self.interim = True  # on_message_complete of the 101 is not the end of anything
            self.reusable = False
            out = self.down_out
            out += (status_prefix(101), self.reason, _CRLF)
            out += fields
            out += (b"Connection: Upgrade\r\nUpgrade: ", self.resp_upgrade, _CRLF)
            out += (b"X-Request-ID: ", self.request_id, b"\r\n\r\n")
            return
        # 100 Continue, 102, 103 Early Hints: relay to HTTP/1.1 clients, then wait for the final response.
        self.interim = True
        if not self.http10:
            out = self.down_out
            out += (status_prefix(status), self.reason, _CRLF)
            out += fields
            out.append(_CRLF)
        self.reason = b""
        self.resp_headers = []
        self.resp_length = -1
        self.resp_chunked = False
        self.resp_connection = None

    def on_body(self, chunk: bytes) -> None:
        if self.chunked_down:
            self.down_out += (b"%x\r\n" % len(chunk), chunk, _CRLF)
        else:
            self.down_out.append(chunk)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.tunnel or not self.resp_head_done:
            return
        if self.chunked_down:
            self.down_out.append(_CHUNK_END)
        self.resp_done = True

    # ------------------------------------------------------------------ endings

    def account(self) -> None:
        """Count the finished request once: its route's series, and the access log when on.

        Also drops the response parser, which refers back to this exchange: breaking that
        cycle here lets reference counting free every exchange at once, instead of leaving
        them to the cyclic garbage collector, whose full passes stall the loop.
        """
        if self.accounted:
            return
        self.accounted = True
        self.parser = None  # type: ignore[assignment]
        status = self.status
        if not status:
            if not self.head_done:
                return  # the connection closed before a request was complete: nothing to count
            status = 499  # nginx's "client closed request"
        client = self.client
        server = client.server
        duration = _clock() - self.started
        received = self.received + len(self.method) + len(self.url) + self.header_bytes + 14
        stats = self.route_stats or server.traffic.unmatched
        if server.route_metrics:
            stats.record(self.method, status, duration, self.upstream_time, received, self.sent, self.retries)
        access_log = server.access_log
        if access_log is not None:
            pool = self.pool
            address = None
            if pool is not None:
                address = pool.log_address
                if address is None:
                    address = pool.log_address = address_text(pool.endpoint.address, pool.endpoint.port)
            route = stats.log_fields
            if route is None:
                route = stats.log_fields = route_fields(stats.labels)
            access_log.add(_wall(), self.request_id, client.client_ip, self.method, self.host, self.url, self.http10,
                           status, received, self.sent, duration, self.upstream_time, address, route,
                           self.user_agent, self.retries)

    def response_finished(self) -> None:
        """The response is complete: give the connection back (or close it) and free the client."""
        if self.finished:
            return
        self.finished = True
        client = self.client
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.user = None
            if self.reusable and self.req_done and not self.up_out and self.pool is not None:
                self.pool.release(conn)
            else:
                conn.close()
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
        client = self.client
        if not self.resp_head_done:
            client.send_error(self, error.status, error)
        else:
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
        """Timeouts, called by the server's clock tick (no timer per request)."""
        if self.finished:
            return
        client = self.client
        server = client.server
        if client.write_paused:
            if now - client.write_paused_since > server.send_timeout:
                self.finished = True
                logger.warning(
                    "request %s: client did not read the response for %gs, closing",
                    self.request_id.decode("latin-1") or "-",
                    server.send_timeout,
                )
                if self.conn is not None:
                    self.conn.abort()
                    self.conn = None
                self.account()
                client.abort()
            return
        if self.tunnel:
            if now - max(self.last_up, client.last_read) > server.read_timeout:
                self.finished = True
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                client.transport.close()
            return
        conn = self.conn
        if conn is not None and (self.req_done or conn.writing_paused):
            # Waiting on the upstream: for its response, or for it to read the body we send
            # (nginx's proxy_read_timeout and proxy_send_timeout; one setting here).
            if not conn.reading_paused and now - self.last_up > server.read_timeout:
                if self.resp_head_done:
                    what = "response body progress"
                elif self.req_done:
                    what = "response headers"
                else:
                    what = "reading of the request body"
                self.fail(UpstreamTimeout(f"no {what} from upstream within {server.read_timeout:g}s"))
        elif self.head_done and not self.req_done and not client.blocked:
            if now - client.last_read > server.body_timeout:
                if self.resp_head_done:
                    self.fail(UpstreamError("client stopped sending the request body"))
                else:
                    client.client_timeout(self)


__all__ = ["Exchange", "BLOCK_CONNECT", "BLOCK_UPSTREAM", "BLOCK_PIPELINE", "BLOCK_UPGRADE"]
