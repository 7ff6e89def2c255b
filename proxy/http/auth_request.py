"""External authentication in the data plane (ingress-nginx's `auth-url`, nginx's auth_request).

A route whose policy has an `ExternalAuth` gets an `AuthGate` as its exchange's policy once its filters and
limits passed (pipeline._rule). The pipeline builds the upstream request as usual and calls `begin`; the
gate asks the auth service first, then hands the request to the real start (Exchange.start, or the route's
Attempts). Meanwhile the client's body is not read (it waits for somewhere to go, as for a dial); a client
that leaves cancels the question (it is the exchange's `connecting` task); the route's request timeout
covers the wait. With `auth-cache-key`, a cached answer decides at once, without a task.

The request to the auth service (ingress-nginx's auth location): the auth method (default GET), no body,
the client's header fields but hop-by-hop ones and the proxy's own, plus Host (the auth URL's host),
X-Original-URL (scheme://Host + the URI the client sent), X-Original-Method, X-Sent-From
("nginx-ingress-controller"), X-Real-IP and X-Forwarded-For (the client address), X-Auth-Request-Redirect
(`auth-request-redirect`, or the URI), X-Request-ID (the request's own), and with `auth-method`
X-Original-URI and X-Scheme. Its answer:

- 2xx: the request goes on, with the `auth-response-headers` fields of the answer (replacing any the client
  sent: an absent one is not sent at all); the answer's Set-Cookie is added to the response when its
  status is one nginx's add_header adds to (COOKIE_STATUSES), or to any with `auth-always-set-cookie`;
- 401: 401 with the answer's WWW-Authenticate, or 302 to `auth-signin` (with its Set-Cookie) when set;
- 403: 403; anything else, an unreachable service or no answer within the timeout: 500 (nginx's).

The client is the proxy's own upstream machinery, not aiohttp (whose client the layer rules keep off the
data plane: it costs several times what our protocol path does): an `EndpointPool` per auth service
(scheme, host, port and keepalive settings; a DNS name is resolved at each dial, off the loop, as for an
ExternalName Service), whose idle-connection limit and idle timeout are exactly nginx's `keepalive N` and
`keepalive_timeout` (`auth-keepalive`, default 0: a connection per auth request, "Connection: close";
`auth-keepalive-timeout`), `auth-keepalive-requests` capping the requests per connection; https through
the pool's TLS (system trust store, the URL's host as SNI and checked name); httptools parses the answer,
whose body is read and dropped. The whole auth request is bounded by the auth's timeout (connect + read).
Pools are closed with the server (`close_sessions`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
import weakref
from typing import TYPE_CHECKING, Any

from httptools import HttpParserError, HttpResponseParser

from proxy.http import mirror
from proxy.http.attempts import Attempts
from proxy.http.downstream import BLOCK_CONNECT
from proxy.http.response_head import ResponseHead
from proxy.routing.external_auth import COOKIE_STATUSES, ExternalAuth
from proxy.routing.model import Endpoint
from proxy.routing.policies import BackendTLS
from proxy.upstream.errors import ProtocolError, UpstreamError
from proxy.upstream.pool import EndpointPool, TlsEndpointPool
from proxy.upstream.tls import UpstreamTLS, client_context

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.routing.filters import Mirror
    from proxy.routing.request import Request, Response
    from proxy.upstream.cluster import Upstream

logger = logging.getLogger("pyngress.proxy")

# Answers kept by the cache (all Ingresses of the process); the oldest go first beyond.
CACHE_LIMIT = 10_000
# Fields of the client's request not sent to the auth service: hop-by-hop, body framing, and those the
# auth request sets itself.
_NOT_SENT = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive",
                       b"proxy-connection", b"te", b"trailer", b"upgrade", b"expect", b"x-forwarded-for",
                       b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-real-ip",
                       b"x-request-id"})
_clock = time.monotonic


class Decision:
    """What the auth service answered, as far as the proxy uses it (cached as is)."""

    __slots__ = ("status", "fields", "cookies", "challenge")

    def __init__(self, status: int, fields: list[bytes], cookies: tuple[bytes, ...], challenge: bytes | None) -> None:
        self.status = status
        self.fields = fields  # auth-response-headers, flat (name, ": ", value, CRLF), ready for the upstream head
        self.cookies = cookies  # Set-Cookie values
        self.challenge = challenge  # WWW-Authenticate

    @classmethod
    def of(cls, auth: ExternalAuth, status: int, headers: list[tuple[bytes, bytes]]) -> Decision:
        """What an answer's status and header fields decide: the `auth-response-headers` fields of a 2xx answer
        (each one's first value, as nginx's $upstream_http_<name>), its Set-Cookie values and WWW-Authenticate."""
        wanted = {name.lower(): name for name in auth.response_headers} if 200 <= status < 300 else {}
        fields: list[bytes] = []
        cookies: list[bytes] = []
        challenge: bytes | None = None
        for name, value in headers:
            lowered = name.lower()
            if lowered in wanted:
                written = wanted.pop(lowered)
                if value:
                    fields += (written, b": ", value, b"\r\n")
            elif lowered == b"set-cookie":
                cookies.append(value)
            elif lowered == b"www-authenticate" and challenge is None:
                challenge = value
        return cls(status, fields, tuple(cookies), challenge)


# (zone, auth URL, rendered key) -> (expiry on the monotonic clock, decision); insertion-ordered for eviction.
_cache: dict[tuple[str, str, str], tuple[float, Decision]] = {}


class CacheStats:
    __slots__ = ("hits", "misses", "asked")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.asked = 0  # requests sent to auth services


STATS = CacheStats()


class AuthCookie:
    """A response filter of one request: the auth service's Set-Cookie on the response."""

    __slots__ = ("cookies", "always")
    order = 50

    def __init__(self, cookies: tuple[bytes, ...], always: bool) -> None:
        self.cookies = cookies
        self.always = always

    def on_response(self, request: Request, response: Response) -> None:
        if self.always or response.status in COOKIE_STATUSES:
            for value in self.cookies:
                response.add_header(b"Set-Cookie", value)


