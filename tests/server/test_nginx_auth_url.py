"""ingress-nginx's external authentication (`auth-url` and companions) end to end: Ingress objects → the real
builder → the real proxy → a real auth service (an aiohttp app on 127.0.0.30) → echo pods.

Each test names the ingress-nginx e2e test (test/e2e/annotations/auth.go) or the documentation section
(annotations.md "External Authentication", the template's auth location) whose behaviour it reproduces.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from aiohttp import web

from backend_pods import Pki, leaf_with, server_context
from proxy.http import auth_request
from server_harness import TIMEOUT, connect, encode_request, read_response, request, wait_until
from test_nginx_annotations import ingress, serve

HOST = "auth.foo.com"
AUTH_HOST = "127.0.0.30"


class AuthService:
    """An auth service: "Bearer good" → 200 (X-User, X-Groups, a Set-Cookie), "Bearer forbidden" → 403,
    "Bearer broken" → 502, anything else → 401 with a WWW-Authenticate challenge. /hold waits for `release`."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []  # method, path, headers, body
        self.release = asyncio.Event()
        self.holding = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.peers: list[int] = []  # the source port of each request: one per connection

    def url(self, path: str = "/auth") -> str:
        return f"http://{AUTH_HOST}:{self.port}{path}"

    async def start(self, host: str = AUTH_HOST, context: ssl.SSLContext | None = None) -> AuthService:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, 0, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append(peer[1] if peer else 0)
        if request.path == "/hold":
            self.holding.set()
            await self.release.wait()
        token = request.headers.get("Authorization", "")
        if token == "Bearer good":
            response = web.Response(text="ok", headers={"X-User": "alice", "X-Groups": "admins"})
            response.set_cookie("session", "s1")
            return response
        if token == "Bearer forbidden":
            return web.Response(status=403, text="no")
        if token == "Bearer broken":
            return web.Response(status=502, text="broken")
        response = web.Response(status=401, text="who?", headers={"WWW-Authenticate": 'Bearer realm="test"'})
        response.set_cookie("tried", "1")
        return response

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def auth_service() -> AsyncIterator[AuthService]:
    auth_request.clear_cache()
    service = await AuthService().start()
    yield service
    await service.stop()
    auth_request.clear_cache()


GOOD = [("Authorization", "Bearer good")]


async def test_allowed_request_reaches_the_pod_with_the_auth_response_headers(make_proxy, make_pods, auth_service):
    """auth.go "should return status code 200 when signed in" and "should overwrite Foo header with auth
    response" (auth-response-headers replace the client's); the template's auth location for what the auth
    service is sent (X-Original-URL, X-Original-Method, X-Sent-From, X-Auth-Request-Redirect, the auth host
    as Host, the client address as X-Forwarded-For / X-Real-IP, no body)."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                                 auth_response_headers="X-User, X-Groups, X-Missing"))
    response = await request(proxy.port, "/app/page?a=b", host=HOST, method="POST", body=b"payload",
                             headers=[*GOOD, ("X-User", "mallory"), ("X-Missing", "forged")])
    assert response.status == 200, response.body
    seen = response.json()
    assert (seen["pod"], seen["path"], seen["body"]) == ("echo", "/app/page?a=b", "payload")
    headers = [(name.lower(), value) for name, value in seen["headers"]]
    assert ("x-user", "alice") in headers and ("x-groups", "admins") in headers
    assert ("x-user", "mallory") not in headers
    assert not [name for name, _ in headers if name == "x-missing"]  # absent from the answer: not sent at all
    assert response.header("Set-Cookie") is not None and "session=s1" in response.header("Set-Cookie")
    ((method, path, sent, body),) = auth_service.seen
    assert (method, path, body) == ("GET", "/auth", b"")
    assert sent["Host"] == AUTH_HOST
    assert sent["X-Original-URL"] == f"http://{HOST}/app/page?a=b"
    assert sent["X-Original-Method"] == "POST"
    assert sent["X-Sent-From"] == "nginx-ingress-controller"
    assert sent["X-Auth-Request-Redirect"] == "/app/page?a=b"
    assert sent["X-Forwarded-For"] == sent["X-Real-IP"] == "127.0.0.1"
    assert sent["Authorization"] == "Bearer good"
    assert sent["X-User"] == "mallory"  # the client's headers reach the auth service (nginx's subrequest)
    assert "Content-Length" not in sent or sent["Content-Length"] == "0"
    assert "X-Original-URI" not in sent  # only with auth-method


async def test_a_traced_request_sends_its_traceparent_to_the_auth_service_and_the_pod(make_proxy, make_pods,
                                                                                       auth_service):
    """The auth request carries the proxy's traceparent, the one the pod then gets (nginx's auth subrequest
    carries the request's trace context); no collector is needed for that (ratio 0: nothing is exported)."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(otlp_endpoint="http://127.0.0.1:9", trace_sample_ratio=0.0)
    serve(proxy, [echo], ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url()))
    response = await request(proxy.port, "/app", host=HOST, headers=GOOD)
    assert response.status == 200, response.body
    [upstream] = [value for name, value in response.json()["headers"] if name.lower() == "traceparent"]
    ((_, _, sent, _),) = auth_service.seen
    assert sent["traceparent"] == upstream and upstream.endswith("-00")


