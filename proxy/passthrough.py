"""SSL passthrough: TLS connections routed by their ClientHello's server name, spliced to a pod undecrypted.

With --enable-ssl-passthrough an HTTPS listener's protocol factory is an `SniAcceptor`: each
connection first gets an `SniReader`, which reads the ClientHello (proxy.tls.client_hello: split
over segments and records, bounded in size, with a deadline; a malformed one closes the
connection). Then:

- the server name is a passthrough host of the listener's `SniTable` (an ssl-passthrough Ingress,
  a TLSRoute): a pod of the rule's backend is dialled (other endpoints on failure, like a request's
  connect retries), the bytes read so far are written to it first, and from then on two
  `SpliceEnd`s copy bytes both ways. Each end stops reading when the other's write buffer is over
  its high-water mark (asyncio's pause_writing/resume_writing), so a slow reader on either side
  holds at most one buffer's worth in the proxy. An EOF is passed on as a half-close; the
  connection closes when both directions are done or either side is lost;
- any other name, no name, or bytes that are not TLS at all: the connection goes to the TLS
  terminator exactly as without passthrough (proxy.tls.handshake.ReplayedHandshake gets the bytes
  already read). A Gateway port with only TLS listeners has no terminator: it closes those.

Without the flag none of this is on the path: the HTTPS listeners use the TlsAcceptor directly.
Unlike ingress-nginx (which dials the Service's clusterIP) the pods are dialled directly, balanced
like HTTP requests; ingress-nginx's proxy port 442 does not exist (nothing goes through a second hop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from proxy.routing.passthrough import EMPTY, SniTable
from proxy.tls.client_hello import ClientHello, ClientHelloReader, MalformedHello
from proxy.tls.handshake import ReplayedHandshake, TlsAcceptor

logger = logging.getLogger("pyngress.passthrough")

TIMEOUT = "timeout"
MALFORMED = "malformed"
CLIENT_CLOSED = "client_closed"
NO_ROUTE = "no_route"  # a passthrough-only port and a name none of its routes has
NO_ENDPOINT = "no_endpoint"
CONNECT_FAILED = "connect_failed"
FAILURES: tuple[str, ...] = (TIMEOUT, MALFORMED, CLIENT_CLOSED, NO_ROUTE, NO_ENDPOINT, CONNECT_FAILED)

# Write buffer bounds of both ends of a splice: over HIGH the other side stops being read until
# the buffer drains under LOW. What one connection can hold in the proxy is about HIGH per
# direction plus one read (256 KiB in uvloop).
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024


class HostCounts:
    """Connections and bytes of one passthrough host (plain integers, exported at scrape time)."""

    __slots__ = ("connections", "received", "sent")

    def __init__(self) -> None:
        self.connections = 0
        self.received = 0  # from clients (to pods)
        self.sent = 0  # to clients (from pods)


class PassthroughStats:
    """One process's passthrough counts: per host (the rule's host as written), and failures by reason."""

    __slots__ = ("hosts", "failures", "active")

    def __init__(self) -> None:
        self.hosts: dict[str, HostCounts] = {}
        self.failures: dict[str, int] = dict.fromkeys(FAILURES, 0)
        self.active = 0

    def host(self, name: str) -> HostCounts:
        counts = self.hosts.get(name)
        if counts is None:
            counts = self.hosts[name] = HostCounts()
        return counts

    def keep(self, names: Iterable[str]) -> None:
        """Drop the series of hosts no table serves any more (open splices keep counting into theirs)."""
        wanted = set(names)
        for name in [name for name in self.hosts if name not in wanted]:
            del self.hosts[name]

    def snapshot(self) -> dict[str, Any]:
        return {"hosts": {name: [c.connections, c.received, c.sent] for name, c in self.hosts.items()},
                "failures": dict(self.failures), "active": self.active}


class SniAcceptor:
    """The protocol factory of an HTTPS (or TLS-passthrough-only) listener with passthrough on.

    `table` is replaced at each publish (new connections read it once, at their ClientHello);
    `upstreams` gives the running upstreams by cluster key.
    """

    __slots__ = ("tls", "table", "upstreams", "stats", "hello_timeout", "connect_timeout", "tries", "open",
                 "closing")

    def __init__(self, tls: TlsAcceptor | None, *, upstreams: Callable[[], Mapping[str, Any]],
                 stats: PassthroughStats, hello_timeout: float, connect_timeout: float, tries: int) -> None:
        self.tls = tls
        self.table: SniTable = EMPTY
        self.upstreams = upstreams
        self.stats = stats
        self.hello_timeout = hello_timeout
        self.connect_timeout = connect_timeout
        self.tries = max(1, tries)
        # Connections reading their ClientHello or spliced (for abort()).
        self.open: set[SniReader] = set()
        self.closing = False

    def __call__(self) -> SniReader:
        return SniReader(self)

    def abort(self) -> None:
        """Cut every connection this acceptor still owns (server shutdown)."""
        self.closing = True
        for reader in list(self.open):
            reader.abort()
        if self.tls is not None:
            self.tls.abort()


class SniReader(asyncio.Protocol):
    """One connection until its ClientHello says where it goes; then the owner of its splice."""

    __slots__ = ("acceptor", "transport", "reader", "timer", "connecting", "client", "pod", "counts", "early",
                 "app_factory")

    def __init__(self, acceptor: SniAcceptor) -> None:
        self.acceptor = acceptor
        # What serves the connection once terminated here (None: the TLS acceptor's own; a PROXY protocol
        # listener's knows the client address of the header).
        self.app_factory: Callable[[], asyncio.BaseProtocol] | None = None
        self.transport: Any = None
        self.reader: ClientHelloReader | None = ClientHelloReader()
        self.timer: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.client: SpliceEnd | None = None
        self.pod: SpliceEnd | None = None
        self.counts: HostCounts | None = None
        # Bytes that arrive while the pod is dialled despite the pause (none with asyncio's or uvloop's
        # transports, which stop at once; kept rather than trusted).
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.acceptor.open.add(self)
        self.timer = asyncio.get_running_loop().call_later(self.acceptor.hello_timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None:
            self.early.append(data)
            return
        try:
            outcome = reader.feed(data)
        except MalformedHello as error:
            self._fail(MALFORMED, str(error))
            return
        if outcome is None:
            return
        self._stop_timer()
        route = None
        if isinstance(outcome, ClientHello) and outcome.server_name:
            route = self.acceptor.table.match(outcome.server_name)
        if route is None:
            self._terminate(reader, outcome)
        else:
            self._pass(route, bytes(reader.received))

    def eof_received(self) -> bool | None:
        if self.reader is not None:
            self._fail(CLIENT_CLOSED, "closed before its ClientHello was complete")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.acceptor.open.discard(self)
        if self.connecting is not None:
            self.connecting.cancel()  # the client left while a pod was being dialled
        elif self.reader is not None:
            self.reader = None
            self.acceptor.stats.failures[CLIENT_CLOSED] += 1  # reset before its ClientHello was complete

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        pod = self.pod
        if pod is not None and pod.transport is not None:
            pod.transport.abort()

    # ------------------------------------------------------------------ decisions

    def _timed_out(self) -> None:
        self.timer = None
        if self.reader is not None:
            self._fail(TIMEOUT, f"no complete ClientHello within {self.acceptor.hello_timeout:g} s")

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _fail(self, reason: str, why: str) -> None:
        self._stop_timer()
        self.reader = None
        self.acceptor.stats.failures[reason] += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("passthrough connection from %s closed (%s): %s", _peer(self.transport), reason, why)
        self.transport.abort()

    def _terminate(self, reader: ClientHelloReader, outcome: ClientHello | str) -> None:
        """Not a passthrough host: TLS is terminated here, on exactly the bytes received."""
        self.reader = None
        self.acceptor.open.discard(self)
        tls = self.acceptor.tls
        if tls is None:
            name = outcome.server_name if isinstance(outcome, ClientHello) else ""
            self.acceptor.stats.failures[NO_ROUTE] += 1
            logger.debug("TLS connection for %r on a passthrough-only port: no route, closed", name)
            self.transport.abort()
            return
        handshake = ReplayedHandshake(tls, bytes(reader.received))
        if self.app_factory is not None:
            handshake.app_factory = self.app_factory
        self.transport.set_protocol(handshake)
        handshake.connection_made(self.transport)

    def _pass(self, route: Any, replay: bytes) -> None:
        """Dial a pod of the rule's backend; the client is not read until the splice is up."""
        self.reader = None
        cluster = route.cluster
        if not cluster and route.backends is not None:
            backend = route.backends.pick()
            cluster = backend.cluster if backend is not None else ""
        upstream = self.acceptor.upstreams().get(cluster) if cluster else None
        if upstream is None or not upstream.pools:
            self._fail(NO_ENDPOINT, f"no endpoint for {route.host or '*'} (cluster {cluster or 'none'})")
            return
        self.counts = self.acceptor.stats.host(route.host)
        self.transport.pause_reading()
        self.connecting = asyncio.get_running_loop().create_task(self._dial(upstream, replay))

    async def _dial(self, upstream: Any, replay: bytes) -> None:
        acceptor = self.acceptor
        loop = asyncio.get_running_loop()
        previous = None
        client = SpliceEnd(self)
        for _ in range(acceptor.tries):
            pool = upstream.pick() if previous is None else upstream.balancer.pick(previous)
            if pool is None:
                break
            previous = pool
            endpoint = pool.endpoint
            pod = SpliceEnd(self)
            try:
                async with asyncio.timeout(acceptor.connect_timeout):
                    await loop.create_connection(lambda: pod, endpoint.address, endpoint.port)  # noqa: B023
            except (OSError, TimeoutError) as error:
                logger.debug("passthrough: connect to %s:%s failed: %s", endpoint.address, endpoint.port, error)
                continue
            self.connecting = None
            self._splice(client, pod, replay)
            return
        self.connecting = None
        self._fail(CONNECT_FAILED, f"no endpoint of {upstream.key} accepted a connection")

    def _splice(self, client: SpliceEnd, pod: SpliceEnd, replay: bytes) -> None:
        counts = self.counts
        assert counts is not None
        if self.transport.is_closing():
            pod.transport.abort()
            return
        self.client, self.pod = client, pod
        client.other, pod.other = pod, client
        client.outgoing = False  # bytes it reads come from the client
        counts.connections += 1
        self.acceptor.stats.active += 1
        client.transport = self.transport
        self.transport.set_protocol(client)
        for end in (client, pod):
            end.transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        if self.early:
            replay += b"".join(self.early)
            self.early.clear()
        counts.received += len(replay)
        pod.transport.write(replay)
        self.transport.resume_reading()

    def closed(self) -> None:
        """Both ends of the splice are gone."""
        self.acceptor.open.discard(self)
        self.acceptor.stats.active -= 1


