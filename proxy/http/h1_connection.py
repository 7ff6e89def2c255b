# cython: annotation_typing=False
"""The HTTP/1.1 client side: one asyncio protocol per client connection.

``ClientConnection`` drives an ``httptools`` request parser: header callbacks classify
fields once (kept, rewritten, hop-by-hop) into a protocol-neutral `RequestHead`; at the
end of the head the listener's `Pipeline` routes it and answers or starts an `Exchange`.
Responses go out through the connection's `H1Writer`. The same class serves plain TCP
and TLS transports; the listener says which scheme it is (``X-Forwarded-Proto``) and which
port (``X-Forwarded-Port``).

The proxy's own answers (404, 503, 400...) are listed in proxy/http/responses.py.

Timeouts are checked by the server's clock tick, which walks the open connections
(nginx's cached-time idea), so no timer is created or cancelled per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from proxy.http import downstream as _downstream
from proxy.http import headers as h
from proxy.http.downstream import BLOCK_CONNECT, BLOCK_PIPELINE, BLOCK_UPGRADE, BLOCK_UPSTREAM, Downstream
from proxy.http.exchange import Exchange
from proxy.http.h1_writer import H1Writer
from proxy.http.head import RequestHead
from proxy.http.ids import POOL_END as _IDS_END
from proxy.http.ids import REQUEST_ID as _REQUEST_ID
from proxy.http.ids import STEP as _IDS_STEP
from proxy.http.ids import ids as _ids
from proxy.http.request_fields import add_field
from proxy.http.responses import REASONS, grpc_answered, grpc_request, log_answer, new_request_id
from proxy.routing.request import ClientCertificate
from proxy.tls.client_auth import client_certificate
from proxy.upstream.errors import BadRequest

if TYPE_CHECKING:
    from proxy.http.listener import Listener
    from proxy.http.pipeline import Pipeline
    from proxy.server import ProxyServer

logger = logging.getLogger("pyngress.proxy")

# Connection states, as seen by the clock tick.
IDLE = 0  # between requests (or before the first): idle timeout
HEAD = 1  # reading a request head: header timeout from its first byte
BUSY = 2  # a request is being answered: the exchange's timeouts
LINGER = 3  # answered with an error, discarding what the client still sends before closing

# After an error answer with an unread request body, keep reading (and discarding) this
# long so the client sees our response instead of a reset (nginx: lingering_timeout 5s).
LINGER_SECONDS = 2.0

_CRLF = b"\r\n"

# An asyncio protocol by its methods, without asyncio.Protocol as base: compiled, it is an extension type (see
# the .pxd beside this module), which cannot derive from a Python class (Downstream is an extension type too).
# Factories handing it to the loop say so.
class ClientConnection(Downstream):
    """One HTTP/1.1 client connection: parses requests, hands them to the pipeline, runs their exchanges in order."""

    # (Downstream holds server, listener, writer, client_ip, scheme, forwarded, blocked, write_paused...)
    __slots__ = ("requests_left", "pipeline", "transport", "parser", "head", "request", "active", "queue",
                 "upgrading", "tunnel", "deferred", "state", "since", "idle_limit", "head_bytes", "closing", "closed",
                 "eof", "server_name", "peer_certificate")

    # The access log's protocol of its requests (HTTP/1.0 ones say so themselves).
    protocol = b"HTTP/1.1"

    def __init__(self, server: ProxyServer, listener: Listener, pipeline: Pipeline) -> None:
        self.server = server
        self.listener = listener
        self.pipeline = pipeline
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.writer: H1Writer = None  # type: ignore[assignment]  # made in connection_made
        # Made at the first read (_feed): a connection that sends no request (a TLS handshake alone, a health
        # check's connect) costs no parser.
        self.parser: HttpRequestParser | None = None
        self.head: RequestHead | None = None  # the head being parsed
        self.client_ip = b""  # set by connection_made (or before it, by a PROXY protocol listener's factory)
        # The scheme the client used: the listener's, or https when a PROXY header says port 443.
        self.scheme = listener.scheme
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
        # Requests this connection may still carry (nginx keepalive_requests); counts below 0 without a limit.
        self.requests_left = server.keepalive_requests or -1
        # The client certificate verdict, read once when a route first asks (see client_certificate).
        self.peer_certificate: ClientCertificate | bool | None = False

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (TCP or TLS)
        listener = self.listener
        self.writer = H1Writer(self.transport, listener)
        client_ip = self.client_ip
        if not client_ip:
            peer = transport.get_extra_info("peername")
            ip = peer[0] if isinstance(peer, tuple) and peer else ""
            self.client_ip = client_ip = ip.encode("ascii", "replace")
            scheme_port = listener.forwarded
        else:  # a PROXY protocol header's address, and its X-Forwarded-Proto/Port (set by the listener's factory)
            scheme_port = self.forwarded
        # The forwarded fields that depend only on the connection, built once: X-Forwarded-For (when
        # the client sent none), X-Forwarded-Proto/Port, X-Real-IP.
        xff = b"X-Forwarded-For: " + client_ip
        self.forwarded_ip_end = len(xff)
        ssl_object = None
        if listener.tls:
            ssl_object = transport.get_extra_info("ssl_object")
            self.server_name = getattr(ssl_object, "pyngress_server_name", None)
        self.forwarded = b"".join((xff, _CRLF, scheme_port, b"X-Real-IP: ", client_ip, _CRLF))
        if ssl_object is not None and listener.http2 is not None and ssl_object.selected_alpn_protocol() == "h2":
            listener.http2(self, b"")  # the client chose HTTP/2 by ALPN: its protocol takes the connection
            return
        _downstream.connection_opened(self.server, self, listener)  # (compiled: a C call, h1_connection.pxd)
        h2c = listener.h2c
        if h2c is not None:
            h2c(self)  # the first read decides between HTTP/1.1 and h2c (proxy/http2/preface.py)

    def client_certificate(self) -> ClientCertificate | None:
        """The client certificate of a TLS connection to a host asking one (tls.client_auth), read once."""
        known = self.peer_certificate
        if known is False:
            ssl_object = self.transport.get_extra_info("ssl_object") if self.listener.tls else None
            known = self.peer_certificate = client_certificate(ssl_object) if ssl_object is not None else None
        return known  # type: ignore[return-value]  # False replaced above

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
        parser = self.parser
        if parser is None:
            parser = self.parser = HttpRequestParser(self)
        try:
            parser.feed_data(data)
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
        if self.tunnel is not None or self.state == LINGER or self.listener.tls:
            return False
        active = self.active
        if active is None or self.request is not None:
            return False  # idle, or in the middle of a request that can now never complete
        if active.policy is not None and active.conn is None:
            # Its request waits for an attempt (a fault delay, a retry's backoff, a queue for a connection):
            # the client is taken as gone (nginx's 499), rather than sending the request upstream for nobody.
            return False
        self.eof = True  # half-close after a complete request: answer it, then close
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        _downstream.connection_closed(self.server, self, self.listener)  # (a drain waiting for the last is told)
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
        self.parser = None
        self.request = self.upgrading = self.tunnel = None
        self.head = None
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
        self.head = ex
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
        head = self.head
        assert head is not None
        if head.target:
            url = head.target + url
        if len(url) > self.server.max_request_line:
            raise BadRequest("request line too long", status=414)
        head.target = url

    # The field classification every client protocol shares (proxy/http/request_fields.py), as the parser's
    # callback: a plain function in the class, so it costs what a method defined here would.
    on_header = add_field

    def on_headers_complete(self) -> None:
        ex = self.request
        head = self.head
        assert ex is not None and head is not None
        self.head = None  # what the parser reports from now on belongs to the body (or its trailers)
        ex.head_done = True
        parser = self.parser
        assert parser is not None  # (it is calling us)
        head.method = method = parser.get_method()
        ex.keep_alive = keep_alive = parser.should_keep_alive()
        # llhttp takes HTTP/0.9, 1.0, 1.1 and 2.0 only, and keeps one other than 1.1 alive only when a Connection
        # (or Proxy-Connection) header says keep-alive: kept alive with no such header, it is HTTP/1.1, and the
        # version string (formatted per call, a tenth of this callback's cost) is not needed.
        if not keep_alive or head.connection_names is not None:
            version = parser.get_http_version()
            if version != "1.1":
                if version != "1.0":
                    raise BadRequest(f"HTTP/{version} is not supported", status=505)
                head.http10 = True
        self.requests_left -= 1
        if not self.requests_left:
            ex.keep_alive = False  # the last request keepalive_requests allows: answered with Connection: close
        if method == b"CONNECT":
            raise BadRequest("CONNECT is not supported", status=405)
        # (llhttp flags an upgrade only with an Upgrade header, or for CONNECT, refused above.)
        if head.upgrade is not None and parser.should_upgrade():
            # After an upgrade request the parser stops: this connection serves no further request.
            ex.keep_alive = False
            self.upgrading = ex
            upgrade = head.upgrade
            if upgrade is not None and method == b"GET" and not head.has_body and h.has_token(upgrade, b"websocket"):
                head.websocket = True
        if head.authority is None and not head.http10 and head.target[:1] == b"/":
            raise BadRequest("missing Host header")
        ids = _ids  # IdPool.take, inline: once per request
        at = ids.at
        if at >= _IDS_END:
            at = ids.refill()
        ids.at = at + _IDS_STEP
        head.id_pool = pool = ids.pool
        head.id_at = at
        if not head.request_id:
            head.request_id = pool[at : at + _REQUEST_ID]
        head.server_name = self.server_name
        self.server.total_requests += 1
        if self.active is ex:
            self.state = BUSY
            self.pipeline.dispatch(self, ex)

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

    def _upgraded(self, rest: bytes) -> None:
        """The parser stopped after an upgrade request; ``rest`` is what followed its head."""
        ex = self.upgrading
        self.closing = True
        if ex is None or ex.finished:
            return
        head = ex
        if head.websocket:
            if rest:
                ex.up_out.append(rest)
            self.block(BLOCK_UPGRADE)
            return
        # Not a WebSocket (h2c, ...): it is served as a plain request without Upgrade. The
        # parser skipped its body, so a fresh parser reads it, primed with a matching head.
        if head.has_body:
            self.closing = False
            self.parser = parser = HttpRequestParser(_BodyContinuation(self, ex))
            framing = b"Transfer-Encoding: chunked" if head.chunked else b"Content-Length: %d" % head.content_length
            parser.feed_data(b"POST / HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n")
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
        fields: bytes = b"",
        reason: str = "",
    ) -> None:
        """Write the proxy's own answer, log it once, and continue or close the connection.

        `fields`: extra header fields (ready bytes); `reason`: the access log's word for why (the cause's
        own when not given)."""
        server = self.server
        if ex is None:
            request_id = new_request_id()
            keep_alive = False
            http10 = head_only = False
        else:
            head = ex
            if not head.request_id:
                head.request_id = new_request_id()
            request_id = head.request_id
            ex.finished = True
            keep_alive = (
                not close
                and ex.keep_alive
                and ex.head_done
                and (ex.req_done or not head.has_body)
                and not server.draining and not self.listener.closing
            )
            http10 = head.http10
            head_only = head.method == b"HEAD"
            ex.status = status
            ex.reason = reason or (getattr(cause, "reason", "") if cause is not None else "")
        level = logging.WARNING if status >= 500 else logging.DEBUG
        if logger.isEnabledFor(level):
            log_answer(level, status, ex, request_id, self.client_ip if ex is None else ex.client_ip, cause)
        if not self.closed:
            if ex is not None and status >= 400 and grpc_request(ex):
                message = detail or (str(cause) if cause is not None else "") or REASONS.get(status, b"").decode()
                sent = self.writer.grpc_answer(status, request_id, close=not keep_alive, message=message,
                                               fields=fields)
                grpc_answered(ex, status)
            else:
                sent = self.writer.answer(status, request_id, close=not keep_alive, http10=http10, detail=detail,
                                          head_only=head_only, location=location, fields=fields)
            if ex is not None:
                ex.sent += sent
            elif server.route_metrics:  # a request rejected before it had an exchange (queued behind another)
                server.traffic.unmatched.record(b"", status, 0.0, -1.0, 0, sent, 0)
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
                log_answer(logging.DEBUG, error.status, ex, ex.request_id or b"-", ex.client_ip, error)
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
        request = ex  # typed as the Exchange it is, compiled (h1_connection.pxd)
        request.account()
        if self.active is request:
            self.active = None
        if self.blocked & (BLOCK_CONNECT | BLOCK_UPSTREAM):
            self.unblock(BLOCK_CONNECT | BLOCK_UPSTREAM)
        if self.closed:
            return
        server = self.server
        if not keep_alive or server.draining or self.listener.closing or self.eof:
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
                self.pipeline.dispatch(self, nxt)
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

    def close(self) -> None:
        """Close after what was written (the end of a tunnel)."""
        self.transport.close()

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
        elif state == LINGER and now - self.since > LINGER_SECONDS:
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