async def test_denied_401_with_its_challenge_and_403(make_proxy, make_pods, auth_service):
    """auth_request: 401 and 403 from the auth service are returned to the client (401 with its
    WWW-Authenticate); the pod never sees the request. auth-method sets the method and X-Original-URI."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                                 auth_method="POST", auth_request_redirect="https://back.example/here"))
    denied = await request(proxy.port, "/x", host=HOST)
    assert denied.status == 401
    assert denied.header("WWW-Authenticate") == 'Bearer realm="test"'
    assert denied.header("Set-Cookie") is None  # 401 is not one of add_header's statuses
    forbidden = await request(proxy.port, "/x", host=HOST, headers=[("Authorization", "Bearer forbidden")])
    assert forbidden.status == 403
    assert echo.requests == 0
    method, _, sent, _ = auth_service.seen[0]
    assert (method, sent["X-Original-URI"], sent["X-Scheme"]) == ("POST", "/x", "http")
    assert sent["X-Auth-Request-Redirect"] == "https://back.example/here"


async def test_signin_redirect_carries_the_original_url(make_proxy, make_pods, auth_service):
    """auth.go "should redirect to signin url when not signed in": 302 to auth-signin with
    rd=http://<host><escaped request URI>; auth-signin-redirect-param renames it ("orig")."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo],
          ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                  auth_signin="http://$host/auth/start"),
          ingress("param", "param.foo.com", ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                  auth_signin="http://$host/auth/start", auth_signin_redirect_param="orig"))
    redirected = await request(proxy.port, "/?a=b&c=d", host=HOST)
    assert redirected.status == 302
    assert redirected.header("Location") == f"http://{HOST}/auth/start?rd=http://{HOST}{quote('/?a=b&c=d', safe='')}"
    assert "tried=1" in (redirected.header("Set-Cookie") or "")  # the signin location's add_header
    other = await request(proxy.port, "/?a=b&c=d", host="param.foo.com")
    assert other.header("Location") == ("http://param.foo.com/auth/start?orig=http://param.foo.com"
                                        + quote("/?a=b&c=d", safe=""))
    signed_in = await request(proxy.port, "/?a=b&c=d", host=HOST, headers=GOOD)
    assert signed_in.status == 200 and echo.requests == 1