class SpliceEnd(asyncio.Protocol):
    """One side of a spliced connection: what it reads goes to the other side's transport."""

    __slots__ = ("owner", "transport", "other", "outgoing", "eof", "lost")

    def __init__(self, owner: SniReader) -> None:
        self.owner = owner
        self.transport: Any = None
        self.other: SpliceEnd | None = None
        self.outgoing = True  # the pod's end: bytes it reads go to the client
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        counts = self.owner.counts
        if counts is not None:
            if self.outgoing:
                counts.sent += len(data)
            else:
                counts.received += len(data)
        other = self.other
        if other is not None and not other.lost:
            other.transport.write(data)

    def eof_received(self) -> bool:
        """Half-close: the other side's write direction is shut once its buffer is flushed."""
        self.eof = True
        other = self.other
        if other is None or other.lost:
            return False
        if other.eof:
            other.transport.close()
            return False  # both directions are done: close this side too
        if other.transport.can_write_eof():
            other.transport.write_eof()
        return True

    def pause_writing(self) -> None:
        other = self.other
        if other is not None and not other.lost:
            other.transport.pause_reading()

    def resume_writing(self) -> None:
        other = self.other
        if other is not None and not other.lost:
            other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        other = self.other
        if other is None:
            return  # a pod connection never spliced (the client left while dialling)
        if not other.lost:
            if exc is None:
                other.transport.close()  # what is buffered still goes out
            else:
                other.transport.abort()
        else:
            self.owner.closed()


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "?"
