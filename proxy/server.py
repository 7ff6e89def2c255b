"""The proxy's listeners and the client side of each connection.

``ClientConnection`` is an ``asyncio.Protocol`` driving an ``httptools`` request
parser: header callbacks classify fields once (kept, rewritten, hop-by-hop), and at
the end of the head the request is routed (one ``holder.current`` read, one table
match) and handed to an :class:`~proxy.http.exchange.Exchange` that forwards it.
The same protocol class serves plain TCP and TLS transports; the listener says which
scheme it is (``X-Forwarded-Proto``) and which port (``X-Forwarded-Port``).

Answers the proxy gives itself (nginx-like, each logged once at info for 4xx and
warning for 5xx, with the request id that is also in the body and X-Request-ID):

* 400 malformed request line or header, NUL bytes, Content-Length with
  Transfer-Encoding, duplicate or invalid Content-Length, a Transfer-Encoding other
  than ``chunked``, duplicate Host, missing Host on HTTP/1.1, a path that climbs
  above ``/`` or carries a broken escape; the connection is closed.
* 414 request line (URI) longer than ``max_request_line`` (as nginx); 431 header
  fields over ``max_header_bytes`` in total or more than ``max_headers`` (RFC 6585,
  where nginx says 400 "Request Header Or Cookie Too Large"); connection closed.
* 405 CONNECT; 505 an HTTP version other than 1.0/1.1; connection closed.
* 408 headers not complete within ``client_header_timeout`` of their first byte, or
  a request body stalled that long; connection closed. An idle keep-alive
  connection is closed silently after ``client_keepalive_timeout`` (and a new
  connection that sends nothing, after ``client_header_timeout``).
* 404 no route, 503 no configuration / unknown cluster / no endpoints, 502 connect
  failures and broken upstream responses, 504 upstream read timeout: the client
  connection stays open when the request was fully read.

Timeouts are checked by one clock tick per server that walks the open connections
(nginx's cached-time idea), so no timer is created or cancelled per request.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections import deque
from random import Random, SystemRandom
from typing import Any, Callable, Iterator

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from proxy.http import headers as h
from proxy.http.exchange import (
    BLOCK_CONNECT,
    BLOCK_PIPELINE,
    BLOCK_UPGRADE,
    BLOCK_UPSTREAM,
    Exchange,
)
from proxy.http.responses import error_response
from proxy.routing.paths import normalize_path
from proxy.routing.table import normalize_host
from proxy.accesslog import AccessLog
from proxy.runtime import Runtime, RuntimeHolder
from proxy.settings import Settings
from proxy.stats import RouteLabels, RouteStats, TrafficStats, route_labels
from proxy.tls.handshake import HandshakeStats, TlsAcceptor, tls_protocol_factory
from proxy.upstream.errors import BadRequest, NoEndpoints

logger = logging.getLogger("pyngress.proxy")

# Connection states, as seen by the clock tick.
IDLE = 0  # between requests (or before the first): idle timeout
HEAD = 1  # reading a request head: header timeout from its first byte
BUSY = 2  # a request is being answered: the exchange's timeouts
LINGER = 3  # answered with an error, discarding what the client still sends before closing

# After an error answer with an unread request body, keep reading (and discarding) this
# long so the client sees our response instead of a reset (nginx: lingering_timeout 5s).
LINGER_SECONDS = 2.0

# Seconds between a publish and the GC freeze that follows it (see ProxyServer._freeze).
FREEZE_DELAY = 1.0

_SEP = b": "
_CRLF = b"\r\n"

_request_cache = h.request_cache
# Host header bytes -> normalized host; bounded so random Host values cannot grow memory.
_host_names: dict[bytes, str] = {}
_HOST_CACHE_LIMIT = 4096


# HTTP-01 challenges must stay reachable over plain HTTP (ACME clients do not follow to HTTPS first).
_ACME_CHALLENGE = "/.well-known/acme-challenge/"


# Request ids need to be unique, not secret: a generator seeded once from the OS per process
# (no getrandom syscall per request), 128 bits, like ingress-nginx's $req_id.
_ids = Random(SystemRandom().getrandbits(128))
_id_bits = _ids.getrandbits


def new_request_id() -> bytes:
    """32 hex digits, like ingress-nginx's $req_id."""
    return b"%032x" % _id_bits(128)


