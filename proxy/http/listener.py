"""One bound socket of the proxy: its scheme and port, the steps it runs before routing, its counters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.http.h1_connection import ClientConnection
    from proxy.http.pipeline import Pipeline
    from proxy.passthrough import SniAcceptor
    from proxy.routing.filters import RequestFilter
    from proxy.tls.handshake import HandshakeStats, TlsAcceptor
    from proxy.tls.native import NativeTlsServer
    from proxy.tls.store import CertStoreHolder


class Listener:
    """A listening socket: its scheme and port go into X-Forwarded-Proto/Port; it counts its connections."""

    __slots__ = ("scheme", "port", "public_port", "tls", "forwarded", "server", "active_connections",
                 "total_connections", "response_fields", "certificates", "handshakes", "acceptor", "native", "filters",
                 "ingress", "closing", "hide_server", "sni", "pipeline", "http2", "h2c")

    def __init__(self, scheme: str, port: int, server: asyncio.AbstractServer | None) -> None:
        self.scheme = scheme
        self.port = port
        # The port clients reach this listener on (a Gateway listener's port, a NodePort...), for
        # X-Forwarded-Port and redirects; the bound port unless told otherwise.
        self.public_port = port
        self.tls = scheme == "https"
        self.forwarded = b""
        self.set_public_port(port)
        # True for the Ingress listeners (--http-port, --https-port); False for a Gateway listener's own port.
        self.ingress = True
        # Set when the listener is being closed (a Gateway no longer asks for its port): no keep-alive.
        self.closing = False
        self.server = server
        # Fields added to every answer on this listener (HSTS on HTTPS).
        self.response_fields = b""
        # Drop the pods' Server header (the ConfigMap sets server-tokens: ingress-nginx's more_clear_headers).
        self.hide_server = False
        # The pipeline routing its requests (set by the server; it updates the pipeline's global settings).
        self.pipeline: Pipeline | None = None
        # HTTPS: the certificates served (for the domain-fronting check) and the acceptor that
        # terminates TLS and counts handshakes (completed, failed by reason).
        self.certificates: CertStoreHolder | None = None
        self.acceptor: TlsAcceptor | None = None
        self.handshakes: HandshakeStats | None = None
        # The native TLS transport (--tls-transport auto where compiled, or native): the listener's server, which
        # terminates TLS in compiled code (acceptor None).
        self.native: NativeTlsServer | None = None
        # With --enable-ssl-passthrough: the SNI reader in front of the acceptor (its table set at each publish).
        self.sni: SniAcceptor | None = None
        # Request filters every request on this listener runs before routing (the 421 check on HTTPS).
        self.filters: tuple[RequestFilter, ...] = ()
        # HTTP/2 (--http2): hands a new connection whose client chose h2 (ALPN, or the h2c preface) to the HTTP/2
        # protocol, with the bytes already read; None: HTTP/1.1 only.
        self.http2: Callable[[ClientConnection, bytes], None] | None = None
        # h2c with prior knowledge (a plain HTTP listener with --http2): puts a stand-in in front of a new
        # connection that looks at its first read only (proxy/http2/preface.py); None: no look.
        self.h2c: Callable[[ClientConnection], None] | None = None
        # Per-listener counters for metrics (the server keeps the totals over all listeners).
        self.active_connections = 0
        self.total_connections = 0

    def set_public_port(self, port: int) -> None:
        """The port clients reach this listener on (X-Forwarded-Port, redirects); new connections see it."""
        self.public_port = port
        self.forwarded = b"X-Forwarded-Proto: %s\r\nX-Forwarded-Port: %d\r\n" % (self.scheme.encode(), port)