class AuthGate:
    """The policy of an exchange until its auth answer is in (see the module docstring); then `inner` (the
    route's Attempts, or None for Exchange.start) takes over."""

    __slots__ = ("ex", "auth", "inner", "mirrors", "stripped", "request_uri", "url", "key")

    def __init__(self, ex: Exchange, auth: ExternalAuth, inner: Attempts | None,
                 mirrors: list[tuple[Upstream, Mirror]] | None) -> None:
        self.ex = ex
        self.auth = auth
        self.inner = inner
        self.mirrors = mirrors
        target = ex.target
        uri = target.decode("latin-1") if target[:1] == b"/" else ex.path + ("?" + ex.query.decode("latin-1")
                                                                              if ex.query else "")
        self.request_uri = uri
        self.url = auth.url.render(ex, uri)
        key = auth.cache_key
        self.key = (auth.zone, self.url, key.render(ex, uri)) if key is not None else None
        # proxy_set_header: the client's own auth-response-headers fields never reach the pod (the auth service
        # still gets them: kept aside for `_headers`, built only when the service is asked).
        self.stripped: list[tuple[bytes, bytes]] = []
        if auth.response_headers:
            names = {name.lower() for name in auth.response_headers}
            fields = ex.fields
            self.stripped = [(fields[index], fields[index + 2]) for index in range(0, len(fields), 4)
                             if fields[index].lower() in names]
            for name in names:
                ex.remove_header(name)

    def _headers(self) -> list[bytes]:
        """The auth request's header lines (see the module docstring), ready bytes."""
        ex = self.ex
        auth = self.auth
        uri = self.request_uri.encode("latin-1")
        lines: list[bytes] = []
        fields = ex.fields
        listed = ex.connection_names or ()
        replaced = auth.set_names
        for index in range(0, len(fields), 4):
            name = fields[index]
            lowered = name.lower()
            if lowered in _NOT_SENT or lowered in listed or lowered in replaced:
                continue
            lines += (name, b": ", fields[index + 2], b"\r\n")
        trace = ex.trace  # a traced route: our traceparent, which the pipeline writes outside `fields`
        if trace is not None:
            lines += (b"traceparent: ", trace, b"\r\n")
        for name, template in auth.set_headers:
            lines += (name, b": ", template.render(ex, self.request_uri).encode("latin-1"), b"\r\n")
        for name, value in self.stripped:
            lines += (name, b": ", value, b"\r\n")
        http_host = ex.header(b"host") or ex.host.encode("latin-1")
        client = ex.client_address
        scheme = ex.scheme.encode("latin-1")
        lines += (b"Host: ", auth.host.render(ex, self.request_uri).encode("latin-1"),
                  b"\r\nX-Original-URL: ", scheme, b"://", http_host, uri,
                  b"\r\nX-Original-Method: ", ex.method,
                  b"\r\nX-Sent-From: nginx-ingress-controller\r\nX-Real-IP: ", client,
                  b"\r\nX-Forwarded-For: ", client,
                  b"\r\nX-Auth-Request-Redirect: ", auth.request_redirect or uri,
                  b"\r\nX-Request-ID: ", ex.request_id, b"\r\n")
        if auth.method:
            lines += (b"X-Original-URI: ", uri, b"\r\nX-Scheme: ", scheme, b"\r\n")
        return lines

    # ------------------------------------------------------------------ the policy interface (Exchange, records)

    @property
    def replays(self) -> bool:
        return self.inner is not None and self.inner.replays

    def connect(self, pool: EndpointPool) -> bool:
        return self.inner.connect(pool) if self.inner is not None else False

    def failed(self, error: UpstreamError) -> bool:
        return False  # (a route timeout while asking: answered by Exchange.fail)

    def done(self) -> None:
        if self.inner is not None:
            self.inner.done()

    # ------------------------------------------------------------------ asking

    def begin(self, upstream: Upstream, head: list[bytes], *, retries: int) -> None:
        """The upstream request is ready (`head`): decide from the cache, or ask the auth service first."""
        ex = self.ex
        ex.attempt_deadline = 0.0  # (read by the clock tick when the route has timeouts)
        key = self.key
        if key is not None:
            cached = _cache.get(key)
            if cached is not None:
                if cached[0] > _clock():
                    STATS.hits += 1
                    self._decided(cached[1], upstream, head, retries)
                    return
                del _cache[key]
            STATS.misses += 1
        if not ex.req_done and ex.has_body:
            ex.client.block(BLOCK_CONNECT)
        ex.connecting = asyncio.get_running_loop().create_task(self._ask(upstream, head, retries))

    async def _ask(self, upstream: Upstream, head: list[bytes], retries: int) -> None:
        ex = self.ex
        try:
            decision = await ask(self.auth, self.url, self._headers())
        except asyncio.CancelledError:
            raise
        except (UpstreamError, TimeoutError, OSError, ValueError) as error:  # nginx answers 500
            logger.warning("request %s: auth request to %s failed: %s", ex.request_id.decode("latin-1"),
                           self.url, error or type(error).__name__)
            decision = None
        ex.connecting = None
        if ex.finished:
            return
        try:
            if decision is None:
                self._answer(500, detail="auth service unreachable")
                return
            key = self.key
            if key is not None:
                seconds = self.auth.cache_seconds(decision.status)
                if seconds > 0:
                    if len(_cache) >= CACHE_LIMIT:
                        del _cache[next(iter(_cache))]
                    _cache[key] = (_clock() + seconds, decision)
            self._decided(decision, upstream, head, retries)
        except Exception:  # a bug: answer and log it rather than leaving the client hanging
            logger.exception("request %s: unexpected error after the auth request", ex.request_id.decode("latin-1"))
            if not ex.finished and not ex.resp_head_done:
                self._answer(500, detail="internal error")

    def _decided(self, decision: Decision, upstream: Upstream, head: list[bytes], retries: int) -> None:
        ex = self.ex
        status = decision.status
        auth = self.auth
        if 200 <= status < 300:
            if decision.fields:
                head[4:4] = decision.fields  # right after the request line
            if decision.cookies:
                ex.response_filters = (*ex.response_filters, AuthCookie(decision.cookies, auth.always_set_cookie))
            if self.mirrors:
                mirror.copy_request(ex, self.mirrors, head)
                if ex.req_done and ex.mirrors is not None:  # the body came in while asking: copies are complete
                    ex.mirrors.send()
                    ex.mirrors = None
            policy = ex.policy = self.inner
            if policy is None:
                if not upstream.guarded:
                    ex.start(upstream, head, retries=retries)
                else:
                    policy = ex.policy = Attempts(ex, None)
            if policy is not None:
                policy.begin(upstream, head, retries=retries)
            if ex.conn is not None and not ex.finished:
                ex.client.unblock(BLOCK_CONNECT)
                ex.flush_upstream()
            return
        if status == 401 and auth.signin is not None:
            fields = b"".join(b"Set-Cookie: " + value + b"\r\n" for value in decision.cookies)
            self._answer(302, location=auth.signin_location(ex, self.request_uri), fields=fields,
                         detail="auth-signin")
            return
        if status in (401, 403):
            fields = b"WWW-Authenticate: " + decision.challenge + b"\r\n" if status == 401 and decision.challenge \
                else b""
            if auth.always_set_cookie:
                fields += b"".join(b"Set-Cookie: " + value + b"\r\n" for value in decision.cookies)
            self._answer(status, fields=fields, detail="denied by the auth service")
            return
        logger.warning("request %s: auth service %s answered %d", ex.request_id.decode("latin-1"), self.url, status)
        self._answer(500, detail=f"auth service answered {status}")

    def _answer(self, status: int, *, location: bytes = b"", fields: bytes = b"", detail: str = "") -> None:
        """The proxy's own answer, with the rule's response filters (CORS) as for any filter's answer."""
        ex = self.ex
        ex.client.unblock(BLOCK_CONNECT)
        filters = ex.response_filters
        if filters:
            response = ResponseHead(status, [])
            for response_filter in filters:
                response_filter.on_response(ex, response)
            fields += b"".join(response.fields)
        ex.client.send_error(ex, status, None, location=location, fields=fields, detail=detail, reason="auth")


