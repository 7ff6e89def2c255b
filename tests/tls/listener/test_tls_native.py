"""The native TLS transport (`--tls-transport native`, proxy/tls/native.py + _native.pyx) as an asyncio transport,
with real TLS clients on 127.0.0.1: buffered large writes to a slow reader, close with close_notify, abort, reading
paused with data held inside OpenSSL, ALPN and SNI (and the reuse of the last certificate choice), session tickets
shared between listeners, the listener's epoll set outliving its socket for the open connections, an app error.
The handshake counting cases run on both transports in test_tls_handshake_stats.py. Compiled builds only: in
pure-Python mode only the availability check runs (these cases are not generated, see native_support.py)."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from native_support import NATIVE_AVAILABLE, NATIVE_PROBLEM

from proxy import extensions
from proxy.tls.certs import Certificate, parse_secret
from proxy.tls.handshake import HandshakeStats
from proxy.tls.native import NativeTlsServer
from proxy.tls.store import CertStore, CertStoreHolder
from proxy.tls.tickets import new_ticket_keys

TIMEOUT = 10.0
HOST = "a.test"
# Cases that need the compiled transport: deselected (not skipped) where it is unavailable, see conftest.py.
native_only = pytest.mark.native_tls


def test_native_availability_matches_the_build():
    """Compiled runs (scripts/test-compiled) must load it; pure-Python runs must not (and say why)."""
    expected = os.environ.get("PYNGRESS_EXPECT_MODE", "")
    if extensions.disabled():
        assert not NATIVE_AVAILABLE and "pure-Python" in NATIVE_PROBLEM
    elif expected == extensions.COMPILED_MODE:
        assert NATIVE_AVAILABLE, NATIVE_PROBLEM


class Peer(asyncio.Protocol):
    """An app protocol driven by the test: records callbacks, exposes its transport."""

    def __init__(self, events: list[tuple[Any, ...]], made: asyncio.Queue[Peer], echo: bool) -> None:
        self.echo = echo
        self.events = events
        self.made = made
        self.transport: Any = None
        self.lost = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.data = bytearray()
        self.grew = asyncio.Event()
        self.pause_on_data = False
        self.fail_on = b""  # data_received raises on this payload

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        info = transport.get_extra_info("ssl_object")
        self.events.append(("made", info.selected_alpn_protocol(), info.pyngress_server_name, info.version()))
        self.made.put_nowait(self)

    def data_received(self, data: bytes) -> None:
        if self.fail_on and data == self.fail_on:
            raise RuntimeError("the app failed")
        self.events.append(("data", data))
        self.data += data
        self.grew.set()
        if self.pause_on_data:
            self.transport.pause_reading()
        if self.echo:
            self.transport.write(b"ok " + data)

    def eof_received(self) -> bool:
        self.events.append(("eof",))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))
        self.lost.set()

    def pause_writing(self) -> None:
        self.events.append(("pause",))
        self.writable.clear()

    def resume_writing(self) -> None:
        self.events.append(("resume",))
        self.writable.set()


class Listener:
    def __init__(self, server: NativeTlsServer, holder: CertStoreHolder) -> None:
        self.server = server
        self.holder = holder
        self.events: list[tuple[Any, ...]] = []
        self.made: asyncio.Queue[Peer] = asyncio.Queue()

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def next_peer(self) -> Peer:
        async with asyncio.timeout(TIMEOUT):
            return await self.made.get()


@pytest.fixture
async def listen(pki: Any) -> AsyncIterator[Callable[..., Awaitable[Listener]]]:
    started: list[NativeTlsServer] = []
    certificate = parse_secret(pki.leaf(HOST).secret())
    default = parse_secret(pki.leaf("default.test").secret())
    assert isinstance(certificate, Certificate) and isinstance(default, Certificate)

    async def factory(*, ticket_keys: bytes | None = None, echo: bool = False, fail_on: bytes = b"") -> Listener:
        holder = CertStoreHolder(CertStore({HOST: certificate}, default=default), ticket_keys=ticket_keys)
        listener: Listener | None = None

        def protocol() -> Peer:
            assert listener is not None
            peer = Peer(listener.events, listener.made, echo)
            peer.fail_on = fail_on
            return peer

        server = NativeTlsServer.listen("127.0.0.1", 0, holder.native_context(), protocol, stats=HandshakeStats(),
                                        handshake_timeout=TIMEOUT, select=holder.select_native, holder=holder)
        started.append(server)
        listener = Listener(server, holder)
        return listener

    yield factory
    for server in started:
        server.close()
        server.abort()


def client_context(pki: Any, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.cafile))
    context.set_alpn_protocols(["h2", "http/1.1"])
    if maximum is not None:
        context.maximum_version = maximum
    return context


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(function, *args), TIMEOUT * 2)


def connect(port: int, context: ssl.SSLContext, rcvbuf: int = 0, session: Any = None) -> ssl.SSLSocket:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(TIMEOUT)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.connect(("127.0.0.1", port))
    # suppress_ragged_eofs=False: an end without close_notify raises (SSLEOFError) instead of reading as b"".
    return context.wrap_socket(raw, server_hostname=HOST, session=session, suppress_ragged_eofs=False)


def read_to_end(tls: ssl.SSLSocket, chunk: int = 65536) -> tuple[bytes, str]:
    """Everything until the end, and how it ended: "close_notify" (b"" from recv), or the exception's name."""
    received = bytearray()
    while True:
        try:
            data = tls.recv(chunk)
        except (ssl.SSLError, OSError) as error:
            return bytes(received), type(error).__name__
        if not data:
            return bytes(received), "close_notify"
        received += data


