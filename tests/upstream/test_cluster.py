"""Upstream: round robin, endpoint updates that keep warm pools, ExternalName, close."""

from __future__ import annotations

from proxy.routing.model import Cluster, Endpoint
from proxy.settings import Settings
from proxy.upstream.cluster import Upstream
from tcp_listener import wait_until

SETTINGS = Settings(upstream_keepalive=8, upstream_keepalive_timeout=30, upstream_connect_timeout=1)


def make_cluster(*endpoints: tuple[str, int], **kwargs) -> Cluster:
    return Cluster(
        key="ns/svc:80", namespace="ns", service="svc", port="80",
        endpoints=tuple(Endpoint(*e) for e in endpoints), **kwargs,
    )


def test_round_robin_and_empty():
    upstream = Upstream(make_cluster(("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.1", 80)), settings=SETTINGS)
    assert upstream.endpoints == (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80))  # duplicates merged
    picks = [upstream.pick().endpoint.address for _ in range(6)]
    assert picks == ["10.0.0.1", "10.0.0.2"] * 3
    upstream.update(make_cluster())
    assert upstream.endpoints == () and upstream.pick() is None


def test_pools_take_their_limits_from_settings():
    upstream = Upstream(make_cluster(("10.0.0.1", 80)), settings=SETTINGS)
    (pool,) = upstream.pools
    assert (pool.limit, pool.idle_timeout, pool.connect_timeout, pool.resolve) == (8, 30, 1, False)


def test_external_name_cluster_has_one_resolving_endpoint():
    upstream = Upstream(make_cluster(external_name="db.example.org", external_port=5432), settings=SETTINGS)
    assert upstream.endpoints == (Endpoint("db.example.org", 5432),)
    assert upstream.pools[0].resolve is True
    # Switching the same address to a plain endpoint gets a fresh, non-resolving pool.
    upstream.update(make_cluster(("db.example.org", 5432)))
    assert upstream.pools[0].resolve is False


async def test_update_keeps_pools_of_remaining_endpoints_and_closes_removed(make_listener):
    a = await make_listener("127.0.0.2")
    b = await make_listener("127.0.0.3")
    c = await make_listener("127.0.0.4")
    upstream = Upstream(make_cluster((a.host, a.port), (b.host, b.port)), settings=SETTINGS)
    pool_a, pool_b = upstream.pools
    conn_a = await pool_a.connect()
    conn_b = await pool_b.connect()
    pool_a.release(conn_a)
    pool_b.release(conn_b)
    upstream.update(make_cluster((a.host, a.port), (c.host, c.port)))
    assert upstream.pools[0] is pool_a and list(pool_a.idle) == [conn_a]  # kept warm
    assert upstream.pools[1].endpoint == Endpoint(c.host, c.port)
    assert pool_b.retired
    await wait_until(lambda: b.closed == 1)
    assert a.closed == 0
    upstream.close()
    await wait_until(lambda: a.closed == 1)
