"""The PROXY protocol (HAProxy's, v1 text and v2 binary) in front of a listener: the real client address.

A load balancer that keeps connections at layer 4 (AWS NLB, HAProxy in TCP mode...) writes one header
before the client's bytes: ``PROXY TCP4 <client> <lb> <client port> <lb port>\\r\\n`` (v1), or a
binary block starting with a 12-byte signature (v2). With ``--proxy-protocol`` every connection must
start with one; the address it names is the client address everywhere (X-Forwarded-For, X-Real-IP,
source ranges, rate limits, hashing, the access log, spans). A connection without a valid header
within the client header timeout is closed at once, with no answer.

Why the header is read from the socket and not from a protocol's ``data_received``: on the HTTPS port
TLS starts right behind the header, and ``loop.start_tls`` cannot be given bytes already read. So a
PROXY listener accepts sockets itself (:class:`ProxyProtocolServer`), reads *exactly* the header with
plain ``recv`` calls (v2 says its length; v1 ends at CRLF, found with ``MSG_PEEK`` so nothing past it
is consumed), then hands the socket to ``loop.connect_accepted_socket`` with the listener's usual
protocol factory: from there on the connection takes the very path a plain listener's does (the
HTTPS one through the same TLS acceptor). A listener without ``--proxy-protocol`` is made by
``loop.create_server`` as before and never touches this module.
"""

from __future__ import annotations

import _socket
import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger("pyngress.proxy")

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# The longest v1 header, CRLF included (the specification's bound: "PROXY UNKNOWN ffff:...:ffff ..." is 107).
V1_MAX = 107
# Bytes read before the version is known: fewer than the shortest header of either version
# ("PROXY UNKNOWN\r\n" is 15 bytes, a v2 header at least 16), so nothing past a header is ever read.
_START = 12
_V2_FIXED = 16
_V1_TCP = {b"TCP4": socket.AF_INET, b"TCP6": socket.AF_INET6}
# v2 address families (high nibble of byte 14) and the size of their address block.
_V2_INET, _V2_INET6 = 0x1, 0x2
_V2_ADDRESS_BYTES = {_V2_INET: 12, _V2_INET6: 36}
# Bytes peeked for the header at once: a v1 line (107 at most), a v2 IPv6 header (52) with room for TLVs.
_PEEK = 512
# Connections accepted per readiness event of the listening socket (then other callbacks get a turn).
_ACCEPT_BATCH = 64


class HeaderError(ValueError):
    """The bytes are not a valid PROXY protocol header."""


# What a header says: the client's address and the port it connected to on the balancer (("", 0): nothing,
# keep the connection's own peer).
Origin = tuple[str, int]
_NOTHING: Origin = ("", 0)


