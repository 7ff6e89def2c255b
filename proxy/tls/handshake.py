"""TLS handshakes that are counted: completed, and failed by reason.

A listener made with ``create_server(ssl=context)`` never tells the application about a
handshake that failed: asyncio's and uvloop's SSL protocols swallow the ``SSLError`` (an
``OSError``, logged only in debug mode) and the app protocol is never created. So the HTTPS
listener accepts plain TCP instead, with a small :class:`HandshakeProtocol` per connection that
upgrades the transport itself with ``loop.start_tls`` (no Task: the coroutine is stepped from
the waiter's callback), counts the outcome in :class:`HandshakeStats`, and on success hands the
TLS transport to the real app protocol. From then on the SSL protocol calls the app protocol
directly, so nothing on the request path changes (bench/tls.py measures both listeners).

Failure reasons form a small fixed set (:data:`REASONS`, bounded label cardinality). Each one
was provoked by a real client to read OpenSSL's actual reason code (the cases are in
tests/tls/listener/test_tls_handshake_stats.py); neighbouring codes are mapped by their names:

==========================  ==============================================================
``timeout``                 no complete handshake within ``handshake_timeout``
``plain_http``              an HTTP request on the TLS port (OpenSSL ``HTTP_REQUEST``)
``not_tls``                 other bytes that are not a TLS record (``WRONG_VERSION_NUMBER``...)
``unsupported_protocol``    the client offers only versions we refuse (TLS < 1.2)
``no_shared_cipher``        no common cipher suite, group or signature algorithm
``unknown_ca``              the client does not trust our chain (alert ``unknown_ca``)
``bad_certificate``         the client rejected our certificate otherwise (name, expiry...)
``client_closed``           EOF or reset during the handshake
``other``                   anything else (logged at debug with OpenSSL's reason)
==========================  ==============================================================
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

logger = logging.getLogger("pyngress.tls")

TIMEOUT = "timeout"
PLAIN_HTTP = "plain_http"
NOT_TLS = "not_tls"
UNSUPPORTED_PROTOCOL = "unsupported_protocol"
NO_SHARED_CIPHER = "no_shared_cipher"
UNKNOWN_CA = "unknown_ca"
BAD_CERTIFICATE = "bad_certificate"
CLIENT_CLOSED = "client_closed"
OTHER = "other"
REASONS: tuple[str, ...] = (
    TIMEOUT,
    PLAIN_HTTP,
    NOT_TLS,
    UNSUPPORTED_PROTOCOL,
    NO_SHARED_CIPHER,
    UNKNOWN_CA,
    BAD_CERTIFICATE,
    CLIENT_CLOSED,
    OTHER,
)

# OpenSSL reason codes (SSLError.reason) → our reason. Alerts are the ones the *client* sent us.
_SSL_REASONS: Mapping[str, str] = {
    "HTTP_REQUEST": PLAIN_HTTP,
    "HTTPS_PROXY_REQUEST": PLAIN_HTTP,  # "CONNECT host:443" sent in the clear
    "WRONG_VERSION_NUMBER": NOT_TLS,
    "UNKNOWN_PROTOCOL": NOT_TLS,
    "RECORD_LENGTH_MISMATCH": NOT_TLS,
    "PACKET_LENGTH_TOO_LONG": NOT_TLS,
    "UNSUPPORTED_PROTOCOL": UNSUPPORTED_PROTOCOL,
    "VERSION_TOO_LOW": UNSUPPORTED_PROTOCOL,
    "NO_PROTOCOLS_AVAILABLE": UNSUPPORTED_PROTOCOL,
    "TLSV1_ALERT_PROTOCOL_VERSION": UNSUPPORTED_PROTOCOL,
    "NO_SHARED_CIPHER": NO_SHARED_CIPHER,
    "NO_SHARED_GROUPS": NO_SHARED_CIPHER,
    "NO_SUITABLE_KEY_SHARE": NO_SHARED_CIPHER,
    "NO_SUITABLE_SIGNATURE_ALGORITHM": NO_SHARED_CIPHER,
    "NO_CIPHERS_AVAILABLE": NO_SHARED_CIPHER,
    "SSLV3_ALERT_HANDSHAKE_FAILURE": NO_SHARED_CIPHER,  # what a client sends when it finds nothing in common
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": NO_SHARED_CIPHER,
    "TLSV1_ALERT_UNKNOWN_CA": UNKNOWN_CA,
    "SSLV3_ALERT_BAD_CERTIFICATE": BAD_CERTIFICATE,
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": BAD_CERTIFICATE,  # OpenSSL clients: hostname mismatch
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": BAD_CERTIFICATE,
    "SSLV3_ALERT_CERTIFICATE_REVOKED": BAD_CERTIFICATE,
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": BAD_CERTIFICATE,
    "TLSV1_ALERT_DECRYPT_ERROR": BAD_CERTIFICATE,  # the client could not verify our signature
    "UNEXPECTED_EOF_WHILE_READING": CLIENT_CLOSED,
}

_TIMEOUT_MESSAGE = "handshake is taking longer"


def classify(exc: BaseException) -> str:
    """The reason (one of REASONS) for an exception that ended a server-side handshake."""
    if isinstance(exc, ssl.SSLError):
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return CLIENT_CLOSED
        return _SSL_REASONS.get(exc.reason or "", OTHER)
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    if isinstance(exc, ConnectionAbortedError) and _TIMEOUT_MESSAGE in str(exc):
        return TIMEOUT  # asyncio and uvloop abort a slow handshake with this message
    if isinstance(exc, (ConnectionError, EOFError)):
        return CLIENT_CLOSED
    return OTHER


class HandshakeStats:
    """Counts of one listener's handshakes: plain integers, turned into metrics at scrape time."""

    __slots__ = ("completed", "failures")

    def __init__(self) -> None:
        self.completed = 0
        # Every reason present from the start, so each series exists (at 0) before its first failure.
        self.failures: dict[str, int] = dict.fromkeys(REASONS, 0)

    def snapshot(self) -> dict[str, Any]:
        """Plain data, the form in which worker processes hand their counts to the control process."""
        return {"completed": self.completed, "failures": dict(self.failures)}

    @classmethod
    def merge(cls, snapshots: Iterable[Mapping[str, Any]]) -> HandshakeStats:
        """The sum of several snapshots (one per worker process)."""
        total = cls()
        for item in snapshots:
            total.completed += int(item.get("completed", 0))
            for reason, count in (item.get("failures") or {}).items():
                key = reason if reason in total.failures else OTHER
                total.failures[key] += int(count)
        return total


