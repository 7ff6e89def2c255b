"""The proxy server: its listeners, the clock that checks timeouts, draining, and the running tables' counters.

Each listener accepts connections for one scheme and port; every connection starts as an HTTP/1.1
``ClientConnection`` (proxy/http/h1_connection.py) whose requests the listener's ``Pipeline``
routes, and becomes an ``H2ClientConnection`` (proxy/http2/) when its client chose HTTP/2 (ALPN, or
the h2c preface on a plain listener), whose streams the same pipeline routes. Timeouts are checked
by one clock tick per server that walks the open connections (nginx's cached-time idea), so no timer
is created or cancelled per request.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING

from proxy import gc_freeze
from proxy.accesslog import AccessLog
from proxy.http import auth_request, mirror
from proxy.http.downstream import ServerState
from proxy.http.forwarded import ForwardedTrust
from proxy.http.h1_connection import ClientConnection
from proxy.http.ids import ids
from proxy.http.listener import Listener
from proxy.http.pipeline import MisdirectedRequest, Pipeline
from proxy.http.proxy_protocol import Origin, ProxyProtocolServer
from proxy.http.ratelimit import ClientLimiter, ClientLimiters, Limiters, RateLimiter
from proxy.http2 import sniff, take_over
from proxy.passthrough import PassthroughStats, SniAcceptor, SniReader
from proxy.routing.access import AddressSet, Block, user_agent_matcher
from proxy.routing.global_config import GlobalConfig
from proxy.routing.passthrough import EMPTY as NO_PASSTHROUGH
from proxy.routing.passthrough import SniTable, ingress_passthrough, joined
from proxy.runtime import Runtime, RuntimeHolder
from proxy.settings import Settings
from proxy.stats import UNMATCHED, RouteLabels, RouteStats, TrafficStats, backend_labels, route_labels
from proxy.tls import native as native_tls
from proxy.tls.handshake import HandshakeProtocol, HandshakeStats, TlsAcceptor, tls_protocol_factory
from proxy.tls.native import NativeTlsServer
from proxy.tls.store import offer_http2
from proxy.tracing.exporter import SpanExporter
from proxy.tracing.tracer import Tracer

if TYPE_CHECKING:
    from proxy.routing.model import Route
    from proxy.tls.store import CertStoreHolder
    from proxy.upstream.cluster import Upstream

logger = logging.getLogger("pyngress.proxy")

# Seconds between a publish and the GC freeze that follows it (see ProxyServer._freeze).
FREEZE_DELAY = 1.0


class ProxyServer(ServerState):
    """HTTP (and later HTTPS) listeners in front of the running configuration in ``holder``.

    (ServerState, its base, holds what the request path reads per request: the clock, limits, counters.)"""

    def __init__(self, *, settings: Settings, holder: RuntimeHolder, freeze_gc: bool = False) -> None:
        self.settings = settings
        offer_http2(settings.http2)  # before the first TLS context is made (see proxy.tls.store)
        # Freeze every live object out of the cyclic GC's reach at each publish (the process's
        # choice: the CLI turns it on; a test process sharing the interpreter leaves it off).
        self.freeze_gc = freeze_gc
        self._freezing: asyncio.TimerHandle | None = None
        self._frozen = False
        self.route_metrics = settings.route_metrics
        self.holder = holder
        # Limits and timeouts copied to plain attributes: the hot path reads them per request.
        self.max_request_line = settings.max_request_line
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        # Raw bytes one unfinished head may take (httptools buffers a partial field), plus one read.
        self.max_head_bytes = settings.max_request_line + settings.max_header_bytes + 256 * 1024
        self.header_timeout = settings.client_header_timeout
        self.keepalive_timeout = settings.client_keepalive_timeout
        # nginx client_body_timeout and send_timeout.
        self.body_timeout = settings.client_body_timeout
        self.send_timeout = settings.client_send_timeout
        self.read_timeout = settings.upstream_read_timeout
        # nginx proxy_send_timeout and proxy_connect_timeout (the ConfigMap's global forms, or the flags).
        self.upstream_send_timeout = settings.upstream_read_timeout
        self.connect_timeout = settings.upstream_connect_timeout
        # Requests per client connection (0: no limit; nginx keepalive_requests).
        self.keepalive_requests = settings.keepalive_requests
        self.retries = max(1, settings.upstream_retries)
        # The global configuration applied last (proxy.routing.global_config): what follows is its compiled form.
        self.global_config = GlobalConfig.from_settings(settings)
        # Header lines of every answer on HTTPS listeners (Strict-Transport-Security), on every listener
        # (Server, with server-tokens), and the listener filter of block-cidrs / block-user-agents.
        self.tls_fields = self.global_config.hsts_field()
        self.all_fields = b""
        self.block: Block | None = None
        # What a trusted proxy in front may say about the client (None: nothing, the default), and the largest
        # body of Ingress routes without proxy-body-size: the flags', then the ConfigMap's (_apply_global).
        self.trust = ForwardedTrust.from_settings(settings)
        self.body_limit = settings.proxy_body_size
        self.gateway_body_limit = 0  # Gateway API routes: the ConfigMap's proxy-body-size only when it sets one
        # PROXY protocol on every listener: decided when the first listener starts (--proxy-protocol, or the
        # ConfigMap's use-proxy-protocol then); a later change of the key needs a restart.
        self.proxy_protocol: bool | None = None
        # The clock tick: a tenth of the shortest timeout, between 10 ms and 1 s (routes with shorter
        # timeouts of their own shorten it while they are in the table, see _runtime_published).
        shortest = min(self.header_timeout, self.keepalive_timeout, self.body_timeout, self.send_timeout,
                       self.read_timeout)
        self.base_tick = self.tick = _tick_for(shortest)
        self.now = 0.0
        self.draining = False
        # (ServerState: the open connections and their counts, kept by its connection_opened / connection_closed.)
        self.connections = set()
        self.active_connections = 0
        self.total_connections = 0
        self.total_requests = 0
        self.http_port = 0
        self.https_port = 0
        self.listeners: list[Listener] = []
        # Listeners of Gateway ports other than the Ingress ones, by local port (see reconcile).
        self.gateway_listeners: dict[int, Listener] = {}
        self._reconciling = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        # Per-route counts (bound to routes when a runtime is published) and connection counts per listener.
        self.traffic = TrafficStats()
        self.traffic.listeners = self.listeners
        self.traffic.mirrors = mirror.STATS
        # The proxy's 404 on a named host whose root location logs nothing (its oldest Ingress's enable-access-log
        # "false"): counted in the unmatched series, no access log line.
        self.unlogged_unmatched = RouteStats(UNMATCHED)
        self.unlogged_unmatched.series = self.traffic.unmatched.series
        self.unlogged_unmatched.log = False
        # id(route) -> its RouteStats, for the running table (rebound on each publish).
        self.route_stats: dict[int, RouteStats] = {}
        # id(route) -> the rate limiter of a route with a local rate limit (rebound on each publish).
        self.limiters: dict[int, RateLimiter] = {}
        self._limiters = Limiters()
        # id(route) -> the ingress-nginx limit zone (limit-connections, -rpm, -rps) of its Ingress.
        self.client_limiters: dict[int, ClientLimiter] = {}
        self._client_limiters = ClientLimiters()
        # SSL passthrough (--enable-ssl-passthrough): the Ingress hosts and the TLSRoutes by local port of the
        # running table, and the counts of spliced connections. None without the flag.
        self.passthrough: PassthroughStats | None = PassthroughStats() if settings.ssl_passthrough else None
        self.traffic.passthrough = self.passthrough
        self._sni_ingress: SniTable = NO_PASSTHROUGH
        self._sni_ports: dict[int, SniTable] = {}
        # The running table's upstreams, for the policy counters in traffic snapshots.
        self.traffic.upstreams = self._upstreams
        # Tracing (--otlp-endpoint): its sampling settings now, its exporter (a thread) with the first listener.
        self.tracer: Tracer | None = None
        if settings.otlp_endpoint:
            self.tracer = Tracer(ratio=settings.trace_sample_ratio, trust_incoming=settings.trace_trust_incoming,
                                 by_default=settings.trace_by_default)
            ids.lay_out_traceparents()  # a new trace's traceparent value is cut from the id pool
        holder.subscribe(self._runtime_published)
        if holder.current is not None:
            self._runtime_published(holder.current)
        # Created when the first listener starts (a thread), closed (flushed) by close().
        self.access_log: AccessLog | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self.all_closed = None  # (ServerState: a drain waiting for the last connection)

    def _runtime_published(self, runtime: Runtime) -> None:
        """Bind per-route counters to the routes of a new table (series of vanished routes go)."""
        config = runtime.config.global_config
        if config is not None and config is not self.global_config:
            self._apply_global(config)
        clusters = runtime.config.clusters
        # The builder shares unchanged Route objects between tables; the previous table is still
        # alive here, so an id found in the previous binding is that very route: reuse its labels.
        previous = self.route_stats

        shortest = self.base_tick * 10
        policed: list[Route] = []
        unlogged: list[int] = []

        def labelled() -> Iterator[tuple[int, RouteLabels]]:
            nonlocal shortest
            for route in runtime.config.routes():
                timeouts = route.timeouts
                if timeouts is not None:
                    shortest = min(shortest, timeouts.request or shortest, timeouts.backend_request or shortest,
                                   timeouts.read or shortest, timeouts.send or shortest)
                policy = route.policy
                if policy is not None:
                    policed.append(route)
                    if policy.retry is not None and policy.retry.per_try_timeout:
                        shortest = min(shortest, policy.retry.per_try_timeout)
                key = id(route)
                known = previous.get(key)
                if not route.access_log:
                    unlogged.append(key)
                yield key, known.labels if known is not None else route_labels(route, clusters)
                if route.backends is not None:  # weighted: each backend counts under its own service
                    for backend in route.backends.backends:
                        key = id(backend)
                        if not route.access_log:
                            unlogged.append(key)
                        known = previous.get(key)
                        yield key, known.labels if known is not None else backend_labels(route, backend)

        self.route_stats = route_stats = self.traffic.bind(labelled())
        for stats in route_stats.values():
            stats.log = True
        for route_id in unlogged:  # enable-access-log "false": its routes (and their canary backends) write no line
            route_stats[route_id].log = False
        if self.passthrough is not None:
            self._route_passthrough(runtime)
        self.limiters = self._limiters.bind(policed)
        self.client_limiters = self._client_limiters.bind(policed)
        self.tick = min(self.base_tick, _tick_for(shortest))
        if self.listeners and (runtime.config.listeners or self.gateway_listeners):
            task = asyncio.get_running_loop().create_task(self.reconcile())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if self.freeze_gc:
            if not self._frozen:
                self._freeze()  # the first table, before any traffic
            elif self._freezing is None:
                # After the new table is live, and once for a burst of publishes: collecting the young
                # generations walks the new table's objects (~20 ms for 10,000 routes).
                self._freezing = asyncio.get_running_loop().call_later(FREEZE_DELAY, self._freeze)

    def _apply_global(self, config: GlobalConfig) -> None:
        """A new global configuration takes effect for what comes next: new connections, requests and
        timeout checks read these attributes; no connection is dropped (ingress-nginx reloads nginx)."""
        previous, self.global_config = self.global_config, config
        self.header_timeout = config.client_header_timeout
        self.keepalive_timeout = config.keep_alive
        self.body_timeout = config.client_body_timeout
        self.read_timeout = config.proxy_read_timeout
        self.upstream_send_timeout = config.proxy_send_timeout
        self.connect_timeout = config.proxy_connect_timeout
        self.keepalive_requests = config.keep_alive_requests
        self.tls_fields = config.hsts_field()
        self.all_fields = b"Server: pyngress\r\n" if config.server_tokens else b""
        self.block = (Block(cidrs=AddressSet(config.block_cidrs) if config.block_cidrs else None,
                            user_agents=user_agent_matcher(config.block_user_agents))
                      if config.block_cidrs or config.block_user_agents else None)
        if self.tracer is not None:
            self.tracer.by_default = config.enable_opentelemetry
        self.base_tick = self.tick = _tick_for(min(self.header_timeout, self.keepalive_timeout, self.body_timeout,
                                                   self.send_timeout, self.read_timeout, self.upstream_send_timeout))
        self.body_limit = config.proxy_body_size
        self.traffic.default_server.log = config.enable_access_log_for_default_backend
        self.gateway_body_limit = config.proxy_body_size if "proxy-body-size" in config.set_keys else 0
        if _trust_of(config) != _trust_of(previous):
            self.trust = ForwardedTrust.from_config(config)
        if (self.proxy_protocol is not None and config.use_proxy_protocol != previous.use_proxy_protocol
                and config.use_proxy_protocol != self.proxy_protocol):
            logger.warning("ConfigMap %s: key use-proxy-protocol is now %s, but the listeners started %s the PROXY "
                           "protocol: the change takes effect at the next restart", self.settings.configmap,
                           str(config.use_proxy_protocol).lower(), "with" if self.proxy_protocol else "without")
        for listener in self.listeners:  # (Gateway ports' listeners included)
            self._dress(listener)

    def _dress(self, listener: Listener) -> None:
        """The global configuration's part of a listener: its answers' extra header lines and its filters."""
        listener.response_fields = (self.tls_fields if listener.tls else b"") + self.all_fields
        listener.hide_server = "server-tokens" in self.global_config.set_keys
        own = tuple(item for item in listener.filters if not isinstance(item, Block))
        listener.filters = (*own, self.block) if self.block is not None else own
        pipeline = listener.pipeline
        if pipeline is not None:
            pipeline.trust = self.trust
            pipeline.body_limit = self.body_limit
            pipeline.gateway_body_limit = self.gateway_body_limit
            if self.tracer is not None:
                pipeline.trace_by_default = self.tracer.by_default

    def _route_passthrough(self, runtime: Runtime) -> None:
        """The passthrough hosts of a new table, handed to every listener reading SNI (O(hosts), only with
        --enable-ssl-passthrough)."""
        config = runtime.config
        self._sni_ingress = ingress_passthrough(config.table)
        self._sni_ports = dict(config.tls_routes)
        names: set[str] = {host for host, _ in self._sni_ingress.entries()}
        for table in self._sni_ports.values():
            names.update(host for host, _ in table.entries())
        assert self.passthrough is not None
        self.passthrough.keep(names)
        for listener in self.listeners:
            if listener.sni is not None:
                listener.sni.table = self._sni_table(listener)

    def _sni_table(self, listener: Listener) -> SniTable:
        """An Ingress HTTPS listener: the Ingress hosts, plus TLSRoutes of Gateway listeners on its port; a
        Gateway port: its TLSRoutes."""
        if listener.ingress:
            return joined(self._sni_ingress, self._sni_ports.get(self.settings.https_port, NO_PASSTHROUGH))
        return self._sni_ports.get(listener.port, NO_PASSTHROUGH)

    def _running_upstreams(self) -> Mapping[str, Upstream]:
        runtime = self.holder.current
        return runtime.upstreams if runtime is not None else {}

    def _upstreams(self) -> list[Upstream]:
        runtime = self.holder.current
        return list(runtime.upstreams.values()) if runtime is not None else []

    def _freeze(self) -> None:
        """Move every live object out of the cyclic GC's reach.

        A full collection walks every tracked object: with the modules, the route table and the
        open connections that took 40-100 ms, a stall every few seconds under load (measured).
        Frozen objects are skipped by the collector but still freed by reference counting, and
        nothing the proxy keeps per request or per connection is cyclic (see
        ClientConnection.connection_lost and Exchange.account). What a freeze does cost: cyclic
        garbage not yet collected at that moment is never collected, so the young generations are
        collected first; the first freeze collects everything.
        """
        self._freezing = None
        # (A flag, not gc.get_freeze_count(): that walks every frozen object, ~20 ms with a large table.)
        gc_freeze.hold(self)  # from now on, what survives a full collection is frozen too
        gc.collect(1 if self._frozen else 2)
        gc.freeze()
        self._frozen = True

    async def start(self) -> None:
        """Bind the HTTP listener on settings.bind:settings.http_port (0 = any free port), and the
        ports Gateway listeners of the running table ask for."""
        listener = await self._listen("http", self.settings.http_port, None)
        self.http_port = listener.port
        await self.reconcile()

    async def reconcile(self) -> None:
        """Open the ports the running table's Gateway listeners ask for, close those it no longer does.

        The Ingress listeners serve their port's Gateway listeners themselves; other ports get a
        listener of their own. Connections of other ports are never touched. A port that cannot be
        bound is logged and tried again at the next publish.
        """
        runtime = self.holder.current
        if runtime is None:
            return
        async with self._reconciling:
            wanted = runtime.config.listeners
            for listener in self.listeners:
                if listener.ingress:
                    config = wanted.get(listener.port)
                    listener.set_public_port(config.port if config is not None else listener.port)
            for port, config in wanted.items():
                if port in (self.settings.http_port, self.settings.https_port) or port in self.gateway_listeners:
                    continue
                https = config.protocol == "HTTPS"
                passthrough = config.protocol == "TLS"
                if passthrough and self.passthrough is None:
                    logger.error("port %d has only TLS passthrough listeners, which need --enable-ssl-passthrough: "
                                 "not opened", port)
                    continue
                certificates = runtime.certificates.get(port) if https else None
                if https and certificates is None:
                    logger.error("no certificates for the Gateway HTTPS listener on port %d: not opened", port)
                    continue
                try:
                    listener = await self._listen("https" if https else "tls" if passthrough else "http", port,
                                                  certificates.server_context() if certificates else None,
                                                  certificates=certificates)
                except OSError as error:
                    logger.error("cannot open port %d for a Gateway listener (port %d): %s", port, config.port, error)
                    continue
                listener.ingress = False
                if listener.sni is not None:
                    listener.sni.table = self._sni_table(listener)
                listener.set_public_port(config.port)
                if certificates is not None:
                    self._secure(listener, certificates)
                self.gateway_listeners[port] = listener
                logger.info("listening on port %d for Gateway listeners on port %d (%s)", port, config.port,
                            config.protocol)
            for port in [port for port in self.gateway_listeners if port not in wanted]:
                self._retire(self.gateway_listeners.pop(port))

    def unbound_ports(self) -> list[int]:
        """Local ports the running table's Gateway listeners ask for that are not accepting (yet, or at all)."""
        runtime = self.holder.current
        if runtime is None:
            return []
        ingress = (self.settings.http_port, self.settings.https_port)
        return [port for port in runtime.config.listeners
                if port not in ingress and port not in self.gateway_listeners]

    def _retire(self, listener: Listener) -> None:
        """Stop accepting on a port no Gateway asks for: idle connections close now, busy ones after their answer."""
        listener.closing = True  # stays in `listeners`: its counts stay in the metrics
        if listener.server is not None:
            listener.server.close()
        for conn in list(self.connections):
            if conn.listener is listener:
                conn.close_idle()
        logger.info("port %d closed: no Gateway listener asks for it any more", listener.port)

    async def start_https(
        self,
        ssl_context: ssl.SSLContext,
        *,
        port: int | None = None,
        handshake_timeout: float | None = None,
        certificates: CertStoreHolder | None = None,
    ) -> None:
        """Bind an HTTPS listener (settings.https_port unless ``port``) serving the same routes.

        ``certificates``: the CertStoreHolder behind ``ssl_context``; with it, a request whose Host
        is served by another certificate than its SNI gets 421 (no domain fronting).
        """
        listener = await self._listen(
            "https",
            self.settings.https_port if port is None else port,
            ssl_context,
            handshake_timeout=handshake_timeout or self.header_timeout,
            certificates=certificates,
        )
        self._secure(listener, certificates)
        if listener.sni is not None:
            listener.sni.table = self._sni_table(listener)
        self.https_port = listener.port
        await self.reconcile()

    def _secure(self, listener: Listener, certificates: CertStoreHolder | None) -> None:
        """What an HTTPS listener adds: the 421 check against its certificates, and HSTS."""
        listener.certificates = certificates
        if certificates is not None:
            listener.filters = (MisdirectedRequest(certificates, self.holder, listener.port),)
        self._dress(listener)

    async def _listen(
        self, scheme: str, port: int, ssl_context: ssl.SSLContext | None, *, handshake_timeout: float | None = None,
        certificates: CertStoreHolder | None = None,
    ) -> Listener:
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        if self.settings.access_log and self.access_log is None:
            # (worker processes share stdout: their writes go in atomic pieces)
            self.access_log = AccessLog(loop=loop, shared=self.settings.workers > 1)
        tracer = self.tracer
        if tracer is not None and tracer.exporter is None:
            settings = self.settings
            tracer.exporter = self.traffic.spans = SpanExporter(
                settings.otlp_endpoint, interval=settings.otlp_export_interval, timeout=settings.otlp_timeout)
        holder: list[tuple[Listener, Pipeline]] = []

        def connection() -> ClientConnection:
            listener, pipeline = holder[0]
            return ClientConnection(self, listener, pipeline)

        factory: Callable[[], asyncio.BaseProtocol] = connection  # type: ignore[assignment]
        acceptor: TlsAcceptor | None = None
        if ssl_context is not None:
            # TLS is terminated by the acceptor rather than create_server(ssl=...): the same SSL
            # protocol and cost per request, but failed handshakes are seen (and counted).
            acceptor = tls_protocol_factory(connection, ssl_context,  # type: ignore[arg-type]
                                            handshake_timeout=handshake_timeout or self.header_timeout,
                                            stats=HandshakeStats())
            factory = acceptor
        sni: SniAcceptor | None = None
        if self.passthrough is not None and (ssl_context is not None or scheme == "tls"):
            # SSL passthrough: read each ClientHello's server name first (the only cost of the flag).
            sni = SniAcceptor(acceptor, upstreams=self._running_upstreams, stats=self.passthrough,
                              hello_timeout=handshake_timeout or self.header_timeout,
                              connect_timeout=self.settings.upstream_connect_timeout, tries=self.retries)
            factory = sni
        # Worker processes each bind the same port; the kernel spreads connections among them.
        reuse_port = self.settings.workers > 1
        server: asyncio.AbstractServer
        if self.proxy_protocol is None:
            self.proxy_protocol = self.global_config.use_proxy_protocol
        native = None
        if acceptor is not None:
            native = self._native_tls(port, connection, acceptor, certificates, reuse_port, passthrough=sni is not None)
        if native is not None:
            server = native
            acceptor = None
        elif self.proxy_protocol:
            server = await ProxyProtocolServer.listen(
                self.settings.bind, port, reuse_port=reuse_port, backlog=1024,
                factory=self._proxied_factory(connection, acceptor, sni), timeout=self.header_timeout)
        else:
            server = await loop.create_server(factory, self.settings.bind, port, reuse_address=True,
                                              reuse_port=reuse_port or None, backlog=1024)
        bound = server.sockets[0].getsockname()[1]
        listener = Listener(scheme, bound, server)
        if acceptor is not None:
            listener.acceptor, listener.handshakes = acceptor, acceptor.stats
        elif native is not None:
            listener.native, listener.handshakes = native, native.stats
        listener.sni = sni
        listener.pipeline = Pipeline(self, listener)
        if self.settings.http2:
            listener.http2 = take_over
            if ssl_context is None and scheme == "http":
                # A plain listener's connections look at their first bytes for the h2c preface (TLS ones learn
                # the protocol from ALPN): see proxy/http2/preface.py.
                listener.h2c = sniff
        holder.append((listener, listener.pipeline))
        if native is not None:  # called from C per connection: the class itself, bound, costs no Python frame
            native.native.protocol_factory = partial(ClientConnection, self, listener, listener.pipeline)
        self._dress(listener)
        self.listeners.append(listener)
        if self._ticker is None:
            self._ticker = loop.call_later(self.tick, self._on_tick)
        return listener

    def _native_tls(self, port: int, connection: Callable[[], ClientConnection], acceptor: TlsAcceptor,
                    certificates: CertStoreHolder | None, reuse_port: bool, *,
                    passthrough: bool) -> NativeTlsServer | None:
        """--tls-transport auto|native: the HTTPS listener's socket served by proxy/tls/native.py, or None where the
        asyncio path serves it (native.choose says which, once per process)."""
        context = certificates.native_context if certificates is not None else lambda: acceptor.ssl_context
        if not native_tls.choose(self.settings.tls_transport, proxy_protocol=bool(self.proxy_protocol),
                                 passthrough=passthrough, context=context):
            return None
        return native_tls.NativeTlsServer.listen(
            self.settings.bind, port, context(), connection, stats=acceptor.stats,
            handshake_timeout=acceptor.handshake_timeout,
            select=certificates.select_native if certificates is not None else None, holder=certificates,
            reuse_port=reuse_port)

    @staticmethod
    def _proxied_factory(connection: Callable[[], ClientConnection], acceptor: TlsAcceptor | None,
                         sni: SniAcceptor | None = None) -> Callable[[Origin], asyncio.BaseProtocol]:
        """The protocol factory of a PROXY protocol listener: the plain one, told the header's client address and
        port (("", 0) keeps the socket's peer); on HTTPS the TLS acceptor's handshake, whose app protocol is told.

        As ingress-nginx does with `$proxy_protocol_server_port`, the port the client connected to on the
        balancer is X-Forwarded-Port, and 443 there means https."""

        def proxied(origin: Origin) -> ClientConnection:
            conn = connection()
            address, port = origin
            if address:
                conn.client_ip = address.encode("ascii")
                if port == 443:
                    conn.scheme = "https"
                conn.forwarded = b"X-Forwarded-Proto: %s\r\nX-Forwarded-Port: %d\r\n" % (conn.scheme.encode(), port)
            return conn

        if sni is not None:
            # SSL passthrough behind a PROXY header: spliced connections go to the pod as they are; the ones
            # terminated here are served as on a plain PROXY listener.
            def reader(origin: Origin) -> SniReader:
                protocol = sni()
                if origin[0]:
                    protocol.app_factory = partial(proxied, origin)  # type: ignore[assignment]
                return protocol

            return reader
        if acceptor is None:
            return proxied  # type: ignore[return-value]

        def handshake(origin: Origin) -> HandshakeProtocol:
            protocol = acceptor()
            if origin[0]:
                protocol.app_factory = partial(proxied, origin)  # type: ignore[assignment]
            return protocol

        return handshake

    def _on_tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = self.now = loop.time()
        for conn in list(self.connections):
            try:
                conn.check(now)
            except Exception:  # never let one connection stop the clock
                logger.exception("error checking connection timeouts")
        self._ticker = loop.call_later(self.tick, self._on_tick)

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections are untouched."""
        for listener in self.listeners:
            if listener.server is not None:
                listener.server.close()

    async def drain(self, timeout: float) -> bool:
        """Close idle connections now, let in-flight requests finish (then close), up to ``timeout``.

        Responses still to start carry ``Connection: close``. True if every connection closed in time.
        """
        self.draining = True
        self.stop_accepting()
        for conn in list(self.connections):
            conn.close_idle()
        if not self.connections:
            return True
        self.all_closed = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self.all_closed.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop everything now: listeners, the clock, and every connection (aborted)."""
        loop = asyncio.get_running_loop()
        self.draining = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self.stop_accepting()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._freezing is not None:
            self._freezing.cancel()
            self._freezing = None
        gc_freeze.release(self)  # (the hook stays while another server of the process holds it)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for listener in self.listeners:
            if listener.sni is not None:
                listener.sni.abort()  # ClientHellos being read, spliced connections, handshakes in progress
            elif listener.acceptor is not None:
                listener.acceptor.abort()  # handshakes still in progress
            elif listener.native is not None:
                listener.native.abort()
        if self.access_log is not None:
            self.access_log.close()
        await auth_request.close_sessions()
        exporter = self.tracer.exporter if self.tracer is not None else None
        if exporter is not None:
            # Spans still queued go out now (the thread's POST may block: never on the loop).
            await loop.run_in_executor(None, exporter.close)
        for listener in self.listeners:
            if listener.server is None:
                continue
            try:
                async with asyncio.timeout(5):
                    await listener.server.wait_closed()
            except TimeoutError:
                pass
        await asyncio.sleep(0)


def _tick_for(timeout: float) -> float:
    """The clock tick that notices `timeout` passing within a tenth of it (10 ms to 1 s)."""
    return min(1.0, max(0.01, timeout / 10))


def _trust_of(config: GlobalConfig) -> tuple[object, ...]:
    """The values ForwardedTrust is made of (a new one only when they change)."""
    return (config.use_forwarded_headers, config.enable_real_ip, config.proxy_real_ip_cidr,
            config.forwarded_for_header, config.compute_full_forwarded_for,
            "proxy-real-ip-cidr" in config.invalid_keys)