def pattern(size: int, seed: int) -> bytes:
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // 251 + 1))[:size]


# ---------------------------------------------------------------- the cases


@native_only
async def test_alpn_sni_and_version_reach_the_app(pki, listen):
    listener = await listen()
    tls = await in_thread(connect, listener.port, client_context(pki))
    try:
        peer = await listener.next_peer()
        assert peer.events[0] == ("made", "h2", HOST, "TLSv1.3")
        assert tls.selected_alpn_protocol() == "h2"
        peername = peer.transport.get_extra_info("peername")
        assert peername == tls.getsockname()
        assert peer.transport.get_extra_info("sockname") == ("127.0.0.1", listener.port)
    finally:
        tls.close()


@native_only
async def test_large_writes_to_a_slow_reader_arrive_whole_in_order_with_flow_control(pki, listen):
    listener = await listen()
    tls = await in_thread(connect, listener.port, client_context(pki), 16384)
    sizes = [1, 70000, 3, 1 << 20, 5000, 2 << 20, 17, 300000]
    expected = b"".join(pattern(size, index) for index, size in enumerate(sizes))
    try:
        peer = await listener.next_peer()
        small_send_buffer(peer)
        peer.transport.set_write_buffer_limits(high=256 * 1024)
        # Everything written at once, ignoring pause_writing: the transport buffers what the socket refuses.
        for index, size in enumerate(sizes):
            peer.transport.write(pattern(size, index))
        assert peer.transport.get_write_buffer_size() > 256 * 1024
        assert ("pause",) in peer.events
        reading = asyncio.ensure_future(in_thread(_read_exactly, tls, len(expected)))
        async with asyncio.timeout(TIMEOUT * 2):
            await peer.writable.wait()
        assert await reading == expected
        assert peer.transport.get_write_buffer_size() == 0
        kinds = [event[0] for event in peer.events]
        assert kinds.index("pause") < kinds.index("resume")
    finally:
        tls.close()


def small_send_buffer(peer: Peer) -> None:
    """The server's kernel send buffer made small (through get_extra_info("socket")), so that writes of a few MiB
    are mostly the transport's to buffer (loopback's default can take them all)."""
    peer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)


