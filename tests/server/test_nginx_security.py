"""ingress-nginx's security annotations end to end: Ingress objects → the real builder → the real proxy → pods.

Client addresses are real: each client socket is bound to its own 127.0.1.x source address, so allow and
deny lists and per-client limits see what they would see in a cluster. Each test names the ingress-nginx
e2e test (test/e2e/annotations/*.go) or documentation section it reproduces. Rate limits are checked with
bursts far above the limit and counts with tolerance (no wall-clock assertions).
"""

from __future__ import annotations

import asyncio
import socket
import struct

from server_harness import TIMEOUT, connect, encode_request, read_response, request, wait_until
from test_nginx_annotations import ingress, serve

HOST = "secure.foo.com"


async def test_allow_and_deny_lists_see_the_real_client_address(make_proxy, make_pods):
    """ipdenylist.go "only allow explicitly allowed IPs, deny all others" (with the connection's address
    instead of a trusted X-Forwarded-For, which is the ConfigMap's use-forwarded-headers: another task)."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("acl", HOST, ("/", "Prefix", "echo"),
                                 whitelist_source_range="127.0.1.0/24, 127.0.2.7",
                                 denylist_source_range="127.0.1.66"))
    statuses = {source: (await request(proxy.port, "/", host=HOST, source=source)).status
                for source in ("127.0.1.5", "127.0.2.7", "127.0.1.66", "127.0.3.1", "127.0.2.8")}
    assert statuses == {"127.0.1.5": 200, "127.0.2.7": 200, "127.0.1.66": 403, "127.0.3.1": 403, "127.0.2.8": 403}
    assert echo.requests == 2
    # An X-Forwarded-For from the client is not trusted for the check.
    forged = await request(proxy.port, "/", host=HOST, source="127.0.3.1", headers=[("X-Forwarded-For", "127.0.1.5")])
    assert forged.status == 403


async def test_an_invalid_cidr_closes_the_route_with_503(make_proxy, make_pods):
    """Fail closed (annotations.md "Whitelist source range"; ingress-nginx's denied location `return 503`):
    the route is never served unprotected, other Ingresses keep serving."""
    echo, other = await make_pods("echo", "other")
    proxy = await make_proxy()
    config = serve(proxy, [echo, other],
                   ingress("broken", HOST, ("/", "Prefix", "echo"), whitelist_source_range="127.0.1.0/24, 300.1.1.1"),
                   ingress("fine", "fine.foo.com", ("/", "Prefix", "other")))
    assert (await request(proxy.port, "/", host=HOST, source="127.0.1.5")).status == 503
    assert (await request(proxy.port, "/", host="fine.foo.com", source="127.0.1.5")).status == 200
    assert echo.requests == 0
    assert [w.name for w in config.warnings if "whitelist-source-range" in w.message] == ["broken"]


async def test_limit_rps_per_client_address(make_proxy, make_pods):
    """annotations.md "Rate Limiting": limit-rps per client address (burst = rps x multiplier, nodelay),
    503 over it; limit-whitelist addresses are never limited; another client has its own bucket."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("rps", HOST, ("/", "Prefix", "echo"), limit_rps="1", limit_burst_multiplier="2",
                                 limit_whitelist="127.0.1.9"))
    reader, writer = await connect(proxy.port, source="127.0.1.8")
    try:
        statuses = []
        for _ in range(60):  # one keep-alive connection: 60 requests in far less than the seconds they would need
            writer.write(encode_request("/", host=HOST))
            statuses.append((await read_response(reader)).status)
    finally:
        writer.close()
    passed = statuses.count(200)
    assert set(statuses) == {200, 503}
    assert 3 <= passed < 30, statuses  # a burst of 2 x 1 + 1 = 3 at once, then 1 a second
    assert statuses[:3] == [200, 200, 200]
    assert (await request(proxy.port, "/", host=HOST, source="127.0.1.10")).status == 200  # its own bucket
    exempt = [(await request(proxy.port, "/", host=HOST, source="127.0.1.9")).status for _ in range(40)]
    assert set(exempt) == {200}


