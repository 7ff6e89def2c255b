"""Fault injection and local rate limits of routes, through real sockets.

Fractions are checked within a statistical tolerance over a bounded number of requests (five standard
deviations of the binomial count: a false failure is a one-in-a-million event).
"""

from __future__ import annotations

import asyncio
import logging
import math

from proxy.routing.model import Route, Timeouts
from proxy.routing.policies import FaultInjection, RateLimit, RoutePolicy
from proxy.routing.table import RouteTable, VirtualHost
from server_harness import Proxy, Rule, cluster, connect, encode_request, read_response, request, wait_until

APP = "default/app:80"


def counts(proxy: Proxy) -> dict[str, list[int]]:
    """Rate-limited, delayed and aborted requests by route path (from the traffic snapshot)."""
    return {labels[3]: values for labels, values in proxy.server.traffic.snapshot()["route_policy"]}


def within(count: int, trials: int, fraction: float) -> bool:
    expected = trials * fraction
    spread = 5 * math.sqrt(trials * fraction * (1 - fraction))
    return expected - spread <= count <= expected + spread


async def test_abort_fraction_within_tolerance(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    policy = RoutePolicy(fault=FaultInjection(abort_status=503, abort_fraction=0.3))
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [pod.endpoint])])
    trials = 300
    statuses = [(await request(proxy.port, "/")).status for _ in range(trials)]
    aborted = statuses.count(503)
    assert within(aborted, trials, 0.3), aborted
    assert statuses.count(200) == trials - aborted == pod.requests
    assert counts(proxy)["/"] == [0, 0, aborted]


async def test_faults_only_for_requests_with_the_header(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    policy = RoutePolicy(fault=FaultInjection(abort_status=418, abort_fraction=1.0, header=b"x-chaos"))
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [pod.endpoint])])
    assert {(await request(proxy.port, "/")).status for _ in range(20)} == {200}
    answers = [await request(proxy.port, "/", headers=[("X-Chaos", "1")]) for _ in range(5)]
    assert {r.status for r in answers} == {418} and b"fault injected" in answers[0].body
    assert pod.requests == 20


async def test_a_delay_is_a_timer_and_a_client_leaving_meanwhile_costs_nothing(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    delayed = RoutePolicy(fault=FaultInjection(delay=0.5, delay_fraction=1.0))
    proxy.publish([Rule("", "/slow", APP, policy=delayed), Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    # A client that leaves during its delay: its timer is cancelled, the pod never hears of it.
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/slow/left"))
    await wait_until(lambda: counts(proxy).get("/slow", [0, 0, 0])[1] == 1)
    writer.close()
    await wait_until(lambda: proxy.server.active_connections == 0)
    # A client that stays: the loop serves others meanwhile, then its request goes through.
    staying = asyncio.ensure_future(request(proxy.port, "/slow/stayed"))
    await wait_until(lambda: counts(proxy)["/slow"][1] == 2)
    assert (await request(proxy.port, "/plain")).status == 200  # not held up by the delayed request
    assert not staying.done()
    response = await staying
    assert response.status == 200 and response.json()["path"] == "/slow/stayed"
    # Timers fire in order: had the first one survived, its request would have reached the pod by now.
    assert pod.requests == 2


async def test_delay_then_abort(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    policy = RoutePolicy(fault=FaultInjection(delay=0.05, delay_fraction=1.0, abort_status=500, abort_fraction=1.0))
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [pod.endpoint])])
    response = await request(proxy.port, "/")
    assert response.status == 500 and pod.requests == 0
    assert counts(proxy)["/"] == [0, 1, 1]


async def test_delay_fraction_within_tolerance(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    policy = RoutePolicy(fault=FaultInjection(delay=0.001, delay_fraction=0.25))
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [pod.endpoint])])
    trials = 200
    assert {(await request(proxy.port, "/")).status for _ in range(trials)} == {200}
    assert within(counts(proxy)["/"][1], trials, 0.25)


async def test_rate_limit_per_route_is_shared_by_its_clients(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    limited = RoutePolicy(rate_limit=RateLimit(requests=3, per=60))
    proxy.publish([Rule("", "/api", APP, policy=limited), Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    answers = [await request(proxy.port, "/api", source=f"127.0.0.{50 + i % 2}") for i in range(5)]
    assert [r.status for r in answers] == [200, 200, 200, 429, 429]
    assert answers[3].header("Retry-After") == "20" and b"rate limited" in answers[3].body
    assert (await request(proxy.port, "/other")).status == 200  # other routes are not limited
    assert counts(proxy)["/api"] == [2, 0, 0]
    # The bucket outlives a new table of the same rule.
    proxy.publish([Rule("", "/api", APP, policy=limited), Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    assert (await request(proxy.port, "/api")).status == 429


async def test_rate_limit_per_client_with_its_own_status(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    policy = RoutePolicy(rate_limit=RateLimit(requests=2, per=60, per_client=True, status=503))
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [pod.endpoint])])
    first = [(await request(proxy.port, "/", source="127.0.0.50")).status for _ in range(3)]
    second = [(await request(proxy.port, "/", source="127.0.0.51")).status for _ in range(3)]
    assert first == second == [200, 200, 503]
    # Keep-alive requests of one connection count one by one too.
    reader, writer = await connect(proxy.port, source="127.0.0.52")
    statuses = []
    for _ in range(3):
        writer.write(encode_request("/"))
        statuses.append((await read_response(reader)).status)
    writer.close()
    assert statuses == [200, 200, 503]


async def test_a_delayed_request_keeps_its_route_timeouts(make_proxy, make_pods, caplog):
    """The clock tick checks a delayed request's deadlines before its first attempt exists."""
    caplog.set_level(logging.ERROR, "pyngress.proxy")
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    table = RouteTable(hosts={}, any_host=VirtualHost(prefix={"": Route(
        "default", "test", "", "/", "Prefix", APP, timeouts=Timeouts(request=1.5, backend_request=5),
        policy=RoutePolicy(fault=FaultInjection(delay=10, delay_fraction=1.0)))}))
    proxy.publish_table(table, [cluster(APP, [pod.endpoint])])
    response = await request(proxy.port, "/")
    assert response.status == 504 and pod.requests == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
