"""The pool of an endpoint spoken to in HTTP/2 (h2c, or h2 over TLS with ALPN): a few multiplexed connections.

To the exchange it looks like the HTTP/1.1 `EndpointPool`: `acquire()` hands out a "connection" at once
when an HTTP/2 connection is up (an `H2Stream` on it), else `connect()` dials one; a cluster chooses this
class at build time from its protocol (proxy/upstream/cluster.py), so HTTP/1.1 clusters never run it.

Streams go to the least loaded live connection; a new connection is dialed only when every one is at the
pod's SETTINGS_MAX_CONCURRENT_STREAMS and fewer than ``MAX_CONNECTIONS`` exist (one dial at a time, shared
by the requests waiting for it); past that, streams wait on a connection for a free slot.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from proxy.routing.model import Endpoint
from proxy.upstream.errors import ConnectError, ConnectTimeout
from proxy.upstream.h2_connection import H2Connection
from proxy.upstream.h2_stream import H2Stream
from proxy.upstream.pool import EndpointPool
from proxy.upstream.tls import HandshakeError, UpstreamTLS

logger = logging.getLogger("pyngress.proxy")

# Connections to one endpoint at most: HTTP/2 multiplexes, more only help past the pod's stream limit.
MAX_CONNECTIONS = 4


class H2EndpointPool(EndpointPool):
    """HTTP/2 connections to one endpoint, handing out streams (see the module docstring)."""

    __slots__ = ("connections", "dialing", "scheme", "authority")

    def __init__(self, endpoint: Endpoint, *, tls: UpstreamTLS | None = None, resolve: bool = False,
                 limit: int = 64, idle_timeout: float = 60.0, connect_timeout: float = 5.0) -> None:
        super().__init__(endpoint, resolve=resolve, limit=limit, idle_timeout=idle_timeout,
                         connect_timeout=connect_timeout)
        self.tls = tls
        self.connections: list[H2Connection] = []
        self.dialing: asyncio.Task[H2Connection] | None = None
        self.scheme = b"https" if tls is not None else b"http"
        # :authority for a request without Host (HTTP/1.0 clients): the endpoint.
        self.authority = f"{endpoint.address}:{endpoint.port}".encode("ascii", "replace")

    def __repr__(self) -> str:
        return f"<H2EndpointPool {self.endpoint.address}:{self.endpoint.port} connections={len(self.connections)}>"

    def _best(self) -> H2Connection | None:
        """The least loaded live connection (None: none)."""
        best: H2Connection | None = None
        for connection in self.connections:
            if connection.usable() and (best is None or connection.load < best.load):
                best = connection
        return best

    def acquire(self) -> H2Stream | None:  # type: ignore[override]  # a stream stands in for a connection
        """A stream on a live connection with room (or on the least loaded one when no more may be dialed)."""
        best = self._best()
        if best is None or (not best.has_room() and len(self.connections) < MAX_CONNECTIONS):
            return None
        stream = H2Stream(self)
        best.add(stream)
        return stream

    def release(self, conn: H2Stream) -> None:  # type: ignore[override]
        """The exchange is done with its stream (the response was complete)."""
        conn.close()

    def place(self, stream: H2Stream) -> None:
        """Open a stream that lost its connection (refused, GOAWAY) on another, dialing one if needed."""
        best = self._best()
        if best is not None and (best.has_room() or len(self.connections) >= MAX_CONNECTIONS):
            best.add(stream)
            return
        task = self._dial_shared()

        def dialed(done: asyncio.Task[H2Connection]) -> None:
            if stream.closed:
                return
            if done.cancelled() or done.exception() is not None:
                stream.connection_lost(ConnectError(f"connect to {self.endpoint.address}:{self.endpoint.port} "
                                                    "failed while sending a refused stream again"))
                return
            done.result().add(stream)

        task.add_done_callback(dialed)

    def forget(self, stream: H2Stream) -> None:
        """A stream closed before any connection took it (nothing to do: it is not referenced here)."""

    def retire(self, connection: H2Connection) -> None:
        """A connection that takes no new streams (GOAWAY, closed)."""
        try:
            self.connections.remove(connection)
        except ValueError:
            pass

    async def connect(self) -> H2Stream:  # type: ignore[override]
        """A stream on a new (or just dialed) connection; failures are ConnectErrors, as for HTTP/1.1."""
        for _ in range(MAX_CONNECTIONS):
            # Many requests may wait for one dial: each dials again while every connection is full (up to the limit).
            await asyncio.shield(self._dial_shared())
            best = self._best()
            if best is not None and (best.has_room() or len(self.connections) >= MAX_CONNECTIONS):
                break
        stream = H2Stream(self)
        self.place(stream)
        return stream

    def _dial_shared(self) -> asyncio.Task[H2Connection]:
        task = self.dialing
        if task is None:
            loop = self._loop = asyncio.get_running_loop()
            task = self.dialing = loop.create_task(self._dial())
            task.add_done_callback(self._dialed)
        return task

    def _dialed(self, task: asyncio.Task[H2Connection]) -> None:
        self.dialing = None
        if not task.cancelled():
            task.exception()  # retrieved here: each waiter gets it from its own await

    async def _dial(self) -> H2Connection:
        address, port = self.endpoint
        where = f"{address}:{port}"
        loop = asyncio.get_running_loop()
        connection: H2Connection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                host = address
                if self.resolve:
                    try:
                        infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
                    except socket.gaierror as exc:
                        raise ConnectError(f"cannot resolve {address}: {exc.strerror or exc}") from exc
                    host = str(infos[0][4][0])
                transport, connection = await loop.create_connection(lambda: H2Connection(self), host, port)
                tls = self.tls
                if tls is not None:
                    upgraded = await tls.handshake(transport, connection, where=where, timeout=self.connect_timeout)
                    connection.transport = upgraded
                    ssl_object = upgraded.get_extra_info("ssl_object")
                    chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
                    if chosen != "h2":
                        upgraded.abort()
                        raise ConnectError(f"TLS to {where}: the pod did not accept HTTP/2 by ALPN ({chosen})")
                    connection.start()
                await connection.ready
        except TimeoutError as exc:
            if connection is not None:
                connection.close()
            raise ConnectTimeout(f"connect to {where} timed out after {self.connect_timeout:g}s") from exc
        except HandshakeError:
            if connection is not None:
                connection.close()
            raise
        except ConnectionError as exc:
            raise ConnectError(f"connect to {where} failed: the pod closed the HTTP/2 connection at once") from exc
        except OSError as exc:
            raise ConnectError(f"connect to {where} failed: {exc.strerror or exc}") from exc
        if self.retired:
            connection.close()
            raise ConnectError(f"endpoint {where} left its cluster")
        self.connections.append(connection)
        return connection

    def close(self) -> None:
        """Retire the pool: idle connections close now, busy ones when their last stream ends."""
        self.retired = True
        for connection in list(self.connections):
            if not connection.streams and not connection.waiting:
                connection.close()


__all__ = ["H2EndpointPool", "MAX_CONNECTIONS"]
