"""`--tls-transport auto|native`: HTTPS listeners whose TLS runs in compiled code (proxy/tls/_native.pyx), issue #14.

The asyncio path (proxy/tls/handshake.py) terminates TLS with uvloop's SSL protocol behind memory BIOs, and every
step of a handshake is a few Python callbacks; the native transport hands the socket to OpenSSL (`SSL_set_fd`) and
runs accept, handshake, reads and writes in C, so Python runs only the app protocol. bench/MEASUREMENTS.md ("A native
TLS transport") has the measurements.

What it serves as the asyncio path does: certificates chosen by SNI (the CertStoreHolder's store, OpenSSL's
servername callback), ALPN (h2 / http/1.1), session tickets (the workers' shared keys) and the TLS 1.2 session
cache, client certificates (auth-tls, through client_auth.py's libssl calls on the connection's `SSL *`),
handshakes counted by outcome (handshake.py's REASONS) and the handshake timeout. Listeners with a PROXY protocol
header (`use-proxy-protocol`) or SSL passthrough keep the asyncio path (the first bytes are read before TLS starts).

Compiled only: in pure-Python mode (PYNGRESS_NO_EXTENSIONS=1), without the compiled module, or with a libssl it
cannot share with the `ssl` module, `load()` says why and the listener uses the asyncio path. `choose()` decides
per listener: `auto` (the default) takes the native transport wherever it can serve and says which one it took in
one INFO line per process; an explicit `native` that cannot be served warns instead; `asyncio` never tries it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
import ssl
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

from proxy import extensions
from proxy.tls.handshake import _SSL_REASONS, OTHER, HandshakeStats

logger = logging.getLogger("pyngress.tls")

NATIVE = "native"
ASYNCIO = "asyncio"
AUTO = "auto"
TRANSPORTS: tuple[str, ...] = (AUTO, ASYNCIO, NATIVE)


@cache
def load() -> ModuleType | str:
    """The compiled module, or why it cannot be used here."""
    if extensions.disabled():
        return "pure-Python mode (PYNGRESS_NO_EXTENSIONS)"
    try:
        _native = importlib.import_module("proxy.tls._native")
    except ImportError as error:
        return f"the native TLS module is not compiled ({error})"
    from proxy.tls.store import new_server_context
    from proxy.tls.tickets import _libssl

    lib = _libssl()  # one libssl in the process, of the version `ssl` reports
    if isinstance(lib, str):
        return lib
    try:
        _native.check_context(new_server_context())
    except (RuntimeError, TypeError) as error:
        return str(error)
    return _native


def available() -> tuple[bool, str]:
    module = load()
    return (True, "") if not isinstance(module, str) else (False, module)


@cache
def warn_fallback(reason: str) -> None:
    logger.warning("--tls-transport native is unavailable (%s): TLS listeners use the asyncio transport", reason)


@cache
def announce(setting: str, transport: str, reason: str = "") -> None:
    """The startup line saying which transport the HTTPS listeners use (once per process and outcome)."""
    if reason:
        logger.info("HTTPS listeners use the %s TLS transport (--tls-transport %s: %s)", transport, setting, reason)
    else:
        logger.info("HTTPS listeners use the %s TLS transport (--tls-transport %s)", transport, setting)


def unsupported(context: ssl.SSLContext) -> str:
    """Why the native transport cannot handshake with `context` ("" if it can): `_ssl`'s own callbacks on it would
    read the connection's app data as the ssl module's SSL object, which the native transport does not make."""
    if context.sni_callback is not None:
        return "the listener's SSLContext has a Python SNI callback"
    if context.keylog_filename:
        return "the listener's SSLContext writes a key log (keylog_filename, SSLKEYLOGFILE)"
    return ""


def choose(setting: str, *, proxy_protocol: bool, passthrough: bool, context: Callable[[], ssl.SSLContext]) -> bool:
    """Whether an HTTPS listener under `--tls-transport setting` is served by the native transport (`context`:
    the listener context it would use), logged once.

    `auto` falls back without a warning (the asyncio path serves the same), an explicit `native` warns where the
    transport is missing or the context is not one it serves; PROXY protocol and passthrough listeners read their
    first bytes before TLS starts, so they keep the asyncio path under either, as documented."""
    if setting == ASYNCIO:
        announce(setting, ASYNCIO)
        return False
    if proxy_protocol or passthrough:
        announce(setting, ASYNCIO, "the PROXY protocol header is read before TLS starts" if proxy_protocol
                 else "SSL passthrough reads the ClientHello before TLS starts")
        return False
    ok, reason = available()
    if ok:
        reason = unsupported(context())
    if not reason:
        announce(setting, NATIVE)
        return True
    if setting == NATIVE:
        warn_fallback(reason)
    else:
        announce(setting, ASYNCIO, reason)
    return False


def classify(reason: str) -> str:
    """handshake.py's REASONS for an OpenSSL reason name ("WRONG_VERSION_NUMBER")."""
    return _SSL_REASONS.get(reason, OTHER)


class NativeTlsServer(asyncio.AbstractServer):
    """What a Listener keeps as its `server` (the asyncio.Server calls the proxy makes), around a NativeServer.

    The listening socket is bound here (reuse_address, reuse_port with workers) and watched by the loop; closing
    it stops accepting and leaves open connections alone, as asyncio.Server.close() does."""

    def __init__(self, native: Any, sock: socket.socket) -> None:
        self.native = native
        self._loop = asyncio.get_running_loop()
        self.sockets = [sock]
        self._closed = asyncio.Event()

    @classmethod
    def listen(cls, host: str, port: int, context: ssl.SSLContext, protocol_factory: Callable[[], Any], *,
               stats: HandshakeStats, handshake_timeout: float, select: Callable[[Any, str | None], ssl.SSLContext]
               | None, holder: Any = None, reuse_port: bool = False, backlog: int = 1024) -> NativeTlsServer:
        """`select`: the certificate choice per handshake; `holder`: the CertStoreHolder whose `select_native` it
        is, which lets the transport reuse the last answer while the holder's store stays the same."""
        module = load()
        if isinstance(module, str):
            raise RuntimeError(module)
        if handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout must be positive, got {handshake_timeout}")
        problem = unsupported(context)
        if problem:
            raise ValueError(problem)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
            native = module.NativeServer(asyncio.get_running_loop(), sock, context, protocol_factory, stats=stats,
                                         handshake_timeout=float(handshake_timeout), classify=classify,
                                         select=select, holder=holder)
            native.start()
        except BaseException:
            sock.close()
            raise
        return cls(native, sock)

    @property
    def handshakes(self) -> set[Any]:
        """The connections whose handshake is in progress."""
        return self.native.handshaking

    @property
    def stats(self) -> HandshakeStats:
        stats: HandshakeStats = self.native.stats
        return stats

    def close(self) -> None:
        if self._closed.is_set():
            return
        self.native.close()
        for sock in self.sockets:
            sock.close()
        self._closed.set()

    def abort(self) -> None:
        """Cut every handshake in progress (server shutdown): not counted as failures."""
        self.native.abort_handshakes()

    def is_serving(self) -> bool:
        return not self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def start_serving(self) -> None:
        """Serving from the start (listen() started it)."""

    async def serve_forever(self) -> None:
        await self.wait_closed()