class Listener:
    """One bound socket: its scheme and port go into X-Forwarded-Proto/Port; it counts its connections."""

    __slots__ = ("scheme", "port", "tls", "forwarded", "server", "active_connections", "total_connections",
                 "response_fields", "certificates", "handshakes", "acceptor")

    def __init__(self, scheme: str, port: int, server: asyncio.AbstractServer | None) -> None:
        self.scheme = scheme
        self.port = port
        self.tls = scheme == "https"
        self.forwarded = b"X-Forwarded-Proto: %s\r\nX-Forwarded-Port: %d\r\n" % (scheme.encode(), port)
        self.server = server
        # Fields added to every proxied response (HSTS on HTTPS), and the CertStoreHolder whose
        # certificates the HTTPS listener serves (for the domain-fronting check).
        self.response_fields = b""
        self.certificates: Any = None
        # Per-listener counters for metrics (the server keeps the totals over all listeners).
        self.active_connections = 0
        self.total_connections = 0
        # HTTPS: the acceptor that terminates TLS and counts handshakes (completed, failed by reason).
        self.acceptor: TlsAcceptor | None = None
        self.handshakes: HandshakeStats | None = None


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests, routes them, and runs their exchanges in order."""

    __slots__ = (
        "server",
        "listener",
        "transport",
        "parser",
        "client_ip",
        "forwarded",
        "forwarded_ip_end",
        "request",
        "active",
        "queue",
        "upgrading",
        "tunnel",
        "deferred",
        "blocked",
        "state",
        "since",
        "idle_limit",
        "last_read",
        "head_bytes",
        "write_paused",
        "write_paused_since",
        "closing",
        "closed",
        "eof",
        "server_name",
    )

    def __init__(self, server: ProxyServer, listener: Listener | None) -> None:
        self.server = server
        self.listener = listener
        self.transport: Any = None
        self.parser = HttpRequestParser(self)
        self.client_ip = b""
        self.forwarded = b""
        self.forwarded_ip_end = 0
        # The exchange whose request is being parsed, and the one being answered.
        self.request: Exchange | None = None
        self.active: Exchange | None = None
        self.queue: deque[Exchange] | None = None
        self.upgrading: Exchange | None = None
        self.tunnel: Exchange | None = None
        self.deferred: BadRequest | None = None
        self.blocked = 0
        self.state = IDLE
        self.since = server.now
        self.idle_limit = server.header_timeout
        self.last_read = server.now
        self.head_bytes = 0
        self.write_paused = False
        self.write_paused_since = 0.0
        # Set once the parser must not be fed again (after an error or an upgrade).
        self.closing = False
        self.closed = False
        self.eof = False
        self.server_name: str | None = None  # the TLS SNI, recorded by the certificate store's callback

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) and peer else ""
        self.client_ip = client_ip = ip.encode("ascii", "replace")
        # The forwarded fields that depend only on the connection, built once: X-Forwarded-For (when
        # the client sent none), X-Forwarded-Proto/Port, X-Real-IP.
        xff = b"X-Forwarded-For: " + client_ip
        self.forwarded_ip_end = len(xff)
        listener = self.listener
        if listener is not None and listener.tls:
            self.server_name = getattr(transport.get_extra_info("ssl_object"), "pyngress_server_name", None)
        self.forwarded = b"".join(
            (xff, _CRLF, listener.forwarded if listener is not None else b"", b"X-Real-IP: ", client_ip, _CRLF)
        )
        self.server.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        self.last_read = self.server.now
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.tunnel_to_upstream(data)
            return
        if self.closing:
            return
        self._feed(data)
        if self.request is not None and not self.closing and not self.request.head_done:
            # httptools buffers an unfinished header field internally: bound the bytes of one head.
            self.head_bytes += len(data)
            if self.head_bytes > self.server.max_head_bytes:
                self.reject(BadRequest("request head too large", status=431))
        ex = self.active
        if ex is not None and ex.up_out and ex.conn is not None:
            ex.flush_upstream()

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            self._upgraded(data[exc.args[0] :])
        except HttpParserCallbackError as exc:
            self.reject(self._callback_error(exc.__context__))
        except HttpParserError as exc:
            # Built in a helper: a local here would hold the error whose traceback holds this
            # frame, a reference cycle (and this connection in it) for every malformed request.
            self.reject(_chained(BadRequest(f"malformed request: {exc}"), exc))

    def _callback_error(self, cause: BaseException | None) -> BadRequest:
        if isinstance(cause, BadRequest):
            return cause
        logger.error("error handling a request from %s", self.client_ip.decode(), exc_info=cause)
        return _chained(BadRequest("internal error", status=500), cause)

    def eof_received(self) -> bool:
        if self.tunnel is not None or self.state == LINGER or (self.listener is not None and self.listener.tls):
            return False
        if self.active is None or self.request is not None:
            return False  # idle, or in the middle of a request that can now never complete
        self.eof = True  # half-close after a complete request: answer it, then close
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connection_closed(self)
        ex = self.active
        if ex is not None:
            self.active = None
            ex.client_lost()
        tunnel = self.tunnel
        if tunnel is not None and tunnel is not ex:
            tunnel.client_lost()
        # The parser holds our bound methods, and exchanges point back at us: drop those links so
        # reference counting frees the connection at once (nothing here is left for the cyclic GC,
        # which matters because objects alive at a publish are frozen out of its reach).
        self.parser = None  # type: ignore[assignment]
        self.request = self.upgrading = self.tunnel = None
        self.queue = None

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_paused_since = self.server.now
        ex = self.active
        if ex is not None and ex.conn is not None:
            ex.conn.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.active
        if ex is not None and ex.conn is not None:
            ex.conn.resume_reading()

    # ------------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        ex = Exchange(self)
        self.request = ex
        self.head_bytes = 0
        if self.active is None:
            self.active = ex
            self.state = HEAD
            self.since = self.server.now
        else:
            queue = self.queue
            if queue is None:
                queue = self.queue = deque()
            queue.append(ex)
            self.block(BLOCK_PIPELINE)

    def on_url(self, url: bytes) -> None:
        ex = self.request
        assert ex is not None
        if ex.url:
            url = ex.url + url
        if len(url) > self.server.max_request_line:
            raise BadRequest("request line too long", status=414)
        ex.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.request
        assert ex is not None
        if ex.head_done:
            return  # trailer fields of a chunked body: dropped
        server = self.server
        count = ex.header_count = ex.header_count + 1
        size = ex.header_bytes = ex.header_bytes + len(name) + len(value) + 4
        if count > server.max_headers:
            raise BadRequest(f"more than {server.max_headers} header fields", status=431)
        if size > server.max_header_bytes:
            raise BadRequest(f"header fields over {server.max_header_bytes} bytes", status=431)
        code = _request_cache.get(name)
        if code is None:
            code = h.request_class(name)
        if code == 0:  # h.KEEP
            ex.headers += (name, _SEP, value, _CRLF)
        elif code == h.HOST:
            if ex.host is not None:
                raise BadRequest("duplicate Host header")
            ex.host = value
            ex.headers += (name, _SEP, value, _CRLF)
        elif code == h.CONTENT_LENGTH:
            ex.content_length = int(value)
            ex.headers += (name, _SEP, value, _CRLF)
        elif code == h.TRANSFER_ENCODING:
            if ex.chunked or value.strip().lower() != b"chunked":
                raise BadRequest(f"unsupported Transfer-Encoding {value!r}")
            ex.chunked = True
        elif code == h.CONNECTION:
            names = h.named_by_connection(value)
            if names:
                ex.connection_names = names if ex.connection_names is None else ex.connection_names | names
        elif code == h.UPGRADE:
            ex.upgrade = value
        elif code == h.FORWARDED_FOR:
            ex.forwarded_for = value if ex.forwarded_for is None else ex.forwarded_for + b", " + value
        elif code == h.REQUEST_ID:
            if 0 < len(value) <= 200:
                ex.request_id = value
        elif code == h.USER_AGENT:
            ex.user_agent = value
            ex.headers += (name, _SEP, value, _CRLF)
        # HOP_BY_HOP and OURS: dropped

    def on_headers_complete(self) -> None:
        ex = self.request
        assert ex is not None
        ex.head_done = True
        parser = self.parser
        ex.method = method = parser.get_method()
        version = parser.get_http_version()
        if version != "1.1":
            if version != "1.0":
                raise BadRequest(f"HTTP/{version} is not supported", status=505)
            ex.http10 = True
        ex.keep_alive = parser.should_keep_alive()
        if method == b"CONNECT":
            raise BadRequest("CONNECT is not supported", status=405)
        if parser.should_upgrade():
            # After an upgrade request the parser stops: this connection serves no further request.
            ex.keep_alive = False
            self.upgrading = ex
            upgrade = ex.upgrade
            if upgrade is not None and method == b"GET" and not ex.has_body and h.has_token(upgrade, b"websocket"):
                ex.websocket = True
        if ex.host is None and not ex.http10 and ex.url[:1] == b"/":
            raise BadRequest("missing Host header")
        if not ex.request_id:
            ex.request_id = new_request_id()
        self.server.total_requests += 1
        if self.active is ex:
            self.state = BUSY
            self.dispatch(ex)

    def on_body(self, chunk: bytes) -> None:
        ex = self.request
        assert ex is not None
        ex.add_body(chunk)

    def on_message_complete(self) -> None:
        ex = self.request
        assert ex is not None
        if ex is self.upgrading and not ex.websocket and ex.has_body:
            return  # the body of an upgrade request follows: see _upgraded
        self.request = None
        ex.request_complete()

    # ------------------------------------------------------------------ routing

    def dispatch(self, ex: Exchange) -> None:
        """Route a complete request head and start forwarding it."""
        server = self.server
        runtime = server.holder.current
        if runtime is None:
            self.send_error(ex, 503, NoEndpoints("no configuration loaded yet"), detail="no configuration loaded yet")
            return
        url = ex.url
        host = ex.host
        fields = ex.headers
        if url[:1] != b"/":
            absolute = _split_absolute(url)
            if absolute is None:
                self.send_error(ex, 400, BadRequest(f"invalid request target {url[:100]!r}"), close=True)
                return
            host, url = absolute
            fields = h.drop_field(fields, b"host")
            fields += (b"Host", _SEP, host, _CRLF)
        fragment = url.find(b"#")
        if fragment >= 0:
            url = url[:fragment]
        query = url.find(b"?")
        raw_path = url if query < 0 else url[:query]
        path = raw_path.decode("latin-1")
        normalized = normalize_path(path)
        if normalized is None:
            self.send_error(ex, 400, BadRequest(f"invalid path {path[:100]!r}"), close=True)
            return
        if host is None:
            host = b""
        host_name = _host_names.get(host)
        if host_name is None:
            host_name = normalize_host(host.decode("latin-1"))
            if len(_host_names) < _HOST_CACHE_LIMIT:
                _host_names[host] = host_name
        listener = self.listener
        tls = listener is not None and listener.tls
        if tls:
            server_name = self.server_name
            if server_name is not None and server_name != host_name and listener.certificates is not None:
                # Domain fronting: Host may differ from the SNI only when one certificate serves both.
                store = listener.certificates.current
                if store.select(host_name) is not store.select(server_name):
                    self.send_error(ex, 421, None, detail=f"host {host_name} is not served on this TLS connection")
                    return
        route = runtime.config.table.match(host_name, normalized)
        if route is None:
            self.send_error(ex, 404, None)
            return
        ex.route_stats = server.route_stats.get(id(route))
        if route.ssl_redirect and not tls and host_name and not path.startswith(_ACME_CHALLENGE):
            settings = server.settings
            port = settings.publish_https_port or server.https_port or settings.https_port
            location = b"https://" + host_name.encode("latin-1") + (b"" if port == 443 else b":%d" % port) + url
            self.send_error(ex, 308, None, location=location)
            return
        upstream = runtime.upstreams.get(route.cluster)
        if upstream is None or not upstream.pools:
            what = "unknown cluster" if upstream is None else "no ready endpoints for"
            self.send_error(ex, 503, NoEndpoints(f"{what} {route.cluster}"))
            return
        if normalized != path:
            url = normalized.encode("latin-1") + (url[query:] if query >= 0 else b"")
        if ex.connection_names:
            fields = h.drop_named(fields, ex.connection_names)
        forwarded_for = ex.forwarded_for
        if forwarded_for is None:
            forwarded = self.forwarded
        else:
            rest = self.forwarded[self.forwarded_ip_end :]  # CRLF, Proto/Port, X-Real-IP
            forwarded = b"X-Forwarded-For: " + forwarded_for + b", " + self.client_ip + rest
        head = [ex.method, b" ", url, b" HTTP/1.1\r\n"]
        head += fields
        if ex.host is None and fields is ex.headers:
            # HTTP/1.0 without Host: HTTP/1.1 upstreams require one (nginx sends its upstream's name);
            # the Service's cluster DNS name is what a pod would be called by in the cluster.
            head += (b"Host: ", upstream.host_name, _CRLF)
        if ex.chunked:
            end = b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        elif ex.websocket:
            end = b"\r\nConnection: Upgrade\r\nUpgrade: " + (ex.upgrade or b"websocket") + b"\r\n\r\n"
        else:
            end = b"\r\n\r\n"
        head += (forwarded, b"X-Forwarded-Host: ", host, b"\r\nX-Request-ID: ", ex.request_id, end)
        ex.start(upstream, head, retries=server.retries)

    def _upgraded(self, rest: bytes) -> None:
        """The parser stopped after an upgrade request; ``rest`` is what followed its head."""
        ex = self.upgrading
        self.closing = True
        if ex is None or ex.finished:
            return
        if ex.websocket:
            if rest:
                ex.up_out.append(rest)
            self.block(BLOCK_UPGRADE)
            return
        # Not a WebSocket (h2c, ...): it is served as a plain request without Upgrade. The
        # parser skipped its body, so a fresh parser reads it, primed with a matching head.
        if ex.has_body:
            self.closing = False
            self.parser = HttpRequestParser(_BodyContinuation(self, ex))
            framing = b"Transfer-Encoding: chunked" if ex.chunked else b"Content-Length: %d" % ex.content_length
            self.parser.feed_data(b"POST / HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n")
            if rest:
                self._feed(rest)

    def start_tunnel(self, ex: Exchange) -> None:
        """The upstream accepted the WebSocket upgrade: from now on bytes flow unparsed."""
        self.tunnel = ex
        self.closing = True
        ex.flush_upstream()
        self.unblock(BLOCK_UPGRADE)

    # ------------------------------------------------------------------ endings

    def send_error(
        self,
        ex: Exchange | None,
        status: int,
        cause: BaseException | None,
        *,
        detail: str = "",
        close: bool = False,
        location: bytes = b"",
    ) -> None:
        """Write the proxy's own answer, log it once, and continue or close the connection."""
        server = self.server
        if ex is None:
            request_id = new_request_id()
            keep_alive = False
            http10 = head_only = False
        else:
            if not ex.request_id:
                ex.request_id = new_request_id()
            request_id = ex.request_id
            ex.finished = True
            keep_alive = (
                not close
                and ex.keep_alive
                and ex.head_done
                and (ex.req_done or not ex.has_body)
                and not server.draining
            )
            http10 = ex.http10
            head_only = ex.method == b"HEAD"
            ex.status = status
        level = logging.WARNING if status >= 500 else logging.DEBUG
        if logger.isEnabledFor(level):
            _log_error(level, status, ex, request_id, self.client_ip, cause)
        if not self.closed:
            answer = error_response(
                status, request_id, close=not keep_alive, http10=http10, detail=detail, head_only=head_only,
                location=location, fields=self.listener.response_fields if self.listener is not None else b"",
            )
            self.transport.write(answer)
            if ex is not None:
                ex.sent += len(answer)
            elif server.route_metrics:  # a request rejected before it had an exchange (queued behind another)
                server.traffic.unmatched.record(b"", status, 0.0, -1.0, 0, len(answer), 0)
        if ex is not None:
            self.exchange_finished(ex, keep_alive)
        else:
            self._close(None)

    def reject(self, error: BadRequest) -> None:
        """Answer malformed or over-limit input and close; earlier pipelined requests finish first."""
        ex = self.request
        self.closing = True
        if ex is not None and self.active is not None and ex is not self.active:
            queue = self.queue
            if queue is not None and ex in queue:
                queue.remove(ex)
            self.deferred = error
            self.block(BLOCK_PIPELINE)
            return
        if ex is not None and ex.upstream is not None and not ex.finished:
            ex.abandon()
            if ex.resp_head_done:
                ex.finished = True
                _log_error(logging.DEBUG, error.status, ex, ex.request_id or b"-", self.client_ip, error)
                ex.account()
                self.active = None
                self.transport.close()
                return
        self.send_error(ex, error.status, error, close=True)

    def client_timeout(self, ex: Exchange) -> None:
        """The client stalled in the middle of its request body."""
        ex.abandon()
        self.send_error(ex, 408, BadRequest("timed out reading the request body", status=408), close=True)

    def exchange_finished(self, ex: Exchange, keep_alive: bool) -> None:
        """``ex`` is answered: start the next pipelined request, wait for one, or close."""
        ex.account()
        if self.active is ex:
            self.active = None
        if self.blocked & (BLOCK_CONNECT | BLOCK_UPSTREAM):
            self.unblock(BLOCK_CONNECT | BLOCK_UPSTREAM)
        if self.closed:
            return
        server = self.server
        if not keep_alive or server.draining or self.eof:
            self._close(ex)
            return
        queue = self.queue
        if queue:
            nxt = queue.popleft()
            self.active = nxt
            if not queue and self.deferred is None:
                self.unblock(BLOCK_PIPELINE)
            if nxt.head_done:
                self.state = BUSY
                self.dispatch(nxt)
                if nxt.conn is not None and nxt.up_out:
                    nxt.flush_upstream()
            else:
                self.state = HEAD
                self.since = server.now
            return
        if self.deferred is not None:
            error = self.deferred
            self.deferred = None
            self.send_error(None, error.status, error)
            return
        self.state = IDLE
        self.since = server.now
        self.idle_limit = server.keepalive_timeout
        if self.blocked & BLOCK_PIPELINE:
            self.unblock(BLOCK_PIPELINE)

    def _close(self, ex: Exchange | None) -> None:
        """Close after the last answer; linger first if the client may still be sending.

        Closing a socket with unread input makes the kernel send a reset, which can destroy
        our answer before the client reads it; so half-close, discard input briefly, then close.
        """
        if self.closed:
            return
        self.active = None
        request = self.request
        unread = request is not None and not request.req_done and not (request.head_done and not request.has_body)
        transport = self.transport
        if unread and not self.eof and transport.can_write_eof():
            self.closing = True
            self.state = LINGER
            self.since = self.server.now
            if self.blocked:
                self.blocked = 0
                transport.resume_reading()
            transport.write_eof()
        else:
            transport.close()

    def cut(self) -> None:
        """End a response that cannot be completed: the client sees a truncated message."""
        self.active = None
        self.transport.close()

    def abort(self) -> None:
        self.active = None
        self.transport.abort()

    def close_idle(self) -> bool:
        """Close the connection if no request is in progress (used by drain)."""
        if self.state == IDLE and self.active is None and not self.closed:
            self.transport.close()
            return True
        return False

    # ------------------------------------------------------------------ flow control and clock

    def block(self, bit: int) -> None:
        if not self.blocked and not self.closed:
            self.transport.pause_reading()
        self.blocked |= bit

    def unblock(self, bit: int) -> None:
        if self.blocked & bit:
            self.blocked &= ~bit
            if not self.blocked and not self.closed and not self.transport.is_closing():
                self.transport.resume_reading()

    def check(self, now: float) -> None:
        state = self.state
        if state == BUSY:
            ex = self.active
            if ex is not None:
                ex.check(now)
        elif state == IDLE:
            if now - self.since > self.idle_limit:
                self.transport.close()
        elif state == HEAD:
            if now - self.since > self.server.header_timeout:
                error = BadRequest("timed out reading the request head", status=408)
                self.closing = True
                self.send_error(self.request, 408, error, close=True)
        elif state == LINGER:
            if now - self.since > LINGER_SECONDS:
                self.transport.close()