class TlsAcceptor:
    """The protocol factory of a TLS listener bound as plain TCP: ``loop.create_server(acceptor, ...)``.

    Each accepted connection gets a :class:`HandshakeProtocol`; after a good handshake
    ``app_factory()`` makes the protocol that serves the connection, exactly as if the listener
    had been created with ``ssl=ssl_context``.
    """

    __slots__ = ("app_factory", "closing", "handshake_timeout", "handshakes", "ssl_context", "stats")

    def __init__(
        self,
        app_factory: Callable[[], asyncio.BaseProtocol],
        ssl_context: ssl.SSLContext,
        *,
        handshake_timeout: float,
        stats: HandshakeStats,
    ) -> None:
        if handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout must be positive, got {handshake_timeout}")
        self.app_factory = app_factory
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.stats = stats
        # Connections whose handshake is in progress (for abort()).
        self.handshakes: set[HandshakeProtocol] = set()
        self.closing = False

    def __call__(self) -> HandshakeProtocol:
        return HandshakeProtocol(self)

    def abort(self) -> None:
        """Cut every handshake in progress (server shutdown); these are not counted as failures."""
        self.closing = True
        for handshake in list(self.handshakes):
            handshake.transport.abort()


def tls_protocol_factory(
    app_factory: Callable[[], asyncio.BaseProtocol],
    ssl_context: ssl.SSLContext,
    *,
    handshake_timeout: float,
    stats: HandshakeStats,
) -> TlsAcceptor:
    """A protocol factory for ``create_server`` (no ``ssl=``) that terminates TLS and counts handshakes."""
    return TlsAcceptor(app_factory, ssl_context, handshake_timeout=handshake_timeout, stats=stats)


