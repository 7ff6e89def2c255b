"""Passive health through real sockets: a pod answering 5xx or refusing connections is ejected, skipped by the
balancer, and comes back by itself; never more than the max percent at once."""

from __future__ import annotations

import random

from aiohttp import web

from proxy.routing.policies import RETRY_5XX, ClusterPolicy, Ejection, RetryPolicy, RoutePolicy
from server_harness import Rule, cluster, request, wait_until
from test_errors import dead_endpoint

APP = "default/app:80"


def ejecting(**fields: object) -> ClusterPolicy:
    return ClusterPolicy(ejection=Ejection(**fields))  # type: ignore[arg-type]


def cluster_counts(proxy) -> dict:
    (entry,) = proxy.server.traffic.snapshot()["clusters"]
    return entry[1]


async def test_a_failing_pod_is_ejected_skipped_and_returns_by_itself(make_proxy, make_pods):
    bad, b, c = await make_pods("bad", "b", "c")
    bad.fail_with(503)
    proxy = await make_proxy()
    policy = ejecting(consecutive_5xx=3, base_time=0.3, max_percent=0.5)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [bad.endpoint, b.endpoint, c.endpoint], policy=policy)])
    upstream = proxy.upstreams[APP]
    statuses = []
    while not upstream.ejected:
        assert len(statuses) < 30
        statuses.append((await request(proxy.port, "/")).status)
    assert statuses.count(503) == 3 == bad.requests
    assert cluster_counts(proxy)["ejected"] == 1 and cluster_counts(proxy)["ejections"] == 1
    for _ in range(12):
        assert (await request(proxy.port, "/")).status == 200
    assert bad.requests == 3
    await wait_until(lambda: not upstream.ejected, timeout=5)  # back after base_time
    bad.fail_with(0)  # it recovered meanwhile
    pods = {(await request(proxy.port, "/")).json()["pod"] for _ in range(6)}
    assert pods == {"bad", "b", "c"}
    assert cluster_counts(proxy)["ejected"] == 0 and cluster_counts(proxy)["ejections"] == 1


async def test_refused_connects_eject_the_endpoint(make_proxy, make_pods):
    b, c = await make_pods("b", "c")
    proxy = await make_proxy()
    policy = ejecting(consecutive_gateway_errors=2, base_time=30, max_percent=0.5)
    dead = dead_endpoint()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [dead, b.endpoint, c.endpoint], policy=policy)])
    upstream = proxy.upstreams[APP]
    for _ in range(12):  # connect failures are retried on the next endpoint: clients never notice
        assert (await request(proxy.port, "/")).status == 200
    assert upstream.ejected == 1 and upstream.pools[0].ejected_until
    assert upstream.pools[0] not in upstream.available


async def test_never_more_than_max_percent_ejected(make_proxy, make_pods):
    pods = await make_pods("a", "b", "c", "d", "e")
    for pod in pods[:4]:
        pod.fail_with(500)
    proxy = await make_proxy()
    policy = ejecting(consecutive_5xx=1, base_time=30, max_percent=0.5)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [p.endpoint for p in pods], policy=policy)])
    upstream = proxy.upstreams[APP]
    for _ in range(30):
        await request(proxy.port, "/")
    assert upstream.ejected == 2 and len(upstream.available) == 3  # 3 of 5 would be 60%


async def test_ejection_and_retries_hide_a_flaky_pod(make_proxy, make_pods):
    """The bench chaos scenario in small: one of three pods fails half its requests."""
    flaky, b, c = await make_pods("flaky", "b", "c")
    rng = random.Random(7)

    async def half(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=503) if rng.random() < 0.5 else None

    flaky.fault = half
    proxy = await make_proxy()
    retry = RoutePolicy(retry=RetryPolicy(retry_on=frozenset({RETRY_5XX}), backoff_base=0.001, backoff_max=0.002))
    policy = ejecting(consecutive_5xx=2, base_time=30, max_percent=0.34)
    proxy.publish([Rule("", "/", APP, policy=retry)],
                  [cluster(APP, [flaky.endpoint, b.endpoint, c.endpoint], policy=policy)])
    statuses = [(await request(proxy.port, "/")).status for _ in range(150)]
    assert statuses == [200] * 150
    assert proxy.upstreams[APP].ejected <= 1