async def ask(auth: ExternalAuth, url: str, fields: list[bytes]) -> Decision:
    """One request to the auth service within the auth's timeout (`fields`: the head's header lines, ready
    bytes); raises on any failure to get an answer. A kept connection that turns out closed by the service
    before answering is replaced by a new one, once."""
    STATS.asked += 1
    scheme, host, port, target = _split(url)
    pools = await _pools()
    pool = pools.pool(scheme, host, port, auth)
    head = b"".join((auth.method.encode("latin-1") or b"GET", b" ", target.encode("latin-1"), b" HTTP/1.1\r\n",
                     *fields, b"Connection: close\r\n\r\n" if pool.limit <= 0 else b"\r\n"))
    async with asyncio.timeout(auth.timeout):
        for attempt in (1, 2):
            conn = pool.acquire()
            reused = conn is not None
            if conn is None:
                conn = await pool.connect()
            call = _AuthCall(head_only=auth.method == "HEAD")
            conn.user = call
            conn.requests += 1
            keep = False
            try:
                conn.transport.write(head)
                status, headers, keep = await call.done
            except _Stale:
                if reused and attempt == 1:
                    continue
                raise
            finally:
                conn.user = None
                if keep and conn.requests < auth.keepalive_requests:
                    pool.release(conn)
                else:
                    conn.close()
            return Decision.of(auth, status, headers)
    raise ProtocolError("the auth service closed the connection before answering")  # (not reached)


