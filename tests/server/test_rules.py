"""Rules beyond a plain path, through real sockets: conditions, weighted backends, filters, mirrors, timeouts.

The tables are built by hand from the rule model (the Gateway API and annotation front ends
compile into the same objects; their translation is tested in tests/routing/).
"""

from __future__ import annotations

import asyncio
import json
import re

from proxy.http import mirror
from proxy.routing.filters import (
    HeaderEdits,
    Mirror,
    PathModifier,
    RequestHeaderModifier,
    RequestRedirect,
    ResponseHeaderModifier,
    URLRewrite,
    compose,
)
from proxy.routing.matches import Conditions, HeaderMatch, QueryMatch
from proxy.routing.model import KIND_HTTP_ROUTE, Backend, Backends, Route, Timeouts
from proxy.routing.table import Choice, RouteTable, VirtualHost
from server_harness import cluster, request

HOST = "rules.test"
A = "default/a:80"
B = "default/b:80"
M = "default/mirror:80"


def rule(path: str = "/", **fields: object) -> Route:
    fields.setdefault("cluster", A)
    return Route("default", "r", HOST, path, "Prefix", kind=KIND_HTTP_ROUTE, **fields)  # type: ignore[arg-type]


def table(*slots: tuple[str, Route | Choice]) -> RouteTable:
    return RouteTable(hosts={HOST: VirtualHost(prefix=dict(slots))})


def body(response) -> dict:
    return json.loads(response.body)