class HandshakeProtocol(asyncio.Protocol):
    """One connection until its handshake is over; then a forwarder nobody calls any more.

    ``connection_made`` runs ``loop.start_tls`` up to its only suspension point *synchronously*
    (the coroutine is stepped by hand, not by a Task): uvloop starts reading a new transport
    right after ``connection_made`` returns, whatever ``pause_reading`` said, so the SSL
    protocol must own the transport by then or the ClientHello would reach this plain protocol.
    Stepping by hand also spares the Task a connection would otherwise cost.

    Until the handover this object is the SSL protocol's app protocol: what arrives right behind
    the client's Finished (data, EOF, loss, a write pause) is kept and replayed to the app
    protocol in order. Callbacks the SSL protocol scheduled before the handover still land
    here and are forwarded.
    """

    __slots__ = ("acceptor", "app", "app_factory", "coro", "eof", "lost", "lost_exc", "received", "transport",
                 "write_paused")

    def __init__(self, acceptor: TlsAcceptor) -> None:
        self.acceptor = acceptor
        # What makes the app protocol after the handshake: the acceptor's, or one that knows the client
        # address a PROXY protocol header named (proxy/http/proxy_protocol.py).
        self.app_factory = acceptor.app_factory
        self.transport: Any = None
        self.coro: Coroutine[Any, Any, None] | None = None
        self.app: asyncio.BaseProtocol | None = None
        self.received: list[bytes] | None = None
        self.eof = False
        self.lost = False
        self.lost_exc: Exception | None = None
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.acceptor.handshakes.add(self)
        self.coro = self._handshake()
        self._step(None)

    def _step(self, _done: Any) -> None:
        """Run the handshake coroutine to its next suspension (the handshake's waiter future)."""
        coro = self.coro
        if coro is None:
            return
        try:
            waiter = coro.send(None)
        except StopIteration:
            self.coro = None
            return
        waiter._asyncio_future_blocking = False  # the flag a Task would clear: we took the future
        waiter.add_done_callback(self._step)

    async def _handshake(self) -> None:
        acceptor = self.acceptor
        transport = self.transport
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport,
                self,
                acceptor.ssl_context,
                server_side=True,
                ssl_handshake_timeout=acceptor.handshake_timeout,
            )
        except Exception as exc:  # noqa: BLE001  (every failure is counted; start_tls closed the socket)
            tls = None
            failure: Exception | None = exc
        else:
            failure = None
        finally:
            acceptor.handshakes.discard(self)
        if acceptor.closing:
            return
        if tls is None or tls.get_extra_info("ssl_object") is None:
            # Lost with no error before the handshake was done: asyncio then hands back no transport,
            # uvloop a dead one (EOF before the SSL protocol even started) with no SSL object.
            transport.abort()
            reason = CLIENT_CLOSED if failure is None else classify(failure)
            acceptor.stats.failures[reason] += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("TLS handshake failed (%s) from %s: %s", reason, _peer(transport),
                             "connection lost" if failure is None else f"{type(failure).__name__}: {failure}")
            return
        acceptor.stats.completed += 1
        self._hand_over(tls)  # even if lost since: the app then sees it open and close, like any connection

    def _hand_over(self, tls: asyncio.Transport) -> None:
        app = self.app_factory()
        tls.set_protocol(app)
        app.connection_made(tls)
        # The app may have handed the connection to another protocol (HTTP/2, chosen by ALPN): replay to that one.
        app = self.app = tls.get_protocol()
        if self.write_paused:
            app.pause_writing()
        received = self.received
        if received is not None:
            self.received = None
            for chunk in received:
                app.data_received(chunk)  # type: ignore[attr-defined]
        if self.eof:
            app.eof_received()  # type: ignore[attr-defined]
        if self.lost:
            app.connection_lost(self.lost_exc)

    # The SSL protocol's app-protocol callbacks: kept until the handover, forwarded after it.

    def data_received(self, data: bytes) -> None:
        app = self.app
        if app is not None:
            app.data_received(data)  # type: ignore[attr-defined]
        elif self.received is None:
            self.received = [data]
        else:
            self.received.append(data)

    def eof_received(self) -> bool | None:
        app = self.app
        if app is not None:
            return app.eof_received()  # type: ignore[attr-defined]
        self.eof = True
        return None  # over TLS the SSL protocol closes after EOF whatever this says

    def connection_lost(self, exc: Exception | None) -> None:
        app = self.app
        if app is not None:
            app.connection_lost(exc)
            return
        self.lost = True
        self.lost_exc = exc

    def pause_writing(self) -> None:
        app = self.app
        if app is not None:
            app.pause_writing()
        else:
            self.write_paused = True

    def resume_writing(self) -> None:
        app = self.app
        if app is not None:
            app.resume_writing()
        else:
            self.write_paused = False


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "?"


class ReplayedHandshake(HandshakeProtocol):
    """A handshake whose first bytes were already read (by the SNI reader of SSL passthrough).

    ``loop.start_tls`` has the SSL protocol take over the transport and, on the next callbacks,
    calls its ``connection_made`` and resumes reading; the bytes read before are fed to it right
    after those (a callback scheduled behind them), so OpenSSL sees them first, as if they had
    just arrived. Nothing is consumed twice and the plain HTTPS listener never takes this path.
    """

    __slots__ = ("replay",)

    def __init__(self, acceptor: TlsAcceptor, replay: bytes) -> None:
        super().__init__(acceptor)
        self.replay = replay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().call_soon(self._feed)

    def _feed(self) -> None:
        data, self.replay = self.replay, b""
        transport = self.transport
        if not data or transport.is_closing():
            return
        feed_protocol(transport.get_protocol(), data)


def feed_protocol(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Hand `data` to a protocol as if its transport had read it (buffered protocols included)."""
    if isinstance(protocol, asyncio.BufferedProtocol) or hasattr(protocol, "buffer_updated"):
        view = memoryview(data)
        while view:
            buffer = memoryview(protocol.get_buffer(len(view)))  # type: ignore[attr-defined]
            size = min(len(buffer), len(view))
            if size == 0:
                raise RuntimeError("protocol offered an empty buffer")
            buffer[:size] = view[:size]
            protocol.buffer_updated(size)
            view = view[size:]
    else:
        protocol.data_received(data)  # type: ignore[attr-defined]
