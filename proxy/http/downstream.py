# cython: annotation_typing=False
"""What an exchange needs from the client side of its request: the seam between the protocol and forwarding.

`ClientConnection` (HTTP/1.1) and `proxy.http2.stream.H2Stream` (one HTTP/2 stream) derive from `Downstream`, so
the exchange (and the pipeline) never depend on one wire protocol. Responses go through `writer` (heads, bodies,
the end: a `proxy.http.response_writer.ResponseWriter`); the rest is flow control, the proxy's own answers and
endings.

Compiled (proxy/extensions.py) it is an extension type, like the writers' base: the exchange holds its client as a
typed field, so the fields below are read as a struct and the methods the `.pxd` declares `cpdef` (block, unblock,
exchange_finished) are called through a C table on an HTTP/1.1 connection instead of an attribute lookup and a
Python call. H2Stream, a Python subclass, still overrides them (Cython looks the override up on such a type).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from proxy.http.exchange import Exchange
    from proxy.http.listener import Listener
    from proxy.http.response_writer import ResponseWriter
    from proxy.routing.request import ClientCertificate
    from proxy.server import ProxyServer

# Reasons a client connection stops reading (the `blocked` bit mask: reading resumes when all are clear).
BLOCK_CONNECT = 1  # dialing an upstream: hold the body until there is somewhere to send it
BLOCK_UPSTREAM = 2  # the upstream transport's write buffer is full
BLOCK_PIPELINE = 4  # a pipelined request waits for the one before it
BLOCK_UPGRADE = 8  # a WebSocket upgrade waits for the upstream's 101


class ServerState:
    """What the request path reads (and counts) of the proxy server: the base of `proxy.server.ProxyServer`, typed
    when compiled, so a client connection reads the clock and the limits as struct fields rather than through the
    server's instance dictionary; its connections are kept by connection_opened and connection_closed below."""

    __slots__ = ("now", "draining", "total_requests", "max_request_line", "max_headers", "max_header_bytes",
                 "max_head_bytes", "header_timeout", "keepalive_timeout", "keepalive_requests", "connections",
                 "active_connections", "total_connections", "all_closed")

    # The loop time of the last clock tick (nginx's cached time), and whether the server is draining.
    now: float
    draining: bool
    total_requests: int
    max_request_line: int
    max_headers: int
    max_header_bytes: int
    max_head_bytes: int
    header_timeout: float
    keepalive_timeout: float
    keepalive_requests: int
    # The open client connections (HTTP/1.1 ClientConnections and HTTP/2 H2ClientConnections), walked by the
    # clock tick and by a drain, and their counts (also kept per listener).
    connections: set[Any]
    active_connections: int
    total_connections: int
    # Set by a drain waiting for the last connection to close (an asyncio.Event), None otherwise.
    all_closed: asyncio.Event | None


def connection_opened(server: ServerState, conn: Any, listener: Listener | None) -> None:
    """A client connection (HTTP/1.1 or HTTP/2) starts on `listener` (its own, passed so that compiled callers need
    no attribute lookup); one that opens while the server drains is closed at once.

    (These three are the one bookkeeping of open connections, module functions rather than methods: compiled, the
    HTTP/1.1 connection calls them in C (h1_connection.pxd cimports this module), with no lookup of an override on
    the ProxyServer subclass; the HTTP/2 connection, Python, calls them as functions.)"""
    server.connections.add(conn)
    server.active_connections += 1
    server.total_connections += 1
    if listener is not None:
        listener.active_connections += 1
        listener.total_connections += 1
    if server.draining:
        conn.transport.close()


def connection_closed(server: ServerState, conn: Any, listener: Listener | None) -> None:
    """A client connection is gone (a second call for the same one counts nothing); a drain waiting for the last
    one is told."""
    connections = server.connections
    if conn in connections:
        connections.discard(conn)
        server.active_connections -= 1
        if listener is not None:
            listener.active_connections -= 1
    if not connections:
        all_closed = server.all_closed
        if all_closed is not None:
            all_closed.set()


def connection_replaced(server: ServerState, conn: Any, successor: Any) -> bool:
    """`successor` serves the connection `conn` served (HTTP/2 taking over an HTTP/1.1 connection): the counts
    stay. False if `conn` was not registered (the successor is then opened as a new connection)."""
    connections = server.connections
    if conn not in connections:
        return False
    connections.discard(conn)
    connections.add(successor)
    return True


class Downstream:
    """The client side of requests, as the exchange and the pipeline see it (fields set by the subclasses)."""

    __slots__ = ("server", "listener", "writer", "client_ip", "scheme", "forwarded", "forwarded_ip_end", "blocked",
                 "write_paused", "write_paused_since", "last_read")

    server: ProxyServer  # (a ServerState)
    listener: Listener
    writer: ResponseWriter
    # The access log's protocol word for requests that are not HTTP/1.0: a class attribute, each subclass its own.
    protocol = b"HTTP/1.1"
    client_ip: bytes
    # The scheme the client used: the listener's, or https when a PROXY header says it reached port 443.
    scheme: str
    # The connection's forwarded fields (X-Forwarded-For, -Proto, -Port, X-Real-IP), and where its first line ends.
    forwarded: bytes
    forwarded_ip_end: int
    # Reasons reading from the client is paused (a bit mask of the BLOCK_* above).
    blocked: int
    write_paused: bool
    write_paused_since: float
    last_read: float

    def client_certificate(self) -> ClientCertificate | None:
        """The TLS client certificate verdict of the connection (None: plain HTTP, or a host asking none)."""
        raise NotImplementedError

    def block(self, bit: int) -> None:
        """Stop reading from the client for this reason (flow control)."""
        raise NotImplementedError

    def unblock(self, bit: int) -> None:
        """This reason to stop reading is gone; reading resumes once none is left."""
        raise NotImplementedError

    def send_error(self, ex: Exchange | None, status: int, cause: BaseException | None, *, detail: str = "",
                   close: bool = False, location: bytes = b"", fields: bytes = b"", reason: str = "") -> None:
        """Answer with the proxy's own response (an error, a redirect), log it, go on or close; `fields`: extra
        header fields (ready bytes), `reason`: the access log's word for why."""
        raise NotImplementedError

    def exchange_finished(self, ex: Exchange, keep_alive: bool) -> None:
        """`ex` is answered: the next request may start (or the connection closes)."""
        raise NotImplementedError

    def client_timeout(self, ex: Exchange) -> None:
        """The client stalled in the middle of its request body: 408."""
        raise NotImplementedError

    def start_tunnel(self, ex: Exchange) -> None:
        """The upstream accepted a WebSocket upgrade: bytes flow unparsed from now on."""
        raise NotImplementedError

    def cut(self) -> None:
        """End a response that cannot be completed (the client sees it truncated)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the client at once (it stopped reading)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close after what was written (the end of a tunnel)."""
        raise NotImplementedError