def parse_v1(line: bytes) -> Origin:
    """The client address and destination port of a whole v1 header (CRLF included); ("", 0) for
    ``PROXY UNKNOWN`` (keep the peer)."""
    if len(line) > V1_MAX or not line.startswith(V1_PREFIX) or not line.endswith(b"\r\n"):
        raise HeaderError("not a PROXY v1 line")
    parts = line[6:-2].split(b" ")
    if parts[0] == b"UNKNOWN":
        return _NOTHING  # the specification: the receiver ignores the rest of the line and uses the real peer
    family = _V1_TCP.get(parts[0])
    if family is None or len(parts) != 5:
        raise HeaderError(f"PROXY v1: bad protocol or field count in {line[:60]!r}")
    source, destination, source_port, destination_port = parts[1:]
    for port in (source_port, destination_port):
        if not port.isdigit() or len(port) > 5 or int(port) > 65535 or (port[:1] == b"0" and len(port) > 1):
            raise HeaderError(f"PROXY v1: bad port {port[:8]!r}")
    try:
        for address in (source, destination):
            socket.inet_pton(family, address.decode("ascii"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise HeaderError(f"PROXY v1: bad address in {line[:60]!r}") from None
    return source.decode("ascii"), int(destination_port)


def parse_v2(header: bytes) -> Origin:
    """The client address and destination port of a whole v2 header; ("", 0) when it names none to use (LOCAL,
    UNSPEC or UNIX: keep the peer). TLVs after the addresses are skipped."""
    if len(header) < _V2_FIXED or header[:12] != V2_SIGNATURE:
        raise HeaderError("not a PROXY v2 header")
    version_command, family_protocol, length = struct.unpack_from("!BBH", header, 12)
    if version_command >> 4 != 2:
        raise HeaderError(f"PROXY v2: version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise HeaderError(f"PROXY v2: unknown command {command}")
    if len(header) != _V2_FIXED + length:
        raise HeaderError("PROXY v2: length does not match")
    if command == 0:
        return _NOTHING  # LOCAL: the balancer's own connection (a health check)
    family = family_protocol >> 4
    needed = _V2_ADDRESS_BYTES.get(family)
    if needed is None:
        if family > 3:
            raise HeaderError(f"PROXY v2: unknown address family {family}")
        return _NOTHING  # UNSPEC or UNIX: no address worth using
    if length < needed:
        raise HeaderError("PROXY v2: address block too short")
    if family == _V2_INET:
        return socket.inet_ntop(socket.AF_INET, header[16:20]), int.from_bytes(header[26:28], "big")
    return socket.inet_ntop(socket.AF_INET6, header[16:32]), int.from_bytes(header[50:52], "big")


def _whole_header(peeked: bytes) -> int:
    """The length of the complete header at the start of `peeked` (0: not all there, or not valid so far: the
    byte-wise path decides). Raises EOFError for nothing at all (the peer closed)."""
    if not peeked:
        raise EOFError("closed before the PROXY header")
    if peeked[:6] == V1_PREFIX:
        end = peeked.find(b"\r\n", 0, V1_MAX)
        return end + 2 if end > 0 else 0
    if peeked[:12] == V2_SIGNATURE and len(peeked) >= _V2_FIXED:
        total = _V2_FIXED + int.from_bytes(peeked[14:16], "big")
        return total if total <= len(peeked) else 0
    return 0


class HeaderReader:
    """Reads one connection's PROXY header off its socket, byte-exact, then hands the socket on.

    The first attempt is made right after accept: a balancer sends the header at once, usually with the
    request behind it, so one peek finds the whole header and one ``recv`` of exactly its length takes it
    (no readiness registration, no timer). Otherwise readiness callbacks (``loop.add_reader``) drive it,
    each reading what is there without blocking, so a header split over several packets is put together
    and a partial one waits (bounded by ``timeout``). There v1 lines are read with ``MSG_PEEK`` up to their
    CRLF; every peek is followed by consuming at least one byte, so a level-triggered poll never spins.
    """

    __slots__ = ("acceptor", "sock", "fd", "buffer", "timer", "done")

    def __init__(self, acceptor: ProxyProtocolServer, sock: _socket.socket) -> None:
        self.acceptor = acceptor
        self.sock = sock
        self.fd = sock.fileno()
        self.buffer = b""
        self.done = False
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Try at once; wait for readiness (and start the timeout) only when the header is not all there."""
        try:
            origin = self._read()
        except BlockingIOError:
            loop = self.acceptor.loop
            self.timer = loop.call_later(self.acceptor.timeout, self.expire)
            loop.add_reader(self.fd, self.readable)
            self.acceptor.readers.add(self)
            return
        except (HeaderError, OSError, EOFError) as error:
            self.fail(error)
            return
        if origin is not None:
            self.finish(origin)

    def readable(self) -> None:
        try:
            origin = self._read()
        except BlockingIOError:
            return
        except (HeaderError, OSError, EOFError) as error:
            self.fail(error)
            return
        if origin is not None:
            self.finish(origin)

    def _read(self) -> Origin | None:
        """What the header says once it is complete, None while it is not; raises BlockingIOError when the
        socket has nothing more for now."""
        sock = self.sock
        if not self.buffer:
            whole = _whole_header(sock.recv(_PEEK, socket.MSG_PEEK))
            if whole:
                self._take(whole)
                header = self.buffer
                return parse_v1(header) if header[:1] == b"P" else parse_v2(header)
        while True:
            buffer = self.buffer
            size = len(buffer)
            if size < _START:
                self._take(_START - size)
                buffer = self.buffer
                if not (V1_PREFIX.startswith(buffer[:6]) or V2_SIGNATURE.startswith(buffer)):
                    raise HeaderError(f"no PROXY header: {buffer[:12]!r}")
                continue
            if buffer[:6] == V1_PREFIX:
                peeked = sock.recv(V1_MAX - size, socket.MSG_PEEK)
                if not peeked:
                    raise EOFError("closed in the PROXY header")
                end = (buffer[-1:] + peeked).find(b"\r\n")
                if end >= 0:
                    self._take(end + 1)  # up to and including the LF
                    return parse_v1(self.buffer)
                if size + len(peeked) >= V1_MAX:
                    raise HeaderError(f"PROXY v1 line longer than {V1_MAX} bytes")
                self._take(len(peeked))
                continue
            if buffer[:12] != V2_SIGNATURE:
                raise HeaderError(f"no PROXY header: {buffer[:12]!r}")
            if size < _V2_FIXED:
                self._take(_V2_FIXED - size)
                continue
            total = _V2_FIXED + int.from_bytes(buffer[14:16], "big")
            if size < total:
                self._take(total - size)
                continue
            return parse_v2(buffer)

    def _take(self, count: int) -> None:
        data = self.sock.recv(count)
        if not data:
            raise EOFError("closed in the PROXY header")
        self.buffer += data

    def _stop(self) -> None:
        self.done = True
        timer = self.timer
        if timer is not None:  # it waited for readiness
            timer.cancel()
            self.acceptor.loop.remove_reader(self.fd)
            self.acceptor.readers.discard(self)

    def expire(self) -> None:
        if not self.done:
            self.fail(TimeoutError("no complete PROXY header in time"))

    def fail(self, error: BaseException) -> None:
        """No valid header: close at once, answering nothing (the peer may not even speak HTTP)."""
        self._stop()
        self.acceptor.rejected += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("connection from %s closed: %s", _peer(self.sock), error)
        self.sock.close()

    def finish(self, origin: Origin) -> None:
        self._stop()
        self.acceptor.hand_over(self.sock, origin)

    def close(self) -> None:
        """Server shutdown: drop a connection still in its header (not counted as rejected)."""
        if not self.done:
            self._stop()
            self.sock.close()


class ProxyProtocolServer(asyncio.AbstractServer):
    """A listening socket whose connections start with a PROXY header: the stand-in for what
    ``loop.create_server`` returns (``close``, ``wait_closed``, ``sockets``), accepting itself.

    ``factory(origin)`` makes the protocol of a connection whose header said ``origin`` (client address and
    destination port; ("", 0): keep the socket's peer): the listener's usual factory, told them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, *,
                 factory: Callable[[Origin], asyncio.BaseProtocol], timeout: float) -> None:
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.timeout = timeout
        # Connections waiting for the rest of their header.
        self.readers: set[HeaderReader] = set()
        # Connections closed for a missing, malformed or late header.
        self.rejected = 0
        self.serving = True
        self._closed = asyncio.Event()
        loop.add_reader(sock.fileno(), self._accept)

    @classmethod
    async def listen(cls, host: str, port: int, *, reuse_port: bool, backlog: int,
                     factory: Callable[[Origin], asyncio.BaseProtocol], timeout: float) -> ProxyProtocolServer:
        """Bind and listen on ``host:port`` (the socket options create_server would set)."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if hasattr(socket, "TCP_DEFER_ACCEPT"):
                # Linux wakes accept only once data is in (or after a second): the client speaks first here,
                # so the header is usually all there when the connection is accepted (read at once, see
                # HeaderReader.start). nginx's `listen ... deferred` does the same.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return cls(loop, sock, factory=factory, timeout=timeout)

    def _accept(self) -> None:
        listening = self.sock
        family = int(listening.family)
        for _ in range(_ACCEPT_BATCH):
            try:
                fd, _address = listening._accept()  # type: ignore[attr-defined]  # socket.accept() without its
            except (BlockingIOError, InterruptedError):  # Python-level wrapper (measured: a third of its cost)
                return
            except OSError as error:  # EMFILE, ECONNABORTED...: the next readiness event tries again
                logger.warning("accept failed on port %d: %s", listening.getsockname()[1], error)
                return
            conn = _socket.socket(family, socket.SOCK_STREAM, 0, fd)
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            HeaderReader(self, conn).start()

    def hand_over(self, sock: _socket.socket, origin: Origin) -> None:
        """The header is consumed: the socket continues as any accepted connection of a plain listener (the
        loops need only the socket's fileno, family and type: the C-level socket object has them)."""
        _Handover(self.loop.connect_accepted_socket(lambda: self.factory(origin), sock))  # type: ignore[arg-type]

    # asyncio.AbstractServer

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self.sock,) if self.serving else ()

    def close(self) -> None:
        """Stop accepting and drop connections still in their header; handed-over connections are untouched."""
        if not self.serving:
            return
        self.serving = False
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for reader in list(self.readers):
            reader.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def is_serving(self) -> bool:
        return self.serving

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        await self._closed.wait()


class _Handover:
    """Runs ``loop.connect_accepted_socket`` to its end without a Task: the coroutine is stepped from its
    waiter's callback (as proxy/tls/handshake.py steps ``start_tls``). The first step, made at once, creates
    the transport; the protocol is told ``connection_made`` by the loop soon after."""

    __slots__ = ("coro",)

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.step(None)

    def step(self, _done: Any) -> None:
        try:
            waiter = self.coro.send(None)
        except StopIteration:
            return
        except Exception as error:  # noqa: BLE001  (the transport is closed by then; nothing to answer)
            logger.debug("connection lost while handed over: %s", error)
            return
        waiter._asyncio_future_blocking = False  # the flag a Task would clear: we took the future
        waiter.add_done_callback(self.step)


def _peer(sock: _socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"