class _Stale(ConnectionError):
    """The connection closed before any byte of an answer (a kept one the service had closed)."""


class _AuthCall:
    """One auth request on one connection: the answer's status and the fields the proxy uses (the body is
    read and dropped, so the connection can be kept)."""

    __slots__ = ("parser", "done", "status", "headers", "received", "complete", "head_only")

    def __init__(self, *, head_only: bool) -> None:
        self.parser = HttpResponseParser(self)
        self.done: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bool]] = \
            asyncio.get_running_loop().create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.received = False
        self.complete = False  # the head is in
        self.head_only = head_only  # the answer to HEAD has no body, whatever its Content-Length says

    # ConnectionUser (proxy.upstream.connection)

    def upstream_data(self, data: bytes | memoryview) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except HttpParserError as error:
            self._fail(ProtocolError(f"malformed answer from the auth service: {error}"))

    def upstream_eof(self) -> None:
        self._ended()

    def upstream_lost(self, exc: Exception | None) -> None:
        self._ended()

    def upstream_write_paused(self) -> None:
        pass

    def upstream_write_resumed(self) -> None:
        pass

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.complete = True
        if self.head_only:
            self._finish(keep=False)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer: the final one follows
            self.headers.clear()
            self.complete = False
            return
        self._finish(keep=self.parser.should_keep_alive())

    # endings

    def _ended(self) -> None:
        if self.complete:
            self._finish(keep=False)  # a body delimited by the close: the head is all the proxy needs
        elif not self.received:
            self._fail(_Stale("the auth service closed the connection before answering"))
        else:
            self._fail(ProtocolError("the auth service closed the connection in the middle of its answer"))

    def _finish(self, *, keep: bool) -> None:
        if not self.done.done():
            self.done.set_result((self.status, self.headers, keep))

    def _fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)


