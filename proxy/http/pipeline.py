"""The request pipeline: a complete request head in, an answer or a started exchange out.

    head ─▶ listener filters (HTTPS: 421) ─▶ RouteTable.match ─▶ rule filters (request phase)
         ─▶ backend pick (weights) ─▶ route policy (rate limit, fault abort) ─▶ upstream (503 without endpoints)
         ─▶ upstream request head ─▶ Exchange.start (or, under a policy needing per-request state, Attempts.begin;
            under ingress-nginx's auth-url, AuthGate.begin first asks the auth service: proxy.http.auth_request)

A matched route that is traced (proxy/tracing/) gets its trace context decided right after the match, so
the proxy's own answers from then on (redirects, 503...) have spans too; requests that match no route
are not traced.

Every step is data compiled at build time: a plain Ingress route has no filters, one backend, no
timeouts and no policy, so its requests pay a few attribute reads for what they do not use. The pipeline
knows no client wire format: it reads a `RequestHead` and asks the connection to answer or to
forward; the upstream request head it writes is HTTP/1.1, the protocol spoken to pods.
"""

from __future__ import annotations

import asyncio
import logging
import random
from functools import partial
from typing import TYPE_CHECKING

from proxy.http import checks, error_pages, mirror
from proxy.http import headers as h
from proxy.http.attempts import Attempts
from proxy.http.auth_request import AuthGate
from proxy.http.buffering import REQUEST_BUFFER_LIMIT, BodyHold
from proxy.http.downstream import BLOCK_CONNECT
from proxy.http.error_pages import Intercept
from proxy.http.ratelimit import HELD, REFUSED, REFUSED_CONNECTION
from proxy.http.response_head import ResponseHead
from proxy.routing.filters import Answer, Mirror, ResponseFilter
from proxy.routing.model import Timeouts
from proxy.routing.paths import normalize_path
from proxy.routing.request import Request
from proxy.routing.table import normalize_host
from proxy.upstream.errors import BadRequest, InvalidBackend, NoEndpoints

if TYPE_CHECKING:
    from proxy.http.downstream import Downstream
    from proxy.http.exchange import Exchange
    from proxy.http.listener import Listener
    from proxy.routing.model import Route
    from proxy.routing.policies import RoutePolicy
    from proxy.runtime import Runtime, RuntimeHolder
    from proxy.server import ProxyServer
    from proxy.tls.store import CertStoreHolder
    from proxy.upstream.cluster import Upstream

logger = logging.getLogger("pyngress.proxy")

_SEP = b": "
_CRLF = b"\r\n"

# The timeouts of a rule with a per-try timeout but no timeouts of its own (the attempt deadline needs them set).
_NO_TIMEOUTS = Timeouts()
_random = random.random

# Host header bytes -> normalized host; bounded so random Host values cannot grow memory.
_host_names: dict[bytes, str] = {}
_HOST_CACHE_LIMIT = 4096


class MisdirectedRequest:
    """HTTPS listeners: a request whose Host is served by another certificate than its SNI gets 421
    (no domain fronting); the same certificate may serve both (a wildcard, several SANs). On a port with
    Gateway listeners, names that both belong to Gateway listeners must belong to the same one, whatever
    their certificates (the Gateway API's misdirected-request detection)."""

    __slots__ = ("certificates", "holder", "port")
    order = -10

    def __init__(self, certificates: CertStoreHolder, holder: RuntimeHolder | None = None, port: int = 0) -> None:
        self.certificates = certificates
        self.holder = holder
        self.port = port

    def on_request(self, request: Request) -> Answer | None:
        server_name = request.server_name
        host = request.host
        if server_name is None or server_name == host:
            return None
        runtime = self.holder.current if self.holder is not None else None
        gateway = runtime.config.listeners.get(self.port) if runtime is not None else None
        if gateway is not None:
            chosen, wanted = gateway.host_pattern_for(server_name), gateway.host_pattern_for(host)
            if chosen is not None and wanted is not None:
                if chosen == wanted:
                    return None
                return Answer(421, detail=f"host {host} belongs to another listener than this TLS connection")
        store = self.certificates.current
        if store.select(host) is store.select(server_name):
            return None
        return Answer(421, detail=f"host {host} is not served on this TLS connection")


