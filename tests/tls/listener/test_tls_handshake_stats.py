"""Handshakes counted by reason: real clients against a server built with `tls_protocol_factory`, and the same
cases against the native TLS transport (`--tls-transport native`, proxy/tls/native.py) where it is compiled.

Every test runs on asyncio and on uvloop (the production loop): both upgrade the plain TCP
transport with their own `start_tls`, and they differ in details this module depends on
(uvloop starts reading right after `connection_made`, whatever `pause_reading` said).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from native_support import TRANSPORTS_HERE

from proxy.tls.certs import Certificate, parse_secret
from proxy.tls.handshake import (
    REASONS,
    HandshakeStats,
    TlsAcceptor,
    classify,
    tls_protocol_factory,
)
from proxy.tls.native import NATIVE, NativeTlsServer
from proxy.tls.store import CertStore, CertStoreHolder

# Bound on every network wait: generous, since other suites share the two cores.
TIMEOUT = 10.0
HOST = "a.test"


@dataclass
class Recorder:
    """What the app protocols of one server saw, in order."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    resumed: asyncio.Event = field(default_factory=asyncio.Event)


class App(asyncio.Protocol):
    """Records every callback; answers "ok <data>", or on b"flood" writes FLOOD bytes as flow control allows."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.transport: Any = None
        self.paused = False
        self.to_send = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        self.recorder.events.append(
            ("made", getattr(ssl_object, "pyngress_server_name", "missing"), transport.get_extra_info("peername"))
        )

    def data_received(self, data: bytes) -> None:
        self.recorder.events.append(("data", data))
        if data == b"flood":
            self.to_send = FLOOD
            self._pump()
        else:
            self.transport.write(b"ok " + data)

    def _pump(self) -> None:
        while self.to_send and not self.paused:
            size = min(self.to_send, 64 * 1024)
            self.to_send -= size
            self.transport.write(b"x" * size)

    def eof_received(self) -> bool:
        self.recorder.events.append(("eof",))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.recorder.events.append(("lost",))
        self.recorder.lost.set()

    def pause_writing(self) -> None:
        self.paused = True
        self.recorder.events.append(("pause",))

    def resume_writing(self) -> None:
        self.paused = False
        self.recorder.events.append(("resume",))
        self.recorder.resumed.set()
        self._pump()


FLOOD = 8 << 20


@dataclass
class Server:
    port: int
    stats: HandshakeStats
    recorder: Recorder
    acceptor: TlsAcceptor | NativeTlsServer  # both: abort() and the handshakes in progress
    leaf: Any
    transport: str = "asyncio"

    def eof_answer(self) -> bytes | None:
        """What a client that closes before its ClientHello is complete may read: nothing on the asyncio path; with
        OpenSSL on the socket (native, as nginx) a fatal decode_error alert, sent before the connection closes."""
        return b"\x15\x03\x03\x00\x02\x02\x32" if self.transport == NATIVE else None

    def failures(self) -> dict[str, int]:
        return {reason: count for reason, count in self.stats.failures.items() if count}

    async def counted(self, total: int) -> None:
        """Wait (bounded) until `total` handshakes have ended, completed or failed."""
        async with asyncio.timeout(TIMEOUT):
            while self.stats.completed + sum(self.stats.failures.values()) < total:
                await asyncio.sleep(0.005)


@pytest.fixture(params=TRANSPORTS_HERE)
async def start(pki: Any, request: Any) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Servers of one transport: the asyncio path (TlsAcceptor) or --tls-transport native (proxy/tls/native.py,
    compiled builds only: not generated in pure-Python mode, see native_support.py)."""
    transport = request.param
    servers: list[tuple[Any, Any]] = []
    leaf = pki.leaf(HOST)
    certificate = parse_secret(leaf.secret())
    assert isinstance(certificate, Certificate), certificate
    default = parse_secret(pki.leaf("default.test").secret())
    assert isinstance(default, Certificate), default

    async def factory(*, handshake_timeout: float = TIMEOUT) -> Server:
        holder = CertStoreHolder(CertStore({HOST: certificate}, default=default))
        stats = HandshakeStats()
        recorder = Recorder()
        if transport == NATIVE:
            native = NativeTlsServer.listen("127.0.0.1", 0, holder.native_context(), lambda: App(recorder),
                                            stats=stats, handshake_timeout=handshake_timeout,
                                            select=holder.select_native)
            servers.append((native, native))
            return Server(native.sockets[0].getsockname()[1], stats, recorder, native, leaf, NATIVE)
        acceptor = tls_protocol_factory(
            lambda: App(recorder), holder.server_context(), handshake_timeout=handshake_timeout, stats=stats
        )
        server = await asyncio.get_running_loop().create_server(acceptor, "127.0.0.1", 0)
        servers.append((server, acceptor))
        return Server(server.sockets[0].getsockname()[1], stats, recorder, acceptor, leaf)

    yield factory
    for server, acceptor in servers:
        server.close()
        acceptor.abort()
        async with asyncio.timeout(TIMEOUT):
            await server.wait_closed()