async def test_cached_answers_are_not_asked_again(make_proxy, make_pods, auth_service):
    """annotations.md auth-cache-key / auth-cache-duration (auth.go "should set cache_key when external auth
    cache is configured"): with a key, the auth service sees one call per key within the duration; a 403 is
    not in the default "200 202 401" list, so it is asked every time."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                                 auth_cache_key="$http_authorization", auth_response_headers="X-User"))
    for _ in range(3):
        response = await request(proxy.port, "/", host=HOST, headers=GOOD)
        assert response.status == 200
        assert ["X-User", "alice"] in response.json()["headers"]  # the cached answer's headers too
    assert len(auth_service.seen) == 1
    assert [(await request(proxy.port, "/", host=HOST)).status for _ in range(2)] == [401, 401]
    assert len(auth_service.seen) == 2  # another key: asked once, then cached
    forbidden = [("Authorization", "Bearer forbidden")]
    for _ in range(2):
        assert (await request(proxy.port, "/", host=HOST, headers=forbidden)).status == 403
    assert len(auth_service.seen) == 4


async def test_auth_service_down_or_odd_answer_is_500(make_proxy, make_pods, auth_service):
    """auth_request: an auth service that cannot be reached, or answers anything but 2xx/401/403, is an
    error: 500 (nginx's), never the pod."""
    (echo,) = await make_pods("echo")
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.31", 0))
        dead = probe.getsockname()[1]
    proxy = await make_proxy()
    serve(proxy, [echo],
          ingress("down", HOST, ("/", "Prefix", "echo"), auth_url=f"http://127.0.0.31:{dead}/auth"),
          ingress("odd", "odd.foo.com", ("/", "Prefix", "echo"), auth_url=auth_service.url()))
    assert (await request(proxy.port, "/", host=HOST, headers=GOOD)).status == 500
    assert (await request(proxy.port, "/", host="odd.foo.com",
                          headers=[("Authorization", "Bearer broken")])).status == 500
    assert echo.requests == 0


async def test_a_bad_auth_url_fails_closed_with_503(make_proxy, make_pods, auth_service):
    """auth.go "with invalid auth-url should deny whole location" ("https://invalid..auth.url": 503), and an
    nginx variable we do not understand: 503 too, with a warning naming the Ingress; others keep serving."""
    echo, other = await make_pods("echo", "other")
    proxy = await make_proxy()
    config = serve(proxy, [echo, other],
                   ingress("bad", HOST, ("/denied-auth", "Prefix", "echo"), auth_url="https://invalid..auth.url"),
                   ingress("var", "var.foo.com", ("/", "Prefix", "echo"), auth_url="http://$upstream_addr/auth"),
                   ingress("fine", "fine.foo.com", ("/", "Prefix", "other")))
    assert (await request(proxy.port, "/denied-auth", host=HOST, headers=GOOD)).status == 503
    assert (await request(proxy.port, "/", host="var.foo.com", headers=GOOD)).status == 503
    assert (await request(proxy.port, "/", host="fine.foo.com")).status == 200
    assert echo.requests == 0 and not auth_service.seen
    warned = sorted(w.name for w in config.warnings if "auth-url" in w.message)
    assert warned == ["bad", "var"]


async def test_auth_cookie_on_errors_only_with_always_set_cookie(make_proxy, make_pods, auth_service):
    """auth.go "user retains cookie by default", "user does not retain cookie if upstream returns error status
    code", "user with annotated ingress retains cookie if upstream returns error status code"."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo],
          ingress("plain-cookie", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url()),
          ingress("always", "always.foo.com", ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                  auth_always_set_cookie="true"))
    ok = await request(proxy.port, "/", host=HOST, headers=GOOD)
    assert ok.status == 200 and "session=s1" in (ok.header("Set-Cookie") or "")
    error = await request(proxy.port, "/status/503", host=HOST, headers=GOOD)
    assert error.status == 503 and error.header("Set-Cookie") is None
    kept = await request(proxy.port, "/status/503", host="always.foo.com", headers=GOOD)
    assert kept.status == 503 and "session=s1" in (kept.header("Set-Cookie") or "")


async def test_401_keeps_the_cors_headers(make_proxy, make_pods, auth_service):
    """auth.go "should return status code 401 and cors headers when authentication and cors is configured but
    Authorization header is not configured"."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                                 enable_cors="true"))
    response = await request(proxy.port, "/", host=HOST, headers=[("Origin", "https://x.example")])
    assert response.status == 401
    assert response.header("Access-Control-Allow-Origin") == "*"


