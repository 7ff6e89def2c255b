"""Idle keep-alive connections to one endpoint, and dialing new ones."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque

from proxy.routing.model import Endpoint
from proxy.upstream.connection import UpstreamConnection
from proxy.upstream.errors import ConnectError, ConnectTimeout
from proxy.upstream.tls import HandshakeError, UpstreamTLS

logger = logging.getLogger("pyngress.proxy")


class EndpointPool:
    """Last-in-first-out idle connections for one endpoint (the warmest one is reused first).

    Idle connections older than ``idle_timeout`` are closed by one timer per pool
    (armed only while the pool holds connections), not by a timer per connection.
    """

    __slots__ = ("endpoint", "resolve", "limit", "idle_timeout", "connect_timeout", "idle", "retired", "_timer",
                 "log_address", "_loop", "index", "in_flight", "failures", "healthy", "tls", "gateway_failures",
                 "open", "ejected_until", "ejections", "returned_at", "ewma", "ewma_at", "token", "faulted_at")

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        resolve: bool = False,
        limit: int = 64,
        idle_timeout: float = 60.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        # True for ExternalName: `endpoint.address` is a DNS name resolved at each dial.
        self.resolve = resolve
        self.limit = limit
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.idle: deque[UpstreamConnection] = deque()
        # Set when the endpoint left its cluster: busy connections are closed when released.
        self.retired = False
        self._timer: asyncio.TimerHandle | None = None
        # The endpoint as the access log writes it, made on first use (proxy.accesslog.address_text).
        self.log_address: bytes | None = None
        # The loop of this pool's connections, kept at the first dial: asyncio.get_running_loop()
        # costs a getpid() system call, once per request if called on release.
        self._loop: asyncio.AbstractEventLoop | None = None
        # Balancer state: position in the cluster's pools, requests using the endpoint now, and
        # consecutive failed attempts (5xx answers and gateway errors) since its last success.
        self.index = 0
        self.in_flight = 0
        self.failures = 0
        # False while active health checks find the endpoint unhealthy (proxy.upstream.health): balancers
        # skip it. Changed only with a new `Balancer.update()` call after it, so balancers may filter there.
        self.healthy = True
        # TLS to this endpoint (a TlsEndpointPool); None: plain TCP.
        self.tls: UpstreamTLS | None = None
        # Consecutive gateway errors (connect failure, reset, timeout, broken answer; 502, 503, 504).
        self.gateway_failures = 0
        # Connections open to the endpoint now, idle or busy (the circuit breaker's max_connections):
        # counted down when a connection is first known closed (see UpstreamConnection).
        self.open = 0
        # Passive health (see proxy.upstream.outliers): ejected until this loop time (0: not ejected), how
        # many ejections the next one's length multiplies, and when the last one ended.
        self.ejected_until = 0.0
        self.ejections = 0
        self.returned_at = 0.0
        # LeastRequest: latency EWMA in seconds (0: no sample yet) and the loop time of its last update.
        self.ewma = 0.0
        self.ewma_at = 0.0
        # When the endpoint's last framing fault was logged at warning (proxy.http.upstream_faults); None: never.
        self.faulted_at: float | None = None
        # Cookie affinity: the value naming this endpoint in the cookie (a digest, never the address).
        self.token = b""

    def __repr__(self) -> str:
        return f"<EndpointPool {self.endpoint.address}:{self.endpoint.port} idle={len(self.idle)}>"

    def acquire(self) -> UpstreamConnection | None:
        """A live idle connection, or None (dead ones found on the way are dropped)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.transport.is_closing():
                return conn
            if not conn.closed:
                conn.closed = True
                self.open -= 1
        return None

    def release(self, conn: UpstreamConnection) -> None:
        """Take back a connection whose last response was complete and keep-alive."""
        conn.user = None
        if conn.closed:
            return
        if self.retired or len(self.idle) >= self.limit or self.idle_timeout <= 0:
            conn.close()
            return
        if conn.reading_paused:
            conn.resume_reading()
        loop = self._loop or asyncio.get_running_loop()
        conn.idle_since = loop.time()
        self.idle.append(conn)
        if self._timer is None:
            self._timer = loop.call_later(self.idle_timeout, self._expire)

    def discard(self, conn: UpstreamConnection) -> None:
        """Forget a connection that closed while idle."""
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def _expire(self) -> None:
        self._timer = None
        idle = self.idle
        if not idle:
            return
        loop = self._loop or asyncio.get_running_loop()
        deadline = loop.time() - self.idle_timeout
        while idle and idle[0].idle_since <= deadline:
            idle.popleft().close()
        if idle:
            self._timer = loop.call_at(idle[0].idle_since + self.idle_timeout, self._expire)

    async def connect(self) -> UpstreamConnection:
        """Dial a new connection; failures become ConnectError/ConnectTimeout with the cause chained."""
        loop = self._loop = asyncio.get_running_loop()
        address, port = self.endpoint
        where = f"{address}:{port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                if not self.resolve:
                    _, conn = await loop.create_connection(lambda: UpstreamConnection(self), address, port)  # type: ignore[type-var]
                    return conn
                try:
                    infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
                except socket.gaierror as exc:
                    raise ConnectError(f"cannot resolve {address}: {exc.strerror or exc}") from exc
                last: OSError | None = None
                for family, _, proto, _, sockaddr in infos:
                    try:
                        _, conn = await loop.create_connection(  # type: ignore[type-var]
                            lambda: UpstreamConnection(self), str(sockaddr[0]), int(sockaddr[1]), family=family,
                            proto=proto,
                        )
                        return conn
                    except OSError as exc:
                        last = exc
                raise ConnectError(f"connect to {where} failed: {last}") from last
        except TimeoutError as exc:
            raise ConnectTimeout(f"connect to {where} timed out after {self.connect_timeout:g}s") from exc
        except OSError as exc:
            raise ConnectError(f"connect to {where} failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Retire the pool: close idle connections now, busy ones when they are released."""
        self.retired = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.idle:
            self.idle.pop().close()


class TlsEndpointPool(EndpointPool):
    """The pool of an endpoint spoken to over TLS: the same idle connections, dialed then upgraded.

    A subclass so the plain pool's dial path stays exactly as it was. Handshake failures are
    logged at warning once per run of failures (each one is also in the 502's log line and in
    the handshake counts), then at debug until a handshake succeeds again.
    """

    __slots__ = ("failing",)

    def __init__(self, endpoint: Endpoint, *, tls: UpstreamTLS, resolve: bool = False, limit: int = 64,
                 idle_timeout: float = 60.0, connect_timeout: float = 5.0) -> None:
        super().__init__(endpoint, resolve=resolve, limit=limit, idle_timeout=idle_timeout,
                         connect_timeout=connect_timeout)
        self.tls = tls
        self.failing = ""  # the reason of the last handshake failure, "" after a success

    def __repr__(self) -> str:
        return f"<TlsEndpointPool {self.endpoint.address}:{self.endpoint.port} idle={len(self.idle)}>"

    async def connect(self) -> UpstreamConnection:
        """Dial, then the TLS handshake (its own connect timeout, as nginx gives it); failures of the handshake
        are HandshakeErrors (connect failures)."""
        conn = await super().connect()
        tls = self.tls
        assert tls is not None
        address, port = self.endpoint
        try:
            conn.transport = await tls.handshake(conn.transport, conn, where=f"{address}:{port}",  # type: ignore[arg-type]
                                                 timeout=self.connect_timeout)
        except HandshakeError as error:
            conn.closed = True
            level = logging.WARNING if error.reason != self.failing else logging.DEBUG
            self.failing = error.reason
            logger.log(level, "%s", error)
            raise
        self.failing = ""
        return conn