class _BodyContinuation:
    """Parser callbacks that deliver the body of a non-WebSocket upgrade request to its exchange."""

    __slots__ = ("client", "exchange")

    def __init__(self, client: ClientConnection, exchange: Exchange) -> None:
        self.client = client
        self.exchange = exchange

    def on_body(self, chunk: bytes) -> None:
        self.exchange.add_body(chunk)

    def on_message_complete(self) -> None:
        client = self.client
        client.request = None
        client.closing = True
        self.exchange.request_complete()


def _chained(error: BadRequest, cause: BaseException | None) -> BadRequest:
    error.__cause__ = cause
    return error


def _split_absolute(url: bytes) -> tuple[bytes, bytes] | None:
    """(authority, origin-form path) of an absolute-form request target, or None."""
    scheme = url[:8].lower()
    if scheme.startswith(b"http://"):
        rest = url[7:]
    elif scheme.startswith(b"https://"):
        rest = url[8:]
    else:
        return None
    end = len(rest)
    for separator in (b"/", b"?", b"#"):
        index = rest.find(separator)
        if 0 <= index < end:
            end = index
    authority = rest[:end].rpartition(b"@")[2]
    if not authority:
        return None
    path = rest[end:]
    if not path.startswith(b"/"):
        path = b"/" + path
    return authority, path