async def test_limit_connections_counts_requests_in_progress(make_proxy, make_pods):
    """limitconnections.go "should limit-connections": 20 concurrent requests, limit-connections 8: 8 are
    served (200), 12 get 503; slots are given back when requests end; other clients are counted apart."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("conn", HOST, ("/", "Prefix", "echo"), limit_connections="8"))
    tasks = [asyncio.ensure_future(request(proxy.port, "/wait", host=HOST, source="127.0.1.20")) for _ in range(20)]
    try:
        await wait_until(lambda: echo.in_flight == 8 and sum(t.done() for t in tasks) == 12)
        assert (await request(proxy.port, "/", host=HOST, source="127.0.1.21")).status == 200  # another address
        echo.release.set()
        async with asyncio.timeout(TIMEOUT):
            statuses = [response.status for response in await asyncio.gather(*tasks)]
    finally:
        echo.release.set()
    assert (statuses.count(200), statuses.count(503)) == (8, 12)
    (limiter,) = set(proxy.server.client_limiters.values())
    await wait_until(lambda: not limiter.active)  # every slot given back
    assert (await request(proxy.port, "/", host=HOST, source="127.0.1.20")).status == 200


async def test_a_client_that_leaves_gives_its_slot_back(make_proxy, make_pods):
    """A request whose client goes away (a reset) mid-answer must not hold its limit-connections slot."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("conn", HOST, ("/", "Prefix", "echo"), limit_connections="1"))
    reader, writer = await connect(proxy.port, source="127.0.1.30")
    writer.write(encode_request("/wait", host=HOST))
    await wait_until(lambda: echo.in_flight == 1)
    assert (await request(proxy.port, "/", host=HOST, source="127.0.1.30")).status == 503
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST: the proxy sees the connection lost
    (limiter,) = set(proxy.server.client_limiters.values())
    await wait_until(lambda: not limiter.active)
    echo.release.set()
    assert (await request(proxy.port, "/", host=HOST, source="127.0.1.30")).status == 200


async def test_cors_preflight_and_headers_through_the_proxy(make_proxy, make_pods):
    """cors.go "should allow origin for cors" and the template's CORS block: the preflight is answered by
    the proxy with 204 (the pod never sees it); the pod's answers carry the headers for allowed origins."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("cors", HOST, ("/", "Prefix", "echo"), enable_cors="true",
                                 cors_allow_origin="https://origin.cors.com:8080, https://*.app.example",
                                 cors_max_age="200"))
    preflight = await request(proxy.port, "/api", host=HOST, method="OPTIONS",
                              headers=[("Origin", "https://x.app.example"), ("Access-Control-Request-Method", "PUT")])
    assert preflight.status == 204 and echo.requests == 0
    assert preflight.header("Access-Control-Allow-Origin") == "https://x.app.example"
    assert preflight.header("Access-Control-Allow-Methods") == "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    assert preflight.header("Access-Control-Max-Age") == "200"
    assert preflight.header("Access-Control-Allow-Credentials") == "true"
    response = await request(proxy.port, "/api", host=HOST, headers=[("Origin", "https://origin.cors.com:8080")])
    assert (response.status, response.header("X-Pod")) == (200, "echo")
    assert response.header("Access-Control-Allow-Origin") == "https://origin.cors.com:8080"
    other = await request(proxy.port, "/api", host=HOST, headers=[("Origin", "https://origin.cors.com")])
    assert other.status == 200 and other.header("Access-Control-Allow-Origin") is None


async def test_a_plain_ingress_next_to_secured_ones_runs_none_of_it(make_proxy, make_pods):
    """No new work for a plain Ingress route: it stays `plain` (no filters, no policy) beside secured ones."""
    echo, other = await make_pods("echo", "other")
    proxy = await make_proxy()
    config = serve(proxy, [echo, other],
                   ingress("plain", "plain.foo.com", ("/", "Prefix", "other")),
                   ingress("secured", HOST, ("/", "Prefix", "echo"), enable_cors="true", limit_rps="5",
                           whitelist_source_range="127.0.0.0/8"))
    plain = {route.ingress: route.plain for route in config.routes()}
    assert plain == {"plain": True, "secured": False}
    assert (await request(proxy.port, "/", host="plain.foo.com", source="127.0.1.40")).status == 200
