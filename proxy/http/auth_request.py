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

The client is aiohttp's, not the upstream pools: auth URLs are any http(s) URL (cluster DNS names,
external HTTPS services with SNI and verification), which the pools, keyed by endpoint IPs from
EndpointSlices, do not resolve or speak; and this path costs only the routes that use it (a cache hit costs
no I/O at all). One session per event loop and keepalive setting: `auth-keepalive` 0 closes each
connection after its answer (ingress-nginx's default); above 0, idle connections are kept
`auth-keepalive-timeout` seconds. Sessions are closed with the server (`close_sessions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from proxy.http.attempts import Attempts
from proxy.http.response_head import ResponseHead
from proxy.routing.external_auth import COOKIE_STATUSES, ExternalAuth

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.routing.request import Request, Response
    from proxy.upstream.cluster import Upstream
    from proxy.upstream.errors import UpstreamError
    from proxy.upstream.pool import EndpointPool

logger = logging.getLogger("pyngress.proxy")

# Exchange's "no upstream connection yet" flow-control bit (proxy.http.exchange.BLOCK_CONNECT).
_BLOCK_CONNECT = 1
# Auth requests in flight at once per session; more wait in aiohttp's queue (within their timeout).
AUTH_CONCURRENCY = 256
# Answers kept by the cache (all Ingresses of the process); the oldest go first beyond.
CACHE_LIMIT = 10_000
# An auth answer's body is read (so its connection can be kept) only when at most this long.
_BODY_LIMIT = 64 * 1024
# Fields of the client's request not sent to the auth service: hop-by-hop, body framing, and those the
# auth request sets itself.
_NOT_SENT = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive",
                       b"proxy-connection", b"te", b"trailer", b"upgrade", b"expect", b"x-forwarded-for",
                       b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-real-ip",
                       b"x-request-id"})
_SKIP_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
_clock = time.monotonic


class Decision:
    """What the auth service answered, as far as the proxy uses it (cached as is)."""

    __slots__ = ("status", "fields", "cookies", "challenge")

    def __init__(self, status: int, fields: list[bytes], cookies: tuple[bytes, ...], challenge: bytes | None) -> None:
        self.status = status
        self.fields = fields  # auth-response-headers, flat (name, ": ", value, CRLF), ready for the upstream head
        self.cookies = cookies  # Set-Cookie values
        self.challenge = challenge  # WWW-Authenticate


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
                 mirrors: list[Upstream] | None) -> None:
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

    def _headers(self) -> CIMultiDict[str]:
        ex = self.ex
        auth = self.auth
        uri = self.request_uri
        headers: CIMultiDict[str] = CIMultiDict()
        fields = ex.fields
        listed = ex.connection_names or ()
        for index in range(0, len(fields), 4):
            name = fields[index]
            lowered = name.lower()
            if lowered in _NOT_SENT or lowered in listed:
                continue
            headers.add(name.decode("latin-1"), fields[index + 2].decode("latin-1"))
        for name, value in self.stripped:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        host = ex.header(b"host")
        http_host = host.decode("latin-1") if host is not None else ex.host
        client = ex.client_address.decode("latin-1")
        headers["Host"] = auth.host.render(ex, uri)
        headers["X-Original-URL"] = f"{ex.scheme}://{http_host}{uri}"
        headers["X-Original-Method"] = ex.method.decode("latin-1")
        headers["X-Sent-From"] = "nginx-ingress-controller"
        headers["X-Real-IP"] = client
        headers["X-Forwarded-For"] = client
        headers["X-Auth-Request-Redirect"] = auth.request_redirect.decode("latin-1") or uri
        headers["X-Request-ID"] = ex.request_id.decode("latin-1")
        if auth.method:
            headers["X-Original-URI"] = uri
            headers["X-Scheme"] = ex.scheme
        return headers

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
            ex.client.block(_BLOCK_CONNECT)
        ex.connecting = asyncio.get_running_loop().create_task(self._ask(upstream, head, retries))

    async def _ask(self, upstream: Upstream, head: list[bytes], retries: int) -> None:
        ex = self.ex
        try:
            decision = await ask(self.auth, self.url, self._headers())
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:  # nginx answers 500
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
                ex.mirror([(target, list(head)) for target in self.mirrors])
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
                ex.client.unblock(_BLOCK_CONNECT)
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
        ex.client.unblock(_BLOCK_CONNECT)
        filters = ex.response_filters
        if filters:
            response = ResponseHead(status, [])
            for response_filter in filters:
                response_filter.on_response(ex, response)
            fields += b"".join(response.fields)
        ex.client.send_error(ex, status, None, location=location, fields=fields, detail=detail, reason="auth")


async def ask(auth: ExternalAuth, url: str, headers: CIMultiDict[str]) -> Decision:
    """One request to the auth service, within the auth's timeout; raises on any failure to get an answer."""
    STATS.asked += 1
    session = _session(auth.keepalive, auth.keepalive_timeout)
    timeout = aiohttp.ClientTimeout(total=auth.timeout, sock_connect=auth.connect_timeout)
    async with session.request(auth.method or "GET", URL(url, encoded=True), headers=headers,
                               allow_redirects=False, timeout=timeout, skip_auto_headers=_SKIP_AUTO) as response:
        length = response.content_length
        if length is not None and length <= _BODY_LIMIT:
            await response.read()  # drained: the connection can be kept
        fields: list[bytes] = []
        if 200 <= response.status < 300:
            for name in auth.response_headers:
                value = response.headers.get(name.decode("latin-1"))
                if value:
                    fields += (name, b": ", value.encode("latin-1"), b"\r\n")
        cookies = tuple(value.encode("latin-1") for value in response.headers.getall("Set-Cookie", ()))
        challenge = response.headers.get("WWW-Authenticate")
        return Decision(response.status, fields, cookies, challenge.encode("latin-1") if challenge else None)


# Per event loop: (keepalive, keepalive timeout) -> session.
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, int], aiohttp.ClientSession]] = \
    weakref.WeakKeyDictionary()


def _session(keepalive: int, keepalive_timeout: int) -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    sessions = _sessions.setdefault(loop, {})
    key = (1 if keepalive else 0, keepalive_timeout if keepalive else 0)
    session = sessions.get(key)
    if session is None or session.closed:
        if keepalive:
            connector = aiohttp.TCPConnector(limit=AUTH_CONCURRENCY, keepalive_timeout=keepalive_timeout)
        else:
            connector = aiohttp.TCPConnector(limit=AUTH_CONCURRENCY, force_close=True)
        session = sessions[key] = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                        cookie_jar=aiohttp.DummyCookieJar())
    return session


async def close_sessions() -> None:
    """Close this loop's auth sessions (the server's close)."""
    sessions = _sessions.pop(asyncio.get_running_loop(), {})
    for session in sessions.values():
        await session.close()


def clear_cache() -> None:
    _cache.clear()


__all__ = ["AUTH_CONCURRENCY", "CACHE_LIMIT", "STATS", "AuthGate", "Decision", "ask", "clear_cache",
           "close_sessions"]