def _log_error(
    level: int, status: int, ex: Exchange | None, request_id: bytes, client_ip: bytes, cause: BaseException | None
) -> None:
    method = ex.method.decode("latin-1") if ex is not None and ex.method else "-"
    target = ex.url[:200].decode("latin-1") if ex is not None and ex.url else "-"
    host = ex.host.decode("latin-1") if ex is not None and ex.host else "-"
    reason = ""
    if cause is not None:
        reason = f": {type(cause).__name__}: {cause}"
        inner = cause.__cause__
        if inner is not None:
            reason += f" ({type(inner).__name__}: {inner})"
    logger.log(
        level,
        "%d for %s %s host=%s client=%s request_id=%s%s",
        status,
        method,
        target,
        host,
        client_ip.decode("latin-1"),
        request_id.decode("latin-1"),
        reason,
    )


class ProxyServer:
    """HTTP (and later HTTPS) listeners in front of the running configuration in ``holder``."""

    def __init__(self, *, settings: Settings, holder: RuntimeHolder, freeze_gc: bool = False) -> None:
        self.settings = settings
        # Freeze every live object out of the cyclic GC's reach at each publish (the process's
        # choice: the CLI turns it on; a test process sharing the interpreter leaves it off).
        self.freeze_gc = freeze_gc
        self._freezing: asyncio.TimerHandle | None = None
        self._frozen = False
        self.route_metrics = settings.route_metrics
        self.holder = holder
        # Limits and timeouts copied to plain attributes: the hot path reads them per request.
        self.max_request_line = settings.max_request_line
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        # Raw bytes one unfinished head may take (httptools buffers a partial field), plus one read.
        self.max_head_bytes = settings.max_request_line + settings.max_header_bytes + 256 * 1024
        self.header_timeout = settings.client_header_timeout
        self.keepalive_timeout = settings.client_keepalive_timeout
        # nginx client_body_timeout and send_timeout.
        self.body_timeout = settings.client_body_timeout
        self.send_timeout = settings.client_send_timeout
        self.read_timeout = settings.upstream_read_timeout
        self.retries = max(1, settings.upstream_retries)
        # The clock tick: a tenth of the shortest timeout, between 10 ms and 1 s.
        shortest = min(self.header_timeout, self.keepalive_timeout, self.body_timeout, self.send_timeout,
                       self.read_timeout)
        self.tick = min(1.0, max(0.01, shortest / 10))
        self.now = 0.0
        self.draining = False
        self.connections: set[ClientConnection] = set()
        self.active_connections = 0
        self.total_connections = 0
        self.total_requests = 0
        self.http_port = 0
        self.https_port = 0
        self.listeners: list[Listener] = []
        # Per-route counts (bound to routes when a runtime is published) and connection counts per listener.
        self.traffic = TrafficStats()
        self.traffic.listeners = self.listeners
        # id(route) -> its RouteStats, for the running table (rebound on each publish).
        self.route_stats: dict[int, RouteStats] = {}
        holder.subscribe(self._runtime_published)
        if holder.current is not None:
            self._runtime_published(holder.current)
        # Created when the first listener starts (a thread), closed (flushed) by close().
        self.access_log: AccessLog | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._all_closed: asyncio.Event | None = None

    def _runtime_published(self, runtime: Runtime) -> None:
        """Bind per-route counters to the routes of a new table (series of vanished routes go)."""
        clusters = runtime.config.clusters
        # The builder shares unchanged Route objects between tables; the previous table is still
        # alive here, so an id found in the previous binding is that very route: reuse its labels.
        previous = self.route_stats

        def labelled() -> Iterator[tuple[int, RouteLabels]]:
            for route in runtime.config.table.routes():
                key = id(route)
                known = previous.get(key)
                yield key, known.labels if known is not None else route_labels(route, clusters)

        self.route_stats = self.traffic.bind(labelled())
        if self.freeze_gc:
            if not self._frozen:
                self._freeze()  # the first table, before any traffic
            elif self._freezing is None:
                # After the new table is live, and once for a burst of publishes: collecting the young
                # generations walks the new table's objects (~20 ms for 10,000 routes).
                self._freezing = asyncio.get_running_loop().call_later(FREEZE_DELAY, self._freeze)

    def _freeze(self) -> None:
        """Move every live object out of the cyclic GC's reach.

        A full collection walks every tracked object: with the modules, the route table and the
        open connections that took 40-100 ms, a stall every few seconds under load (measured).
        Frozen objects are skipped by the collector but still freed by reference counting, and
        nothing the proxy keeps per request or per connection is cyclic (see
        ClientConnection.connection_lost and Exchange.account). What a freeze does cost: cyclic
        garbage not yet collected at that moment is never collected, so the young generations are
        collected first; the first freeze collects everything.
        """
        self._freezing = None
        # (A flag, not gc.get_freeze_count(): that walks every frozen object, ~20 ms with a large table.)
        gc.collect(1 if self._frozen else 2)
        gc.freeze()
        self._frozen = True

    async def start(self) -> None:
        """Bind the HTTP listener on settings.bind:settings.http_port (0 = any free port)."""
        listener = await self._listen("http", self.settings.http_port, None)
        self.http_port = listener.port

    async def start_https(
        self,
        ssl_context: ssl.SSLContext,
        *,
        port: int | None = None,
        handshake_timeout: float | None = None,
        certificates: Any = None,
    ) -> None:
        """Bind an HTTPS listener (settings.https_port unless ``port``) serving the same routes.

        ``certificates``: the CertStoreHolder behind ``ssl_context``; with it, a request whose Host
        is served by another certificate than its SNI gets 421 (no domain fronting).
        """
        listener = await self._listen(
            "https",
            self.settings.https_port if port is None else port,
            ssl_context,
            handshake_timeout=handshake_timeout or self.header_timeout,
        )
        listener.certificates = certificates
        settings = self.settings
        if settings.hsts:
            value = b"max-age=%d" % settings.hsts_max_age
            if settings.hsts_include_subdomains:
                value += b"; includeSubDomains"
            if settings.hsts_preload:
                value += b"; preload"
            listener.response_fields = b"Strict-Transport-Security: " + value + b"\r\n"
        self.https_port = listener.port

    async def _listen(
        self, scheme: str, port: int, ssl_context: ssl.SSLContext | None, *, handshake_timeout: float | None = None
    ) -> Listener:
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        if self.settings.access_log and self.access_log is None:
            self.access_log = AccessLog()
        holder: list[Listener] = []

        def connection() -> ClientConnection:
            return ClientConnection(self, holder[0])

        factory: Callable[[], asyncio.BaseProtocol] = connection
        acceptor: TlsAcceptor | None = None
        if ssl_context is not None:
            # TLS is terminated by the acceptor rather than create_server(ssl=...): the same SSL
            # protocol and cost per request, but failed handshakes are seen (and counted).
            acceptor = tls_protocol_factory(connection, ssl_context,
                                            handshake_timeout=handshake_timeout or self.header_timeout,
                                            stats=HandshakeStats())
            factory = acceptor
        server = await loop.create_server(
            factory,
            self.settings.bind,
            port,
            reuse_address=True,
            # Worker processes each bind the same port; the kernel spreads connections among them.
            reuse_port=self.settings.workers > 1 or None,
            backlog=1024,
        )
        bound = server.sockets[0].getsockname()[1]
        listener = Listener(scheme, bound, server)
        if acceptor is not None:
            listener.acceptor, listener.handshakes = acceptor, acceptor.stats
        holder.append(listener)
        self.listeners.append(listener)
        if self._ticker is None:
            self._ticker = loop.call_later(self.tick, self._on_tick)
        return listener

    def _on_tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = self.now = loop.time()
        for conn in list(self.connections):
            try:
                conn.check(now)
            except Exception:  # never let one connection stop the clock
                logger.exception("error checking connection timeouts")
        self._ticker = loop.call_later(self.tick, self._on_tick)

    def connection_opened(self, conn: ClientConnection) -> None:
        self.connections.add(conn)
        self.active_connections += 1
        self.total_connections += 1
        listener = conn.listener
        if listener is not None:
            listener.active_connections += 1
            listener.total_connections += 1
        if self.draining:
            conn.transport.close()

    def connection_closed(self, conn: ClientConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.active_connections -= 1
            if conn.listener is not None:
                conn.listener.active_connections -= 1
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections are untouched."""
        for listener in self.listeners:
            if listener.server is not None:
                listener.server.close()

    async def drain(self, timeout: float) -> bool:
        """Close idle connections now, let in-flight requests finish (then close), up to ``timeout``.

        Responses still to start carry ``Connection: close``. True if every connection closed in time.
        """
        self.draining = True
        self.stop_accepting()
        for conn in list(self.connections):
            conn.close_idle()
        if not self.connections:
            return True
        self._all_closed = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._all_closed.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop everything now: listeners, the clock, and every connection (aborted)."""
        self.draining = True
        self.stop_accepting()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._freezing is not None:
            self._freezing.cancel()
            self._freezing = None
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for listener in self.listeners:
            if listener.acceptor is not None:
                listener.acceptor.abort()  # handshakes still in progress
        if self.access_log is not None:
            self.access_log.close()
        for listener in self.listeners:
            if listener.server is None:
                continue
            try:
                async with asyncio.timeout(5):
                    await listener.server.wait_closed()
            except TimeoutError:
                pass
        await asyncio.sleep(0)