def _read_exactly(tls: ssl.SSLSocket, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = tls.recv(min(4096, size - len(received)))  # a slow reader: small reads
        if not data:
            break
        received += data
    return bytes(received)


@native_only
async def test_close_flushes_the_buffer_then_sends_close_notify(pki, listen):
    listener = await listen()
    tls = await in_thread(connect, listener.port, client_context(pki), 16384)
    payload = pattern(3 << 20, 7)
    try:
        peer = await listener.next_peer()
        small_send_buffer(peer)
        peer.transport.write(payload)
        peer.transport.close()
        assert peer.transport.is_closing()
        peer.transport.write(b"after close: dropped")
        received, ending = await in_thread(read_to_end, tls)
        assert received == payload and ending == "close_notify"
        async with asyncio.timeout(TIMEOUT):
            await peer.lost.wait()
        assert peer.events[-1] == ("lost", None)
    finally:
        tls.close()


@native_only
async def test_abort_drops_the_buffer_and_closes_without_close_notify(pki, listen):
    listener = await listen()
    tls = await in_thread(connect, listener.port, client_context(pki), 16384)
    try:
        peer = await listener.next_peer()
        small_send_buffer(peer)
        peer.transport.write(pattern(4 << 20, 3))
        assert peer.transport.get_write_buffer_size() > 0
        peer.transport.abort()
        assert peer.transport.is_closing()
        received, ending = await in_thread(read_to_end, tls)
        assert len(received) < 4 << 20 and ending != "close_notify"
        async with asyncio.timeout(TIMEOUT):
            await peer.lost.wait()
        assert [event for event in peer.events if event[0] == "lost"] == [("lost", None)]
    finally:
        tls.close()


@native_only
async def test_client_close_notify_is_eof_then_lost(pki, listen):
    listener = await listen()
    tls = await in_thread(connect, listener.port, client_context(pki))
    peer = await listener.next_peer()
    await in_thread(tls.sendall, b"bye")
    await in_thread(tls.unwrap)  # close_notify, and waits for the server's (eof_received -> close)
    tls.close()
    async with asyncio.timeout(TIMEOUT):
        await peer.lost.wait()
    assert [event[0] for event in peer.events] == ["made", "data", "eof", "lost"]
    assert peer.events[-1] == ("lost", None)


@native_only
async def test_paused_reading_holds_records_until_resumed(pki, listen):
    """Two records in one TCP segment: the first is delivered, the app pauses; the second, already read from the
    socket by OpenSSL or still in the kernel, waits for resume_reading (which must not depend on readiness)."""
    listener = await listen()

    tls = await in_thread(connect, listener.port, client_context(pki))
    try:
        peer = await listener.next_peer()
        peer.pause_on_data = True
        # Two write() calls, two records, sent back to back (usually one TCP segment).
        await in_thread(lambda: (tls.write(b"first"), tls.write(b"second")))
        async with asyncio.timeout(TIMEOUT):
            while b"first" not in peer.data:
                peer.grew.clear()
                await peer.grew.wait()
        assert bytes(peer.data) == b"first"
        # The loop runs many times over; nothing more is delivered while paused.
        for _ in range(50):
            await asyncio.sleep(0)
        assert bytes(peer.data) == b"first" and not peer.transport.is_reading()
        peer.pause_on_data = False
        peer.transport.resume_reading()
        async with asyncio.timeout(TIMEOUT):
            while bytes(peer.data) != b"firstsecond":
                peer.grew.clear()
                await peer.grew.wait()
    finally:
        tls.close()


@native_only
@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
async def test_listeners_sharing_ticket_keys_resume_each_others_sessions(pki, listen, maximum):
    keys = new_ticket_keys()
    first, second = await listen(ticket_keys=keys, echo=True), await listen(ticket_keys=keys, echo=True)
    assert await in_thread(_resume, first.port, second.port, client_context(pki, maximum=maximum)) == (False, True)
    assert first.server.stats.completed == 1
    async with asyncio.timeout(TIMEOUT):
        while second.server.stats.completed < 1:
            await asyncio.sleep(0.005)


def _resume(first: int, second: int, context: ssl.SSLContext) -> tuple[bool, bool]:
    with connect(first, context) as tls:
        tls.sendall(b"one")
        assert tls.recv(100) == b"ok one"  # also reads the TLS 1.3 tickets sent before it
        session, reused = tls.session, tls.session_reused
    with connect(second, context, session=session) as tls:
        tls.sendall(b"two")
        assert tls.recv(100) == b"ok two"
        return reused, tls.session_reused


@native_only
async def test_the_certificate_follows_the_name_and_the_published_store(pki, listen):
    """The transport reuses the last certificate choice only for the same name and the same store."""
    listener = await listen()
    fresh = parse_secret(pki.leaf(HOST).secret())  # another certificate (and key) for HOST
    assert isinstance(fresh, Certificate)
    context = client_context(pki)
    context.check_hostname = False
    served = [await in_thread(_served, listener.port, context, name) for name in (HOST, HOST, None, "x.test", HOST)]
    names = [event[2] for event in listener.events if event[0] == "made"]
    assert names == [HOST, HOST, None, "x.test", HOST]
    assert served[0] == served[1] == served[4] != served[2] == served[3]  # HOST's, then the default's
    listener.holder.publish(CertStore({HOST: fresh}, default=listener.holder.current.default))
    now = await in_thread(_served, listener.port, context, HOST)
    assert now not in (served[0], served[2])


def _served(port: int, context: ssl.SSLContext, name: str | None) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    with context.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


@native_only
async def test_a_closed_listener_serves_its_open_connections_then_releases_its_epoll_set(pki, listen):
    listener = await listen(echo=True)
    tls = await in_thread(connect, listener.port, client_context(pki))
    try:
        peer = await listener.next_peer()
        listener.server.close()
        assert listener.server.native.epoll_fd >= 0  # the open connection still needs it
        await in_thread(tls.sendall, b"still there")
        assert await in_thread(tls.recv, 100) == b"ok still there"
    finally:
        tls.close()
    async with asyncio.timeout(TIMEOUT):
        await peer.lost.wait()
    assert listener.server.native.epoll_fd == -1


@native_only
async def test_an_app_error_is_reported_and_other_connections_go_on(pki, listen):
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    listener = await listen(echo=True, fail_on=b"boom")
    first = await in_thread(connect, listener.port, client_context(pki))
    second = await in_thread(connect, listener.port, client_context(pki))
    try:
        await listener.next_peer()
        await listener.next_peer()
        await in_thread(first.sendall, b"boom")
        async with asyncio.timeout(TIMEOUT):
            while not reported:
                await asyncio.sleep(0.005)
        assert isinstance(reported[0]["exception"], RuntimeError)
        await in_thread(second.sendall, b"fine")
        assert await in_thread(second.recv, 100) == b"ok fine"
    finally:
        first.close()
        second.close()
        loop.set_exception_handler(None)


def epoll_watched(epfd: int) -> list[int]:
    """The file descriptor numbers an epoll set holds entries for (Linux's /proc/self/fdinfo: one `tfd:` line each)."""
    with open(f"/proc/self/fdinfo/{epfd}", encoding="ascii") as info:
        return [int(line.split()[1]) for line in info if line.startswith("tfd:")]


@native_only
async def test_a_duplicated_socket_leaves_no_entry_in_the_epoll_set(pki, listen):
    """get_extra_info("socket") hands out the connection's socket; a dup of it keeps the open file alive after the
    transport closes its descriptor, and the kernel drops an epoll entry only when the file goes: the transport
    must take the socket out of its set itself, or the set keeps reporting (level-triggered) a descriptor it no
    longer has: the loop wakes for nothing at every turn, or a new connection given the same number is woken."""
    listener = await listen(echo=True)
    tls = await in_thread(connect, listener.port, client_context(pki))
    copy: socket.socket | None = None
    try:
        peer = await listener.next_peer()
        epfd = listener.server.native.epoll_fd
        fd = peer.transport.get_extra_info("socket").fileno()
        assert epoll_watched(epfd) == [fd]
        copy = peer.transport.get_extra_info("socket").dup()
        peer.transport.close()
        async with asyncio.timeout(TIMEOUT):
            await peer.lost.wait()
        await in_thread(tls.sendall, b"after the close")  # the dup's receive queue: readable from now on
        readable, _, _ = await in_thread(select.select, [copy], [], [], TIMEOUT)
        assert readable == [copy]
        assert epoll_watched(epfd) == []
        assert select.select([epfd], [], [], 0)[0] == []
    finally:
        if copy is not None:
            copy.close()
        tls.close()
