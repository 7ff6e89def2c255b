"""Gateway API rules over HTTP/2: the same pipeline, so the same matches and filters as over HTTP/1.1
(tests/server/test_rules.py is the HTTP/1.1 twin; the Gateway API conformance cases HTTPRouteHeaderMatching,
HTTPRouteRequestHeaderModifier, HTTPRouteResponseHeaderModifier, HTTPRouteRedirectHostAndStatus are the
behaviour reproduced)."""

from __future__ import annotations

from proxy.routing.filters import (
    HeaderEdits,
    PathModifier,
    RequestHeaderModifier,
    RequestRedirect,
    ResponseHeaderModifier,
    URLRewrite,
    compose,
)
from proxy.routing.matches import Conditions, HeaderMatch
from proxy.routing.model import KIND_HTTP_ROUTE, Route
from proxy.routing.table import Choice, RouteTable, VirtualHost
from server_harness import cluster

HOST = "rules.test"
A = "default/a:80"
B = "default/b:80"


def rule(path: str = "/", **fields: object) -> Route:
    fields.setdefault("cluster", A)
    return Route("default", "r", HOST, path, "Prefix", kind=KIND_HTTP_ROUTE, **fields)  # type: ignore[arg-type]


async def test_matches_and_filters_apply_to_h2_streams(make_proxy, make_pods, h2_clients):
    a, b = await make_pods("a", "b")
    proxy = await make_proxy()
    choice = Choice((rule(cluster=B, conditions=Conditions(headers=(HeaderMatch(b"x-canary", b"yes"),))),
                     rule(cluster=A)))
    filters = compose([
        URLRewrite(hostname=b"internal.test", path=PathModifier(prefix="/", matched="/api")),
        RequestHeaderModifier(HeaderEdits(set=((b"X-Set", b"set"),), remove=(b"X-Remove",))),
        ResponseHeaderModifier(HeaderEdits(set=((b"X-Served-By", b"pyngress"),), remove=(b"X-Pod",))),
    ])
    moved = compose([RequestRedirect(status=301, hostname="new.test", path=PathModifier(prefix="/v2",
                                                                                        matched="/old"))])
    table = RouteTable(hosts={HOST: VirtualHost(prefix={"": choice, "/api": rule("/api", filters=filters),
                                                       "/old": rule("/old", filters=moved)})})
    proxy.publish_table(table, [cluster(A, [a.endpoint]), cluster(B, [b.endpoint])])
    client = await h2_clients(proxy.port)

    assert (await client.get("/", authority=HOST, headers=[("x-canary", "yes")])).header(b"x-pod") == b"b"
    assert (await client.get("/", authority=HOST)).header(b"x-pod") == b"a"

    rewritten = await client.get("/api/items?x=1", authority=HOST, headers=[("x-set", "old"), ("x-remove", "1")])
    seen = rewritten.json()
    headers = [(name.lower(), value) for name, value in seen["headers"]]
    assert seen["path"] == "/items?x=1" and ("host", "internal.test") in headers
    assert ("x-set", "set") in headers and "x-remove" not in {name for name, _ in headers}
    assert rewritten.header(b"x-served-by") == b"pyngress" and rewritten.header(b"x-pod") is None

    redirect = await client.get("/old/page?q=1", authority=HOST)
    assert redirect.status == 301
    assert redirect.header(b"location") == f"http://new.test:{proxy.port}/v2/page?q=1".encode()
