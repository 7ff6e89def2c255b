"""Passive health on one Upstream: what counts as a failure, when an endpoint is ejected, for how long, how
many at once, and that it comes back by itself."""

from __future__ import annotations

import asyncio

from proxy.routing.model import Cluster, Endpoint
from proxy.routing.policies import ClusterPolicy, Ejection
from proxy.settings import Settings
from proxy.upstream.cluster import Upstream
from tcp_listener import wait_until

SETTINGS = Settings()


def upstream(count: int, ejection: Ejection) -> Upstream:
    endpoints = tuple(Endpoint(f"10.0.0.{i + 1}", 80) for i in range(count))
    return Upstream(Cluster("ns/svc:80", "ns", "svc", "80", endpoints=endpoints,
                            policy=ClusterPolicy(ejection=ejection)), settings=SETTINGS)


async def test_consecutive_5xx_eject_and_a_success_in_between_forgives():
    up = upstream(3, Ejection(consecutive_5xx=3, consecutive_gateway_errors=100, base_time=30, max_percent=0.5))
    bad = up.pools[0]
    up.report(bad, 500)
    up.report(bad, 503)
    up.report(bad, 200)  # the streak is broken
    up.report(bad, 500)
    up.report(bad, 500)
    assert not bad.ejected_until and bad in up.available
    up.report(bad, 500)
    assert bad.ejected_until and bad not in up.available and up.ejected == 1 and up.outliers.total == 1
    assert up.available == up.pools[1:] and [p.index for p in up.available] == [0, 1]
    assert {up.pick() for _ in range(20)} == set(up.pools[1:])
    up.close()


async def test_gateway_errors_count_502_503_504_and_no_answer_but_not_other_5xx():
    up = upstream(3, Ejection(consecutive_5xx=100, consecutive_gateway_errors=3, base_time=30, max_percent=0.5))
    pool = up.pools[0]
    up.report(pool, 0)  # connect failure, reset, timeout
    up.report(pool, 502)
    up.report(pool, 500)  # a 5xx, but not a gateway error: that streak starts over
    assert (pool.failures, pool.gateway_failures) == (3, 0)
    up.report(pool, 504)
    up.report(pool, 0)
    assert not pool.ejected_until
    up.report(pool, 503)
    assert pool.ejected_until
    up.close()


async def test_max_percent_and_envoys_one_always_rule():
    # 10%: of 5 endpoints none would fit, but one may always be ejected when none is.
    up = upstream(5, Ejection(consecutive_5xx=1, base_time=30, max_percent=0.1))
    for pool in up.pools:
        up.report(pool, 500)
    assert up.ejected == 1 and len(up.available) == 4
    up.close()
    # 50% of 5: two (a third would make 60%).
    up = upstream(5, Ejection(consecutive_5xx=1, base_time=30, max_percent=0.5))
    for pool in up.pools:
        up.report(pool, 500)
    assert up.ejected == 2 and len(up.available) == 3
    up.close()
    # A single endpoint may be ejected too; with every endpoint ejected, all are used (panic routing).
    up = upstream(1, Ejection(consecutive_5xx=1, base_time=30, max_percent=0.1))
    up.report(up.pools[0], 500)
    assert up.ejected == 1 and up.available == up.pools and up.pick() is up.pools[0]
    up.close()


async def test_ejected_endpoint_returns_by_itself_and_repeat_ejections_last_longer():
    up = upstream(2, Ejection(consecutive_5xx=1, base_time=0.2, max_time=0.5, max_percent=0.5))
    pool = up.pools[0]
    loop = asyncio.get_running_loop()
    up.report(pool, 500)
    first = pool.ejected_until - loop.time()
    assert 0.1 < first <= 0.2 + 1e-6 and pool.ejections == 1
    await wait_until(lambda: not pool.ejected_until, timeout=5)
    assert pool in up.available and up.ejected == 0 and pool.returned_at
    up.report(pool, 500)  # at once again: twice the base time
    assert pool.ejections == 2 and 0.3 < pool.ejected_until - loop.time() <= 0.4 + 1e-6
    await wait_until(lambda: not pool.ejected_until, timeout=5)
    up.report(pool, 500)
    assert pool.ejections == 3 and pool.ejected_until - loop.time() <= 0.5 + 1e-6  # capped at max_time
    up.close()


async def test_multiplier_decays_while_the_endpoint_stays_healthy():
    up = upstream(2, Ejection(consecutive_5xx=1, base_time=0.05, max_percent=0.5))
    pool = up.pools[0]
    up.report(pool, 500)
    await wait_until(lambda: not pool.ejected_until, timeout=5)
    pool.returned_at -= 1.0  # a second of good health (20 base times) since it came back
    up.report(pool, 500)
    assert pool.ejections == 1
    up.close()


async def test_readiness_comes_first_an_endpoint_that_leaves_is_forgotten():
    up = upstream(3, Ejection(consecutive_5xx=1, base_time=30, max_percent=0.5))
    gone = up.pools[0]
    up.report(gone, 500)
    assert up.ejected == 1
    cluster = up.cluster
    up.update(Cluster(cluster.key, "ns", "svc", "80", endpoints=cluster.endpoints[1:], policy=cluster.policy))
    assert up.ejected == 0 and len(up.available) == 2
    # Back in the EndpointSlice (ready again): a fresh endpoint, not ejected.
    up.update(cluster)
    assert up.ejected == 0 and len(up.available) == 3 and up.pools[0] is not gone
    up.close()