async def test_body_waits_for_the_answer_and_a_client_that_leaves_cancels_it(make_proxy, make_pods, auth_service):
    """The auth request is asynchronous: while it is pending other requests are served, the request body
    waits (and reaches the pod whole once allowed); a client that leaves meanwhile frees its exchange."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url("/hold")),
          ingress("fine", "fine.foo.com", ("/", "Prefix", "echo")))
    body = b"x" * 200_000
    reader, writer = await connect(proxy.port)
    try:
        writer.write(encode_request("/up", host=HOST, method="PUT", headers=GOOD, body=body))
        async with asyncio.timeout(TIMEOUT):
            await auth_service.holding.wait()
        assert (await request(proxy.port, "/", host="fine.foo.com")).status == 200  # the loop is not blocked
        auth_service.release.set()
        response = await read_response(reader)
    finally:
        writer.close()
    assert response.status == 200
    assert response.json()["body"] == body.decode()
    # A client gone while its auth request is pending: nothing is forwarded, nothing is left behind.
    auth_service.release.clear()
    auth_service.holding.clear()
    before = echo.requests
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/gone", host=HOST, headers=GOOD))
    async with asyncio.timeout(TIMEOUT):
        await auth_service.holding.wait()
    writer.close()
    await wait_until(lambda: not proxy.server.connections)
    auth_service.release.set()
    assert (await request(proxy.port, "/", host="fine.foo.com")).status == 200
    assert echo.requests == before + 1


async def test_keepalive_reuses_connections_to_the_auth_service(make_proxy, make_pods, auth_service):
    """annotations.md auth-keepalive (auth.go "should create additional upstream block when auth-keepalive is
    set with HTTP/1.x"): with it, sequential auth requests share one connection; without it (the default),
    each auth request has its own connection."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo],
          ingress("kept", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(), auth_keepalive="4",
                  auth_keepalive_timeout="30"),
          ingress("closed", "closed.foo.com", ("/", "Prefix", "echo"), auth_url=auth_service.url()))
    for _ in range(3):
        assert (await request(proxy.port, "/", host=HOST, headers=GOOD)).status == 200
    assert len(set(auth_service.peers)) == 1
    auth_service.peers.clear()
    for _ in range(3):
        assert (await request(proxy.port, "/", host="closed.foo.com", headers=GOOD)).status == 200
    assert len(set(auth_service.peers)) == 3


async def test_keepalive_requests_caps_the_requests_per_connection(make_proxy, make_pods, auth_service):
    """annotations.md auth-keepalive-requests (nginx's keepalive_requests): a kept connection carries at most
    that many auth requests."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("kept", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                                 auth_keepalive="4", auth_keepalive_requests="2"))
    for _ in range(5):
        assert (await request(proxy.port, "/", host=HOST, headers=GOOD)).status == 200
    assert len(set(auth_service.peers)) == 3  # 2 + 2 + 1


async def test_a_kept_connection_the_service_closed_is_replaced(make_proxy, make_pods):
    """An auth service that closes each connection after answering (without saying "Connection: close"):
    the kept connection is found closed and the auth request goes out on a new one; every request is served."""
    (echo,) = await make_pods("echo")
    connections = 0

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-User: raw\r\n\r\nok")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(answer_once, "127.0.0.32", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        proxy = await make_proxy()
        serve(proxy, [echo], ingress("raw", HOST, ("/", "Prefix", "echo"), auth_url=f"http://127.0.0.32:{port}/",
                                     auth_keepalive="2", auth_response_headers="X-User"))
        for _ in range(4):
            response = await request(proxy.port, "/", host=HOST)
            assert response.status == 200
            assert ["X-User", "raw"] in response.json()["headers"]
        assert connections == 4
    finally:
        server.close()
        await server.wait_closed()


async def test_https_auth_service_is_verified(make_proxy, make_pods, tmp_path, monkeypatch):
    """An https auth-url: TLS with the URL's host as the checked name, against the trust store (here a test
    CA given as SSL_CERT_FILE, read when the process's auth client context is made); a certificate for
    another name is refused: 500, never served. (ingress-nginx does not verify by default: a difference.)"""
    pki = Pki(tmp_path, name="auth")
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.cafile))
    auth_request.clear_cache()
    good = await AuthService().start("127.0.0.33", server_context(leaf_with(pki, ips=("127.0.0.33",))))
    wrong = await AuthService().start("127.0.0.34", server_context(leaf_with(pki, ips=("127.0.0.99",))))
    try:
        (echo,) = await make_pods("echo")
        proxy = await make_proxy()
        serve(proxy, [echo],
              ingress("tls", HOST, ("/", "Prefix", "echo"), auth_url=f"https://127.0.0.33:{good.port}/auth"),
              ingress("bad", "bad.foo.com", ("/", "Prefix", "echo"),
                      auth_url=f"https://127.0.0.34:{wrong.port}/auth"))
        assert (await request(proxy.port, "/", host=HOST, headers=GOOD)).status == 200
        assert (await request(proxy.port, "/", host=HOST)).status == 401
        assert len(good.seen) == 2
        assert (await request(proxy.port, "/", host="bad.foo.com", headers=GOOD)).status == 500
        assert not wrong.seen
    finally:
        await good.stop()
        await wrong.stop()


async def test_a_plain_ingress_beside_an_authenticated_one_stays_plain(make_proxy, make_pods, auth_service):
    """No new work for routes without auth-url."""
    echo, other = await make_pods("echo", "other")
    proxy = await make_proxy()
    config = serve(proxy, [echo, other],
                   ingress("plain", "plain.foo.com", ("/", "Prefix", "other")),
                   ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url()))
    assert {route.ingress: route.plain for route in config.routes()} == {"plain": True, "ext": False}


async def test_auth_with_limits_and_retries_hands_over_to_the_attempts(make_proxy, make_pods, auth_service):
    """auth-url beside limit-connections and proxy-next-upstream (nginx: preaccess limits, then the auth
    request, then the proxying with its retries): allowed requests are served, the limit's slots are given
    back, and a denied request never takes the retry path."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                                 limit_connections="3", proxy_next_upstream="error timeout http_503",
                                 proxy_next_upstream_tries="2", auth_response_headers="X-User"))
    statuses = await asyncio.gather(*(request(proxy.port, "/", host=HOST, headers=GOOD) for _ in range(3)))
    assert [response.status for response in statuses] == [200, 200, 200]
    assert all(["X-User", "alice"] in response.json()["headers"] for response in statuses)
    assert (await request(proxy.port, "/", host=HOST)).status == 401
    (limiter,) = set(proxy.server.client_limiters.values())
    await wait_until(lambda: not limiter.active)
    assert echo.requests == 3


