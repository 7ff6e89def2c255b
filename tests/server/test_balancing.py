"""Load balancers and cookie affinity through real sockets: least request, random, consistent hashing on the
source address, a header, a cookie or the URI, and affinity that follows pod churn."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

from aiohttp import web

from proxy.routing.policies import (
    CONSISTENT_HASH,
    HASH_COOKIE,
    HASH_HEADER,
    HASH_SOURCE_IP,
    HASH_URI,
    LEAST_REQUEST,
    RANDOM,
    ClusterPolicy,
    Ejection,
    LoadBalancer,
    SessionAffinity,
)
from server_harness import Pod, Rule, cluster, request, wait_until

APP = "default/app:80"


def balanced(kind: str, **fields: object) -> ClusterPolicy:
    return ClusterPolicy(load_balancer=LoadBalancer(kind=kind, **fields))  # type: ignore[arg-type]


async def test_least_request_prefers_the_idle_pod(make_proxy, make_pods):
    busy, idle = await make_pods("busy", "idle")

    async def hold(request: web.Request) -> None:
        await busy.release.wait()
        return None

    busy.fault = hold
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [busy.endpoint, idle.endpoint], policy=balanced(LEAST_REQUEST))])
    held: list[asyncio.Task] = []
    while not busy.in_flight:  # requests until one is stuck on `busy` (ties between idle pods are random)
        assert len(held) < 50
        held.append(asyncio.ensure_future(request(proxy.port, "/")))
        await wait_until(lambda: sum(t.done() for t in held) + busy.in_flight == len(held))
    before = busy.requests
    pods = [(await request(proxy.port, "/")).json()["pod"] for _ in range(20)]
    assert pods == ["idle"] * 20 and busy.requests == before
    busy.release.set()
    await asyncio.gather(*held)


async def test_least_request_prefers_the_faster_pod(make_proxy, make_pods):
    slow, fast = await make_pods("slow", "fast")

    async def lag(request: web.Request) -> None:
        await asyncio.sleep(0.02)
        return None

    slow.fault = lag
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [slow.endpoint, fast.endpoint], policy=balanced(LEAST_REQUEST))])
    counts = Counter([(await request(proxy.port, "/")).json()["pod"] for _ in range(40)])
    assert counts["fast"] >= 32, counts
    upstream = proxy.upstreams[APP]
    slow_pool, fast_pool = upstream.pools
    assert slow_pool.ewma > fast_pool.ewma > 0


async def test_random_uses_every_pod(make_proxy, make_pods):
    pods = await make_pods("a", "b", "c")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [p.endpoint for p in pods], policy=balanced(RANDOM))])
    counts = Counter([(await request(proxy.port, "/")).json()["pod"] for _ in range(60)])
    assert set(counts) == {"a", "b", "c"}


async def test_hash_on_a_header_keeps_each_value_on_one_pod_and_only_a_leaving_pods_keys_move(make_proxy, make_pods):
    pods = await make_pods("a", "b", "c")
    proxy = await make_proxy()
    policy = balanced(CONSISTENT_HASH, hash_on=HASH_HEADER, hash_key=b"x-user")

    def publish(members: list[Pod]) -> None:
        proxy.publish([Rule("", "/", APP)], [cluster(APP, [p.endpoint for p in members], policy=policy)])

    publish(pods)

    async def owners() -> dict[str, str]:
        seen: dict[str, set[str]] = defaultdict(set)
        for user in range(30):
            for _ in range(2):
                response = await request(proxy.port, "/", headers=[("X-User", f"user-{user}")])
                seen[f"user-{user}"].add(response.json()["pod"])
        assert all(len(found) == 1 for found in seen.values()), seen
        return {user: found.pop() for user, found in seen.items()}

    before = await owners()
    assert len(set(before.values())) >= 2
    publish(pods[:1] + pods[2:])  # b leaves
    after = await owners()
    assert all(after[user] == pod for user, pod in before.items() if pod != "b")
    assert "b" not in after.values()
    # A request without the header is still served (a random pod).
    assert (await request(proxy.port, "/")).status == 200


async def test_hash_on_source_address_cookie_and_uri(make_proxy, make_pods):
    pods = await make_pods("a", "b", "c")
    proxy = await make_proxy()
    endpoints = [p.endpoint for p in pods]
    cases = {
        HASH_SOURCE_IP: lambda i: {"source": f"127.0.0.{50 + i}"},
        HASH_COOKIE: lambda i: {"headers": [("Cookie", f"theme=dark; session=s{i}")]},
        HASH_URI: lambda i: {"path": f"/items/{i}?page=1"},
    }
    for hash_on, vary in cases.items():
        policy = balanced(CONSISTENT_HASH, hash_on=hash_on, hash_key=b"session")
        proxy.publish([Rule("", "/", APP)], [cluster(APP, endpoints, policy=policy)])
        chosen = set()
        for i in range(12):
            options = {"path": "/"} | vary(i)
            answers = {(await request(proxy.port, **options)).json()["pod"] for _ in range(3)}
            assert len(answers) == 1, (hash_on, i, answers)
            chosen |= answers
        assert len(chosen) >= 2, hash_on


async def test_affinity_cookie_keeps_a_client_on_its_pod_across_churn(make_proxy, make_pods):
    pods = await make_pods("a", "b", "c")
    proxy = await make_proxy()
    affinity = SessionAffinity(cookie=b"route", max_age=600, same_site=b"Lax")
    policy = ClusterPolicy(affinity=affinity)

    def publish(members: list[Pod]) -> None:
        proxy.publish([Rule("", "/", APP)], [cluster(APP, [p.endpoint for p in members], policy=policy)])

    publish(pods)
    first = await request(proxy.port, "/")
    cookie = first.header("Set-Cookie")
    assert cookie is not None and cookie.startswith("route=")
    assert "; Path=/; Max-Age=600; SameSite=Lax; HttpOnly" in cookie
    value = cookie.split(";")[0]
    home = first.json()["pod"]
    assert "127.0.0" not in value
    for _ in range(10):  # round robin would move it; the cookie does not
        response = await request(proxy.port, "/", headers=[("Cookie", value)])
        assert response.json()["pod"] == home and response.header("Set-Cookie") is None
    # Its pod leaves (no longer ready): another pod, and the cookie is rewritten to name it.
    publish([p for p in pods if p.name != home])
    moved = await request(proxy.port, "/", headers=[("Cookie", value)])
    new_home = moved.json()["pod"]
    new_cookie = moved.header("Set-Cookie")
    assert new_home != home and new_cookie is not None and new_cookie.split(";")[0] != value
    value = new_cookie.split(";")[0]
    publish(pods)  # the old pod is back: the rewritten cookie stays where it is
    for _ in range(5):
        response = await request(proxy.port, "/", headers=[("Cookie", value)])
        assert response.json()["pod"] == new_home and response.header("Set-Cookie") is None
    # A cookie naming no pod of the cluster gets a pod and a fresh cookie.
    stray = await request(proxy.port, "/", headers=[("Cookie", "route=0123456789abcdef")])
    assert stray.status == 200 and stray.header("Set-Cookie").startswith("route=")


async def test_affinity_moves_off_an_ejected_pod(make_proxy, make_pods):
    a, b = await make_pods("a", "b")
    proxy = await make_proxy()
    policy = ClusterPolicy(affinity=SessionAffinity(cookie=b"route"),
                           ejection=Ejection(consecutive_5xx=2, base_time=30, max_percent=0.5))
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [a.endpoint, b.endpoint], policy=policy)])
    first = await request(proxy.port, "/")
    value = first.header("Set-Cookie").split(";")[0]
    home = a if first.json()["pod"] == "a" else b
    home.fail_with(503)
    assert [(await request(proxy.port, "/", headers=[("Cookie", value)])).status for _ in range(2)] == [503, 503]
    assert proxy.upstreams[APP].ejected == 1
    response = await request(proxy.port, "/", headers=[("Cookie", value)])
    assert response.status == 200 and response.json()["pod"] != home.name
    assert response.header("Set-Cookie").split(";")[0] != value