def _split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, origin-form target) of a rendered auth URL; ValueError when it is not one."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"{url[:200]!r} is not an http(s) URL")
    cut = min((index for index in (rest.find("/"), rest.find("?")) if index >= 0), default=len(rest))
    authority, target = rest[:cut], rest[cut:]
    if not target.startswith("/"):
        target = "/" + target
    host, port_text = authority, ""
    if authority.startswith("["):
        host, _, after = authority[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    elif ":" in authority:
        host, _, port_text = authority.rpartition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise ValueError(f"{url[:200]!r} has no valid host and port")
    port = int(port_text) if port_text else 443 if scheme == "https" else 80
    if not 0 < port < 65536:
        raise ValueError(f"{url[:200]!r}: port out of range")
    return scheme, host.lower(), port, target


# Pools toward auth services kept per event loop; beyond, the oldest is closed (hosts from variables).
MAX_POOLS = 256


class AuthPools:
    """This loop's pools toward auth services (EndpointPool: idle connections LIFO, an idle timeout, DNS names
    resolved at each dial off the loop), one per (scheme, host, port, keepalive settings); and the client
    context for https ones (the system's trust store, the URL's host as SNI and checked name)."""

    __slots__ = ("pools", "context")

    def __init__(self, context: ssl.SSLContext) -> None:
        self.pools: dict[tuple[str, str, int, int, int, float], EndpointPool] = {}
        self.context = context

    def pool(self, scheme: str, host: str, port: int, auth: ExternalAuth) -> EndpointPool:
        key = (scheme, host, port, auth.keepalive, auth.keepalive_timeout, auth.connect_timeout)
        found = self.pools.get(key)
        if found is not None:
            return found
        if len(self.pools) >= MAX_POOLS:
            oldest = next(iter(self.pools))
            self.pools.pop(oldest).close()
        try:
            ipaddress.ip_address(host)
            resolve = False
        except ValueError:
            resolve = True
        endpoint = Endpoint(host, port)
        options: dict[str, Any] = {"resolve": resolve, "limit": auth.keepalive,
                                   "idle_timeout": float(auth.keepalive_timeout),
                                   "connect_timeout": auth.connect_timeout}
        if scheme == "https":
            tls = UpstreamTLS(_VERIFIED, context=self.context, server_name=host)
            found = TlsEndpointPool(endpoint, tls=tls, **options)
        else:
            found = EndpointPool(endpoint, **options)
        self.pools[key] = found
        return found

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()


# https auth services: verified against the system's trust store, the URL's host checked.
_VERIFIED = BackendTLS(verify=True, system_ca=True)
_loop_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[AuthPools]] = \
    weakref.WeakKeyDictionary()


async def _pools() -> AuthPools:
    """This loop's AuthPools. The first call loads the trust store in a thread (CPU work off the loop), in a task
    of its own: a request that goes away meanwhile does not cancel it for the others waiting."""
    loop = asyncio.get_running_loop()
    made = _loop_pools.get(loop)
    if made is None or (made.done() and (made.cancelled() or made.exception() is not None)):
        made = _loop_pools[loop] = loop.create_task(_make_pools(loop))
    return await asyncio.shield(made)


async def _make_pools(loop: asyncio.AbstractEventLoop) -> AuthPools:
    return AuthPools(await loop.run_in_executor(None, client_context, _VERIFIED))


async def close_sessions() -> None:
    """Close this loop's connections toward auth services (the server's close)."""
    made = _loop_pools.pop(asyncio.get_running_loop(), None)
    if made is None:
        return
    if not made.done():
        made.cancel()
        await asyncio.gather(made, return_exceptions=True)
    elif not made.cancelled() and made.exception() is None:
        made.result().close()


def clear_cache() -> None:
    _cache.clear()


__all__ = ["CACHE_LIMIT", "MAX_POOLS", "STATS", "AuthGate", "AuthPools", "Decision", "ask", "clear_cache",
           "close_sessions"]