async def wait_for(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_conditions_pick_among_rules_of_one_path(make_proxy, make_pods):
    a, b, c, d = await make_pods("a", "b", "c", "d")
    proxy = await make_proxy()
    keys = {name: f"default/{name}:80" for name in "abcd"}
    choice = Choice((
        rule(cluster=keys["b"], conditions=Conditions(headers=(HeaderMatch(b"x-canary", b"yes"),))),
        rule(cluster=keys["c"], conditions=Conditions(query=(QueryMatch("v", pattern=re.compile(r"2\d*")),))),
        rule(cluster=keys["d"], conditions=Conditions(method=b"POST")),
        rule(cluster=keys["a"]),
    ))
    proxy.publish_table(table(("", choice)), [cluster(keys[p.name], [p.endpoint]) for p in (a, b, c, d)])
    cases = [
        (("/", "GET", [("X-Canary", "yes")]), "b"),
        (("/", "GET", [("X-CANARY", "no")]), "a"),
        (("/x?v=21", "GET", []), "c"),
        (("/x?v=3", "GET", []), "a"),
        (("/", "POST", []), "d"),
        (("/?v=2", "POST", [("x-canary", "yes")]), "b"),  # the first rule whose conditions hold
    ]
    for (path, method, headers), pod in cases:
        response = await request(proxy.port, path, host=HOST, method=method, headers=headers)
        assert response.header("X-Pod") == pod, (path, method, headers)


async def test_weighted_backends_share_requests_and_invalid_ones_answer_500(make_proxy, make_pods):
    a, b = await make_pods("a", "b")
    proxy = await make_proxy()
    clusters = [cluster(A, [a.endpoint]), cluster(B, [b.endpoint])]
    split = Backends((Backend(A, 1, service="a"), Backend(B, 1, service="b")))
    only_a = Backends((Backend(A, 5, service="a"), Backend(B, 0, service="b")))
    broken = Backends((Backend("", 1, service="missing"),))
    proxy.publish_table(table(("/split", rule("/split", cluster="", backends=split)),
                              ("/only-a", rule("/only-a", cluster="", backends=only_a)),
                              ("/broken", rule("/broken", cluster="", backends=broken)),
                              ("/none", rule("/none", cluster="", backends=Backends(())))), clusters)
    seen = {"a": 0, "b": 0}
    for _ in range(200):
        response = await request(proxy.port, "/split", host=HOST)
        seen[response.header("X-Pod")] += 1
    assert seen["a"] > 40 and seen["b"] > 40, seen  # 1:1 (a binomial tail this far out is ~1e-18)
    assert {(await request(proxy.port, "/only-a", host=HOST)).header("X-Pod") for _ in range(20)} == {"a"}
    for path in ("/broken", "/none"):
        response = await request(proxy.port, path, host=HOST)
        assert response.status == 500 and b"request id" in response.body
    services = {tuple(labels)[4] for labels, _ in proxy.server.traffic.snapshot()["routes"]}
    assert {"a", "b"} <= services  # a weighted rule counts under each backend's service


async def test_redirect_filter_answers_with_the_location(make_proxy, make_pods):
    (a,) = await make_pods("a")
    proxy = await make_proxy()
    moved = compose([RequestRedirect(status=301, hostname="new.test",
                                     path=PathModifier(prefix="/v2", matched="/old"))])
    scheme = compose([RequestRedirect(scheme="https")])
    port = compose([RequestRedirect(port=8443)])
    proxy.publish_table(table(("/old", rule("/old", filters=moved)), ("/s", rule("/s", filters=scheme)),
                              ("/p", rule("/p", filters=port))), [cluster(A, [a.endpoint])])
    response = await request(proxy.port, "/old/page?q=1", host=HOST)
    assert (response.status, response.header("Location")) == (301, f"http://new.test:{proxy.port}/v2/page?q=1")
    response = await request(proxy.port, "/s/x", host=HOST)
    assert (response.status, response.header("Location")) == (302, f"https://{HOST}/s/x")  # 443 left out
    response = await request(proxy.port, "/p", host=HOST)
    assert (response.status, response.header("Location")) == (302, f"http://{HOST}:8443/p")
    assert a.requests == 0


async def test_rewrite_and_header_filters_change_what_the_pod_and_the_client_see(make_proxy, make_pods):
    (a,) = await make_pods("a")
    proxy = await make_proxy()
    filters = compose([
        URLRewrite(hostname=b"internal.test", path=PathModifier(prefix="/", matched="/api")),
        RequestHeaderModifier(HeaderEdits(set=((b"X-Set", b"set"),), add=((b"X-Add", b"added"),),
                                          remove=(b"X-Remove",))),
        ResponseHeaderModifier(HeaderEdits(set=((b"X-Served-By", b"pyngress"),), remove=(b"X-Pod",))),
    ])
    proxy.publish_table(table(("/api", rule("/api", filters=filters))), [cluster(A, [a.endpoint])])
    response = await request(proxy.port, "/api/items?x=1", host=HOST,
                             headers=[("X-Set", "old"), ("x-remove", "gone"), ("X-Add", "first")])
    assert response.status == 200
    seen = body(response)
    assert seen["path"] == "/items?x=1"
    headers = [(k.lower(), v) for k, v in seen["headers"]]
    assert ("host", "internal.test") in headers
    assert ("x-set", "set") in headers and ("x-set", "old") not in headers
    assert [v for k, v in headers if k == "x-add"] == ["first", "added"]
    assert "x-remove" not in {k for k, _ in headers}
    assert ("x-forwarded-host", HOST) in headers  # the client's host, as it asked
    assert response.header("X-Served-By") == "pyngress" and response.header("X-Pod") is None


async def test_mirrors_get_a_copy_and_never_hold_up_the_answer(make_proxy, make_pods):
    a, copy = await make_pods("a", "mirror")
    proxy = await make_proxy()
    mirrored = compose([Mirror(M)])
    proxy.publish_table(table(("", rule("/", filters=mirrored))), [cluster(A, [a.endpoint]),
                                                                   cluster(M, [copy.endpoint])])
    response = await request(proxy.port, "/one", host=HOST, method="POST", body=b"payload")
    assert response.header("X-Pod") == "a"
    await wait_for(lambda: copy.requests == 1)
    # A mirror that never answers: the real request is answered anyway, the copy waits on its own.
    a.release.set()  # the real backend answers /wait at once; the mirror's holds it
    response = await request(proxy.port, "/wait", host=HOST)
    assert response.status == 200 and response.header("X-Pod") == "a"
    await wait_for(copy.waiting.is_set)
    assert mirror.STATS.in_flight == 1
    copy.release.set()
    await wait_for(lambda: mirror.STATS.in_flight == 0)
    # A body over the copy limit is not mirrored (the copy is dropped, never truncated).
    dropped = mirror.STATS.dropped
    requests = copy.requests
    big = b"x" * (mirror.MIRROR_BODY_LIMIT + 1)
    response = await request(proxy.port, "/big", host=HOST, method="POST", body=big)
    assert response.status == 200 and json.loads(response.body)["body"] == big.decode()
    assert mirror.STATS.dropped == dropped + 1 and copy.requests == requests
    counts = proxy.server.traffic.snapshot()["mirrors"]  # what /metrics shows as pyngress_mirror_requests_total
    assert counts["sent"] >= 2 and counts["answered"] >= 2 and counts["dropped"] >= 1


async def test_route_timeouts_answer_504(make_proxy, make_pods):
    (a,) = await make_pods("a")
    proxy = await make_proxy()
    limits = {"whole.test": Timeouts(request=0.2), "attempt.test": Timeouts(backend_request=0.2),
              "roomy.test": Timeouts(request=5)}
    hosts = {host: VirtualHost(prefix={"": rule(timeouts=timeouts)}) for host, timeouts in limits.items()}
    proxy.publish_table(RouteTable(hosts=hosts), [cluster(A, [a.endpoint])])
    assert proxy.server.tick <= 0.02  # the clock follows the shortest route timeout
    for host in ("whole.test", "attempt.test"):
        response = await request(proxy.port, "/slow?delay=3", host=host)
        assert response.status == 504, host
    assert (await request(proxy.port, "/slow?delay=0.3", host="roomy.test")).status == 200