async def test_auth_proxy_set_headers_reach_the_auth_service(make_proxy, make_pods, auth_service):
    """auth.go "should set proxy_set_header 'My-Custom-Header' '42' when auth-proxy-set-headers is set": the
    ConfigMap's headers are sent to the auth service (replacing the client's of that name), never to the pod;
    without the ConfigMap the route answers 503 and the auth service is not asked."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    ext = ingress("ext", HOST, ("/", "Prefix", "echo"), auth_url=auth_service.url(),
                  auth_proxy_set_headers="auth-headers")
    serve(proxy, [echo], ext)
    assert (await request(proxy.port, "/", host=HOST, headers=GOOD)).status == 503
    assert auth_service.seen == []
    maps = {("default", "auth-headers"): {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "auth-headers", "namespace": "default"},
                                          "data": {"My-Custom-Header": "42", "X-Seen-Host": "$host"}}}
    serve(proxy, [echo], ext, config_maps=maps)
    response = await request(proxy.port, "/", host=HOST, headers=[*GOOD, ("My-Custom-Header", "forged")])
    assert response.status == 200, response.body
    ((_, _, sent, _),) = auth_service.seen
    assert sent["My-Custom-Header"] == "42" and sent["X-Seen-Host"] == HOST
    pod_headers = {name.lower(): value for name, value in response.json()["headers"]}
    assert pod_headers["my-custom-header"] == "forged"  # the pod gets the client's request as it was


async def test_global_auth_from_the_configmap(make_proxy, make_pods, auth_service):
    """configmap.md "global-auth-url" / annotations.md "Global External Authentication": every Ingress without
    its own auth-url asks the global auth service (with global-auth-response-headers copied to the pod);
    enable-global-auth "false" is served without it."""
    from test_nginx_configmap import serve as serve_configured
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    serve_configured(proxy, [echo], {"global-auth-url": auth_service.url("/global"),
                                     "global-auth-response-headers": "X-User"},
                     ingress("plain", HOST, ("/", "Prefix", "echo")),
                     ingress("out", "out.foo.com", ("/", "Prefix", "echo"), enable_global_auth="false"))
    assert (await request(proxy.port, "/", host=HOST)).status == 401
    allowed = await request(proxy.port, "/", host=HOST, headers=GOOD)
    assert allowed.status == 200
    assert ["X-User", "alice"] in allowed.json()["headers"]
    assert [path for _, path, _, _ in auth_service.seen] == ["/global", "/global"]
    assert (await request(proxy.port, "/", host="out.foo.com")).status == 200
    assert len(auth_service.seen) == 2