class Pipeline:
    """Routes the requests of one listener (whose table, filters and ports it knows)."""

    __slots__ = ("server", "listener", "holder", "settings", "tracer", "tracing", "trace_by_default", "sampled_below",
                 "trust", "body_limit", "gateway_body_limit")

    def __init__(self, server: ProxyServer, listener: Listener) -> None:
        self.server = server
        self.listener = listener
        self.holder = server.holder
        self.settings = server.settings
        tracer = self.tracer = server.tracer  # None: no --otlp-endpoint, trace context passes through untouched
        # The tracer's settings the request path reads, copied (typed fields when compiled, no lookup through the
        # tracer per request); trace_by_default follows the global configuration (ProxyServer._dress).
        self.tracing = tracer is not None
        self.trace_by_default = tracer is not None and tracer.by_default
        self.sampled_below = tracer.sampled_below if tracer is not None else b""
        # None: no --use-forwarded-headers / --enable-real-ip, the proxy's own forwarded fields (the usual path).
        self.trust = server.trust
        # Of Ingress routes without proxy-body-size: the ConfigMap's proxy-body-size, else Settings.proxy_body_size
        # (the server updates trust and body_limit at each swap of the global configuration).
        self.body_limit = server.body_limit
        # Of Gateway API routes: the ConfigMap's proxy-body-size when it sets one, else none (0).
        self.gateway_body_limit = server.gateway_body_limit

    def dispatch(self, conn: Downstream, ex: Exchange) -> None:
        """Route a complete request head and answer it or start forwarding it."""
        head = ex  # the exchange is its request head
        trust = self.trust
        if trust is not None:
            trust.resolve(ex)
        runtime = self.holder.current
        if runtime is None:
            conn.send_error(ex, 503, NoEndpoints("no configuration loaded yet"), detail="no configuration loaded yet")
            return
        url = head.target
        host = head.authority
        fields = head.fields
        if url[:1] != b"/":
            absolute = _split_absolute(url)
            if absolute is None:
                conn.send_error(ex, 400, BadRequest(f"invalid request target {url[:100]!r}"), close=True)
                return
            host, url = absolute
            head.remove_header(b"host")
            fields += (b"Host", _SEP, host, _CRLF)
        fragment = url.find(b"#")
        if fragment >= 0:
            url = url[:fragment]
        query = url.find(b"?")
        raw_path = url if query < 0 else url[:query]
        path = raw_path.decode("latin-1")
        if "%" not in path and "/." not in path and "//" not in path and path[:1] == "/":
            normalized: str | None = path  # normalize_path's own first test, inline: most paths need nothing
        else:
            normalized = normalize_path(path)
        if normalized is None:
            conn.send_error(ex, 400, BadRequest(f"invalid path {path[:100]!r}"), close=True)
            return
        if host is None:
            host = b""
        host_name = _host_names.get(host)
        if host_name is None:
            host_name = normalize_host(host.decode("latin-1"))
            if len(_host_names) < _HOST_CACHE_LIMIT:
                _host_names[host] = host_name
        if query >= 0:
            head.query = url[query + 1 :]  # (host and path are set for filters, which alone read them)
        listener = self.listener
        if listener.filters:
            self._for_filters(head, host_name, normalized)
            for listener_filter in listener.filters:
                answer = listener_filter.on_request(head)
                if answer is not None:
                    self.answer(conn, ex, answer)
                    return
        config = runtime.config
        if config.listeners or not listener.ingress:
            # Gateway listeners: this port's table (on an Ingress port, the Ingress rules merged in).
            gateway = config.listeners.get(listener.port)
            if gateway is not None:
                table = gateway.table
            elif listener.ingress:
                table = config.table
            else:
                conn.send_error(ex, 404, None, detail="no listener on this port", reason="no-listener")
                return
        else:
            table = config.table
        routes = table.hosts.get(host_name)  # table.match, the exact-host case inline
        if routes is None:
            routes = table.host_routes(host_name)
        route = routes.match(normalized, head) if routes is not None else None
        if route is None:
            if (routes is None or routes is table.any_host) and listener.ingress:
                # ingress-nginx's default server "_" (unknown hosts, host-less rules; no --default-backend-service):
                # logged only with the ConfigMap's enable-access-log-for-default-backend. A named host's unmatched
                # path is logged as its root location says (its oldest Ingress's enable-access-log).
                ex.route_stats = self.server.traffic.default_server
            elif routes is not None and not routes.log_unmatched:
                ex.route_stats = self.server.unlogged_unmatched
            conn.send_error(ex, 404, None, reason="no-route")
            return
        limit = route.body_limit
        if limit < 0:  # BODY_LIMIT_DEFAULT (-1, an Ingress's) or BODY_LIMIT_GLOBAL (-2, a Gateway route's)
            limit = self.body_limit if limit == -1 else self.gateway_body_limit
        if limit and (head.content_length > limit or head.chunked) and self._too_large(conn, ex, limit):
            return
        if self.tracing:
            traced = route.tracing
            if traced is None:
                traced = self.trace_by_default
            if traced and head.trace is None:  # (set: dispatched again after a check, see _check)
                at = head.id_at  # (the protocol's id pool position: FIRST (3) or more; 0: none taken)
                if head.traceparent is None and head.tracestate is None and at >= 3:
                    # Tracer.start's usual case, inline (a new trace; the call alone was a tenth of its cost): the
                    # traceparent value of an unsampled new trace is in the id pool around the request's id
                    # (proxy.http.ids: pool[at - TRACEPARENT_BEFORE : at + TRACEPARENT_AFTER]); a sampled one
                    # ends in 1 (proxy.tracing.context.SAMPLED_AT).
                    # (Compiled, pipeline.pxd types `pool` a C string and `at` a C integer: the slice is one
                    # PyBytes_FromStringAndSize, no index or slice objects.) The value goes into the upstream head
                    # below, as its last field, not into `fields`.
                    pool = head.id_pool
                    trace = pool[at - 3 : at + 52]
                    if trace < self.sampled_below:
                        trace = trace[:54] + b"1"
                    head.trace = trace
                else:
                    self.tracer.start(head)  # type: ignore[union-attr]  # (tracing: a tracer is there)
        server = self.server
        stats = server.route_stats
        ex.route_stats = stats.get(id(route))
        mirrors: list[tuple[Upstream, Mirror]] | None = None
        plain = route.plain
        if plain:  # a plain Ingress path: one backend, nothing else to do
            cluster = route.cluster
        else:
            cluster, mirrors = self._rule(conn, ex, route, runtime, host_name, normalized)
            if not cluster:
                return  # answered (a redirect, a 500)
        upstream = runtime.upstreams.get(cluster)
        if upstream is None or not upstream.pools:
            if not plain and route.errors is not None and error_pages.send(ex, route.errors, 503, body=True):
                return  # ingress-nginx's default-backend answers for a Service without endpoints
            what = "unknown cluster" if upstream is None else "no ready endpoints for"
            conn.send_error(ex, 503, NoEndpoints(f"{what} {cluster}"))
            return
        if not plain and head.rewritten:  # (`rewritten` is only set for rules that are not plain)
            url = head.path.encode("latin-1") + (url[query:] if query >= 0 else b"")
            fields = head.fields
        elif normalized != path:
            url = normalized.encode("latin-1") + (url[query:] if query >= 0 else b"")
        if head.connection_names:
            fields = h.drop_named(fields, head.connection_names)
        if trust is not None:
            forwarded, forwarded_host = trust.fields(ex, host)
            if forwarded_host is not host and host and (plain or not head.rewritten):  # (upstream-vhost wins)
                fields = [*h.drop_field(fields, b"host"), b"Host", _SEP, forwarded_host, _CRLF]
        request = [head.method, b" ", url, b" HTTP/1.1\r\n"]
        request += fields
        if head.authority is None and host == b"":
            # HTTP/1.0 without Host: HTTP/1.1 upstreams require one (nginx sends its upstream's name);
            # the Service's cluster DNS name is what a pod would be called by in the cluster.
            request += (b"Host: ", upstream.host_name, _CRLF)
        if head.chunked:
            end = b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        elif head.websocket:
            end = b"\r\nConnection: Upgrade\r\nUpgrade: " + (head.upgrade or b"websocket") + b"\r\n\r\n"
        else:
            end = b"\r\n\r\n"
        rules = None if plain else route.policy
        if rules is not None and rules.http10:
            request[3] = b" HTTP/1.0\r\n"  # proxy-http-version 1.0 (a chunked body was refused in _rule)
            end = b"\r\nConnection: close\r\n\r\n"
        traceparent = head.trace  # traced: our traceparent value (proxy.tracing), the head's last field
        if not plain and route.own_traceparent:
            traceparent = None  # a header filter set or removed traceparent: its word (in `fields`) is the one sent
        if trust is None:
            forwarded_for = head.forwarded_for
            if forwarded_for is None:
                forwarded = conn.forwarded
            else:
                rest = conn.forwarded[conn.forwarded_ip_end :]  # CRLF, Proto/Port, X-Real-IP
                forwarded = b"X-Forwarded-For: " + forwarded_for + b", " + conn.client_ip + rest
            if traceparent is None:
                request += (forwarded, b"X-Forwarded-Host: ", host, b"\r\nX-Request-ID: ", head.request_id, end)
            else:
                request += (forwarded, b"X-Forwarded-Host: ", host, b"\r\nX-Request-ID: ", head.request_id,
                            b"\r\ntraceparent: ", traceparent, end)
        elif traceparent is None:
            request += (forwarded, b"X-Request-ID: ", head.request_id, end)
        else:
            request += (forwarded, b"X-Request-ID: ", head.request_id, b"\r\ntraceparent: ", traceparent, end)
        if mirrors:
            mirror.copy_request(ex, mirrors, request)
        if (rules is not None and rules.buffer_body and not ex.req_done and ex.has_body
                and ex.content_length <= REQUEST_BUFFER_LIMIT):
            # proxy-request-buffering: the pod is dialed once the body is in (proxy.http.buffering).
            ex.mirrors = BodyHold(ex.mirrors, partial(self._forward, ex, upstream, request))
            return
        if ex.policy is None and not upstream.guarded:  # _forward's usual case, inline (the call cost ~1%)
            ex.start(upstream, request, retries=server.retries)
            return
        self._forward(ex, upstream, request)

    def _forward(self, ex: Exchange, upstream: Upstream, request: list[bytes]) -> None:
        """Send the request up: on its own, or under its policy (retries, auth, a guarded upstream)."""
        if ex.finished:
            return
        policy = ex.policy
        if policy is None:
            if not upstream.guarded:
                ex.start(upstream, request, retries=self.server.retries)
                return
            policy = ex.policy = Attempts(ex, None)
        policy.begin(upstream, request, retries=self.server.retries)

    def _rule(self, conn: Downstream, ex: Exchange, route: Route, runtime: Runtime, host: str,
              path: str) -> tuple[str, list[tuple[Upstream, Mirror]] | None]:
        """A rule with filters, weights or timeouts: run its request phase and pick its backend.

        Returns the cluster to forward to and the mirrors to copy the request to; cluster "" when the
        request has been answered (a filter's answer, 500 for a backend that cannot be served)."""
        mirrors: list[tuple[Upstream, Mirror]] | None = None
        self._for_filters(ex, host, path)
        filters = route.filters
        if filters is not None:
            for request_filter in filters.request:
                answer = request_filter.on_request(ex)
                if answer is not None:
                    if answer.check is not None:
                        self._check(conn, ex, answer, filters.response)
                    else:
                        self.answer(conn, ex, answer, filters.response)
                    return "", None
            if filters.response:
                ex.response_filters = filters.response
            if filters.mirrors:
                upstreams = runtime.upstreams
                mirrors = [(upstream, m) for m in filters.mirrors if m.cluster and mirror.chosen(m.percent)
                           and (upstream := upstreams.get(m.cluster)) is not None and upstream.pools]
        cluster = route.cluster
        if not cluster:
            backends = route.backends
            backend = backends.pick() if backends is not None else None
            if backend is None or not backend.cluster:
                what = "an invalid backend" if backend is not None else "no backend"
                conn.send_error(ex, 500, InvalidBackend(f"{route.kind} {route.name} rule {route.rule}: {what}"))
                return "", None
            cluster = backend.cluster
            ex.route_stats = self.server.route_stats.get(id(backend)) or ex.route_stats
            if backend.filters is not None:
                for request_filter in backend.filters.request:
                    answer = request_filter.on_request(ex)
                    if answer is not None:
                        self.answer(conn, ex, answer, (*backend.filters.response, *ex.response_filters))
                        return "", None
                if backend.filters.response:
                    ex.response_filters += backend.filters.response
        errors = route.errors
        if errors is not None and errors.codes:
            ex.response_filters = (Intercept(errors), *ex.response_filters)
        timeouts = route.timeouts
        if timeouts is not None:
            ex.timeouts = timeouts
            ex.deadline = self.server.now + timeouts.request if timeouts.request else 0.0
        policy = route.policy
        if policy is not None:
            if not self._police(conn, ex, route, policy):
                return "", None
            if policy.http10 and ex.chunked:
                # HTTP/1.0 cannot carry a chunked body (nginx buffers it to send a Content-Length; pyngress does
                # not buffer bodies yet): 411, as a server that needs a length answers.
                conn.send_error(ex, 411, BadRequest("a chunked request body cannot be sent in HTTP/1.0 "
                                                    "(proxy-http-version)", status=411), close=True,
                                reason="length-required")
                return "", None
            if policy.auth is not None:  # ingress-nginx's auth-url: asked once the request is ready to go up
                attempts = ex.policy if isinstance(ex.policy, Attempts) else None
                ex.policy = AuthGate(ex, policy.auth, attempts, mirrors)
                return cluster, None  # (mirrored only once allowed)
        return cluster, mirrors

    @staticmethod
    def _too_large(conn: Downstream, ex: Exchange, limit: int) -> bool:
        """proxy-body-size: a Content-Length over `limit` is answered 413 now (nginx's client_max_body_size, checked
        with the head); a chunked body is counted as it arrives (Exchange.add_body). True when answered."""
        if ex.content_length > limit:
            conn.send_error(ex, 413, BadRequest(f"request body of {ex.content_length} bytes is over the limit of "
                                                f"{limit}", status=413), reason="body-too-large")
            return True
        ex.body_limit = limit
        if ex.received > limit:  # a pipelined request's body may have come before its turn
            conn.send_error(ex, 413, BadRequest(f"request body over the limit of {limit} bytes", status=413),
                            close=True, reason="body-too-large")
            return True
        return False

    def _police(self, conn: Downstream, ex: Exchange, route: Route, policy: RoutePolicy) -> bool:
        """The route policy's request phase: its rate limit, then fault injection (an abort is answered now,
        a delay postpones the request's attempts), then its retry policy; False when answered."""
        stats = ex.route_stats
        if policy.rate_limit is not None:
            limiter = self.server.limiters.get(id(route))
            if limiter is not None and not limiter.allow(ex.client_ip):
                if stats is not None:
                    stats.rate_limited += 1
                conn.send_error(ex, limiter.limit.status, None, detail="rate limited", reason="rate-limited",
                                fields=b"Retry-After: %d\r\n" % limiter.retry_after())
                return False
        delay = 0.0
        abort = 0
        fault = policy.fault
        if fault is not None and (not fault.header or ex.header(fault.header) is not None):
            if fault.abort_status and fault.abort_fraction > 0 and _random() < fault.abort_fraction:
                abort = fault.abort_status
            if fault.delay > 0 and fault.delay_fraction > 0 and _random() < fault.delay_fraction:
                delay = fault.delay
                if stats is not None:
                    stats.faults_delayed += 1
            elif abort:
                if stats is not None:
                    stats.faults_aborted += 1
                conn.send_error(ex, abort, None, detail="fault injected", reason="fault-abort")
                return False
        held = None
        if policy.client_limit is not None:  # ingress-nginx's limit-connections / -rpm / -rps, per client address
            client_limiter = self.server.client_limiters.get(id(route))
            if client_limiter is not None:
                admitted = client_limiter.admit(ex.client_ip)
                if admitted in (REFUSED, REFUSED_CONNECTION):
                    if stats is not None:
                        stats.rate_limited += 1
                    limit = policy.client_limit
                    conn.send_error(ex, limit.status if admitted == REFUSED else limit.connection_status, None,
                                    detail="rate limited", reason="rate-limited")
                    return False
                if admitted == HELD:
                    held = client_limiter
        retry = policy.retry
        if retry is not None or delay or held is not None:
            if retry is not None and retry.per_try_timeout and ex.timeouts is None:
                ex.timeouts = _NO_TIMEOUTS
                ex.deadline = 0.0
            ex.policy = Attempts(ex, retry, delay=delay, abort=abort, held=held)
        return True

    def _check(self, conn: Downstream, ex: Exchange, answer: Answer,
               response_filters: tuple[ResponseFilter, ...]) -> None:
        """A filter's check too slow for the event loop (basic auth's bcrypt): run it on the check pool, then
        either answer (it failed) or dispatch the request again, whose filter now finds the check remembered.
        A body still coming waits meanwhile; a client that leaves cancels the wait (Exchange.connecting)."""
        future = checks.POOL.submit(answer.check)  # type: ignore[arg-type]  # (checked by the caller)
        if future is None:
            conn.send_error(ex, 503, None, detail="too many checks waiting", reason="overloaded")
            return
        holding = not ex.req_done and ex.has_body
        if holding:
            ex.client.block(BLOCK_CONNECT)
        ex.connecting = future

        def checked(done: asyncio.Future[bool]) -> None:
            if ex.connecting is done:
                ex.connecting = None
            if done.cancelled() or ex.finished:
                return
            ok = done.exception() is None and done.result()
            if answer.settle is not None:
                answer.settle(ok)
            if holding:
                ex.client.unblock(BLOCK_CONNECT)
            if ok:
                self.dispatch(conn, ex)
                if ex.conn is not None and not ex.finished:
                    ex.flush_upstream()  # (the connection flushes after a dispatch it made itself; not this one)
            else:
                self.answer(conn, ex, answer, response_filters)

        future.add_done_callback(checked)

    def _for_filters(self, head: Exchange, host: str, path: str) -> None:
        """What filters read of a request besides its fields (plain routes never need it); see
        Exchange.SET_BEFORE_READ. Set before listener filters (which never rewrite) and again before a
        rule's filters. The scheme is the one the client used: the listener's, or what a PROXY header's port
        or a trusted X-Forwarded-Proto says (nginx's $pass_access_scheme, which ssl-redirect reads)."""
        head.rewritten = False
        listener = self.listener
        settings = self.settings
        head.host = host
        head.path = path
        scheme = head.client.scheme
        trust = self.trust
        if trust is not None and head.forwarded_in is not None:
            scheme = trust.scheme(head) or scheme
        head.scheme = scheme
        head.port = listener.public_port
        head.https_port = settings.publish_https_port or 443  # no port unless named (lua_ingress.lua: ssl-redirect)

    def answer(self, conn: Downstream, ex: Exchange, answer: Answer,
               response_filters: tuple[ResponseFilter, ...] = ()) -> None:
        """The proxy answers itself (a redirect, a refusal); the answer of a rule's filter gets the rule's
        response filters too (a CORS preflight its Access-Control-* fields, a ResponseHeaderModifier its edits)."""
        fields = b""
        if response_filters:
            response = ResponseHead(answer.status, [])
            for response_filter in response_filters:
                response_filter.on_response(ex, response)
            fields = b"".join(response.fields)
        status = answer.status
        reason = ("redirect" if 300 <= status < 400 else "misdirected" if status == 421
                  else "unauthorized" if status == 401 else "filter")
        if answer.fields:
            fields = answer.fields + fields
        conn.send_error(ex, status, None, location=answer.location, detail=answer.detail, fields=fields,
                        reason=reason)


def _split_absolute(url: bytes) -> tuple[bytes, bytes] | None:
    """(authority, origin-form path) of an absolute-form request target, or None."""
    scheme = url[:8].lower()
    if scheme.startswith(b"http://"):
        rest = url[7:]
    elif scheme.startswith(b"https://"):
        rest = url[8:]
    else:
        return None
    end = len(rest)
    for separator in (b"/", b"?", b"#"):
        index = rest.find(separator)
        if 0 <= index < end:
            end = index
    authority = rest[:end].rpartition(b"@")[2]
    if not authority:
        return None
    path = rest[end:]
    if not path.startswith(b"/"):
        path = b"/" + path
    return authority, path
