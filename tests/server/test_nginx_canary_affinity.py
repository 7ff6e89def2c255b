"""ingress-nginx's `affinity-canary-behavior` end to end: a main Ingress with cookie affinity and its canary.

Reproduces test/e2e/annotations/canary.go "canary affinity behavior": "always routes traffic to canary if first
request was affinitized to canary" (default and explicit sticky) and "routes traffic to either mainline or canary
backend (legacy behavior)", plus balancer.lua's first rule (a request affinitized to the main backend stays
there). The canary weight is 0 here so that only the cookie can send a request to the canary: deterministic.
"""

from __future__ import annotations

from server_harness import request
from test_nginx_annotations import ingress, serve

HOST = "foo"


async def start(make_proxy, make_pods, **canary: str):
    main, canary_pod = await make_pods("main", "canary")
    proxy = await make_proxy()
    serve(proxy, [main, canary_pod],
          ingress("main", HOST, ("/", "Prefix", "main"), affinity="cookie", session_cookie_name="aff"),
          ingress("canary", HOST, ("/", "Prefix", "canary"), created="2024-02-01T00:00:00Z", canary="true",
                  canary_by_header="ForceCanary", canary_by_header_value="yes", canary_weight="0", **canary))
    return proxy


async def cookie_from(port: int, headers: list[tuple[str, str]], pod: str) -> str:
    response = await request(port, "/info", host=HOST, headers=headers)
    assert response.header("X-Pod") == pod
    set_cookie = response.header("Set-Cookie")
    assert set_cookie is not None and set_cookie.startswith("aff=")
    return set_cookie.split(";")[0]


async def test_sticky_by_default_keeps_a_canary_client_on_the_canary(make_proxy, make_pods):
    for canary in ({}, {"affinity_canary_behavior": "sticky"}):
        proxy = await start(make_proxy, make_pods, **canary)
        cookie = await cookie_from(proxy.port, [("ForceCanary", "yes")], "canary")
        for _ in range(10):
            response = await request(proxy.port, "/info", host=HOST, headers=[("Cookie", cookie)])
            assert response.header("X-Pod") == "canary", canary


async def test_a_client_affinitized_to_main_stays_on_main_even_when_forced(make_proxy, make_pods):
    proxy = await start(make_proxy, make_pods)
    cookie = await cookie_from(proxy.port, [], "main")
    response = await request(proxy.port, "/info", host=HOST, headers=[("Cookie", cookie), ("ForceCanary", "yes")])
    assert response.header("X-Pod") == "main"


async def test_legacy_lets_the_canary_rules_decide_again(make_proxy, make_pods):
    proxy = await start(make_proxy, make_pods, affinity_canary_behavior="legacy")
    cookie = await cookie_from(proxy.port, [("ForceCanary", "yes")], "canary")
    for _ in range(5):
        response = await request(proxy.port, "/info", host=HOST, headers=[("Cookie", cookie)])
        assert response.header("X-Pod") == "main"  # weight 0: without the header, the main backend