def verifying(pki: Any) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.cafile))


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(function, *args), TIMEOUT * 2)


def _tls_exchange(port: int, context: ssl.SSLContext, server_hostname: str | None, data: bytes) -> tuple[bytes, int]:
    """Handshake, send, read the answer; returns it and the client's local port."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    with raw, context.wrap_socket(raw, server_hostname=server_hostname) as tls:
        tls.sendall(data)
        return tls.recv(1000), tls.getsockname()[1]


def _raw(port: int, data: bytes, close_write: bool = False) -> bytes:
    """Send plain bytes (then EOF if `close_write`); everything the server sends back until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        if data:
            sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def _client_hello(context: ssl.SSLContext) -> bytes:
    """The bytes of a real ClientHello, made with a memory BIO."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _hello_then_close(port: int, hello: bytes) -> bytes:
    """Send a ClientHello, read the start of the server's answer, and close mid-handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(hello)
        return sock.recv(5)


def _one_flight(port: int, context: ssl.SSLContext, payload: bytes) -> bytes:
    """TLS 1.3 over a memory BIO: the client's Finished, application data and close_notify leave in
    one segment, so the server reads the data in the same read that completes its handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=HOST)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    sock.sendall(pending)
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("server closed during the handshake") from None
                incoming.write(data)
        assert tls.version() == "TLSv1.3"
        tls.write(payload)
        try:
            tls.unwrap()  # writes close_notify, then wants the server's
        except ssl.SSLWantReadError:
            pass
        sock.sendall(outgoing.read())
        sock.shutdown(socket.SHUT_WR)
        received = []
        while chunk := sock.recv(65536):
            received.append(chunk)
        return b"".join(received)


# ---------------------------------------------------------------- completed handshakes


async def test_good_handshake_reaches_the_app_with_sni_peer_and_data(pki, start):
    server = await start()
    reply, client_port = await in_thread(_tls_exchange, server.port, verifying(pki), "A.TEST", b"hello")
    assert reply == b"ok hello"
    async with asyncio.timeout(TIMEOUT):
        await server.recorder.lost.wait()
    made, *rest = server.recorder.events
    assert made == ("made", "a.test", ("127.0.0.1", client_port))
    assert ("data", b"hello") in rest and rest[-1] == ("lost",)
    assert server.stats.completed == 1 and server.failures() == {}


async def test_data_and_eof_arriving_with_the_finished_message_are_not_lost(pki, start):
    server = await start()
    payload = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n" * 40
    await in_thread(_one_flight, server.port, verifying(pki), payload)
    async with asyncio.timeout(TIMEOUT):
        await server.recorder.lost.wait()
    events = server.recorder.events
    assert events[0][:2] == ("made", "a.test")
    received = b"".join(event[1] for event in events if event[0] == "data")
    assert received == payload
    kinds = [event[0] for event in events]
    assert kinds[-2:] == ["eof", "lost"] and kinds.count("made") == 1
    assert server.stats.completed == 1


async def test_write_flow_control_reaches_the_app(pki, start):
    server = await start()

    def flood() -> int:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            with verifying(pki).wrap_socket(raw, server_hostname=HOST) as tls:
                tls.sendall(b"flood")
                # Not reading yet: the server's buffers fill up and its SSL transport pauses the app.
                asyncio.run_coroutine_threadsafe(_wait_for_event(server, "pause"), loop).result(TIMEOUT)
                total = 0
                while total < FLOOD:
                    chunk = tls.recv(1 << 20)
                    if not chunk:
                        break
                    total += len(chunk)
                return total

    loop = asyncio.get_running_loop()
    assert await in_thread(flood) == FLOOD
    async with asyncio.timeout(TIMEOUT):
        await server.recorder.resumed.wait()
    kinds = [event[0] for event in server.recorder.events]
    assert kinds.index("pause") < kinds.index("resume")


async def _wait_for_event(server: Server, kind: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not any(event[0] == kind for event in server.recorder.events):
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
async def test_sessions_resume_through_the_acceptor(pki, start, maximum):
    server = await start()
    context = verifying(pki)
    if maximum is not None:
        context.maximum_version = maximum

    def twice() -> tuple[bool, bool]:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        with raw, context.wrap_socket(raw, server_hostname=HOST) as tls:
            tls.sendall(b"one")
            tls.recv(100)  # also reads the TLS 1.3 tickets
            session, first = tls.session, tls.session_reused
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        with raw, context.wrap_socket(raw, server_hostname=HOST, session=session) as tls:
            tls.sendall(b"two")
            assert tls.recv(100) == b"ok two"
            return first, tls.session_reused

    assert await in_thread(twice) == (False, True)
    await server.counted(2)
    assert server.stats.completed == 2


# ---------------------------------------------------------------- failures, by reason


async def _still_serves(pki: Any, server: Server) -> None:
    before = server.stats.completed
    reply, _ = await in_thread(_tls_exchange, server.port, verifying(pki), HOST, b"after")
    assert reply == b"ok after"
    await server.counted(before + sum(server.stats.failures.values()) + 1)
    assert server.stats.completed == before + 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", "plain_http"),
        (b"POST /login HTTP/1.0\r\nContent-Length: 0\r\n\r\n", "plain_http"),
        (b"\x00\x01\x02 not a TLS record \r\n" * 4, "not_tls"),
        (b"", "client_closed"),
    ],
    ids=["http-get", "http-post", "garbage", "connect-and-close"],
)
async def test_plain_bytes_on_the_tls_port(pki, start, data, reason):
    server = await start()
    # Closed by the server, nothing answered; the empty case closes its side at once. With OpenSSL on the socket
    # (native, as nginx) OpenSSL answers an EOF in the middle of a record with a decode_error alert before closing.
    answer = await in_thread(_raw, server.port, data, not data)
    assert answer == b"" or (not data and answer == server.eof_answer())
    await server.counted(1)
    assert server.failures() == {reason: 1} and server.stats.completed == 0
    assert server.recorder.events == []  # the app protocol never saw the connection
    await _still_serves(pki, server)


async def test_many_connections_closed_before_any_byte_are_never_counted_as_completed(pki, start):
    # uvloop reads the EOF before its SSL protocol has started: start_tls then returns a dead transport.
    server = await start()
    for _ in range(20):
        assert await in_thread(_raw, server.port, b"", True) in (b"", server.eof_answer())
    await server.counted(20)
    assert server.failures() == {"client_closed": 20} and server.stats.completed == 0
    assert server.recorder.events == []
    await _still_serves(pki, server)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_1_0_and_1_1_are_counted_as_unsupported_protocol(pki, start):
    server = await start()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    try:
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        _client_hello(old)
    except (ssl.SSLError, ValueError) as error:
        pytest.skip(f"the local OpenSSL cannot make a TLS 1.0/1.1 client: {error}")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await in_thread(_tls_exchange, server.port, old, HOST, b"x")
    await server.counted(1)
    assert server.failures() == {"unsupported_protocol": 1}
    await _still_serves(pki, server)


async def test_no_shared_cipher(pki, start):
    server = await start()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA:AES256-GCM-SHA384")  # no forward secrecy: the listener offers none of these
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await in_thread(_tls_exchange, server.port, context, HOST, b"x")
    await server.counted(1)
    assert server.failures() == {"no_shared_cipher": 1}
    await _still_serves(pki, server)


async def test_client_trusting_another_ca_aborts_with_unknown_ca(pki, start, tmp_path: Path):
    server = await start()
    (tmp_path / "other").mkdir()
    other = type(pki)(tmp_path / "other", name="unrelated")  # a second root the server does not use
    with pytest.raises(ssl.SSLCertVerificationError):
        await in_thread(_tls_exchange, server.port, verifying(other), HOST, b"x")
    await server.counted(1)
    assert server.failures() == {"unknown_ca": 1}
    await _still_serves(pki, server)


async def test_client_rejecting_the_name_counts_as_bad_certificate(pki, start):
    server = await start()
    with pytest.raises(ssl.SSLCertVerificationError):
        # The default certificate (default.test) answers b.test, which it does not cover.
        await in_thread(_tls_exchange, server.port, verifying(pki), "b.test", b"x")
    await server.counted(1)
    assert server.failures() == {"bad_certificate": 1}
    await _still_serves(pki, server)


async def test_client_closing_mid_handshake(pki, start):
    server = await start()
    hello = _client_hello(verifying(pki))
    start_of_answer = await in_thread(_hello_then_close, server.port, hello)
    assert start_of_answer[:1] == b"\x16"  # the server's handshake record had started
    await server.counted(1)
    assert server.failures() == {"client_closed": 1}
    await _still_serves(pki, server)


async def test_silent_client_times_out(pki, start):
    server = await start(handshake_timeout=0.2)
    # Reads until the server gives up: a bounded wait (socket timeout), not a sleep.
    assert await in_thread(_raw, server.port, b"") == b""
    await server.counted(1)
    assert server.failures() == {"timeout": 1}
    await _still_serves(pki, server)


async def test_abort_cuts_handshakes_in_progress_without_counting_them(pki, start):
    server = await start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        async with asyncio.timeout(TIMEOUT):
            while not server.acceptor.handshakes:
                await asyncio.sleep(0.005)
        server.acceptor.abort()
        assert await in_thread(sock.recv, 10) == b""
    async with asyncio.timeout(TIMEOUT):  # a handshake leaves the set when its outcome is settled
        while server.acceptor.handshakes:
            await asyncio.sleep(0.005)
    assert server.stats.completed == 0 and server.failures() == {}


# ---------------------------------------------------------------- plain parts


def test_classify_maps_exceptions_to_the_fixed_reasons():
    def ssl_error(reason: str) -> ssl.SSLError:
        error = ssl.SSLError(1, f"[SSL: {reason}]")
        error.reason = reason  # type: ignore[misc]
        return error

    assert classify(ssl_error("HTTP_REQUEST")) == "plain_http"
    assert classify(ssl_error("TLSV1_ALERT_UNKNOWN_CA")) == "unknown_ca"
    assert classify(ssl_error("SOMETHING_NEW")) == "other"
    assert classify(ssl.SSLEOFError(8, "EOF")) == "client_closed"
    assert classify(ConnectionAbortedError("SSL handshake is taking longer than 1 seconds: aborting")) == "timeout"
    assert classify(TimeoutError()) == "timeout"
    assert classify(ConnectionResetError()) == "client_closed"
    assert classify(ValueError("?")) == "other"
    assert {classify(e) for e in (ssl_error("X"), TimeoutError(), ConnectionResetError())} <= set(REASONS)


def test_stats_start_with_every_reason_and_merge_snapshots():
    stats = HandshakeStats()
    assert stats.failures == dict.fromkeys(REASONS, 0)
    stats.completed = 3
    stats.failures["timeout"] = 2
    other = HandshakeStats()
    other.completed = 1
    other.failures["plain_http"] = 4
    merged = HandshakeStats.merge([stats.snapshot(), other.snapshot(), {"failures": {"from_the_future": 1}}])
    assert merged.completed == 4
    assert {k: v for k, v in merged.failures.items() if v} == {"timeout": 2, "plain_http": 4, "other": 1}


def test_handshake_timeout_must_be_positive():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError):
        tls_protocol_factory(asyncio.Protocol, context, handshake_timeout=0, stats=HandshakeStats())
