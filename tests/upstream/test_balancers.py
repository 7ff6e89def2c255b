"""Balancers on their own: who gets picked, how a retry avoids the endpoint that failed, ring stability."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from proxy.routing.model import Cluster, Endpoint
from proxy.routing.policies import (
    CONSISTENT_HASH,
    HASH_HEADER,
    LEAST_REQUEST,
    RANDOM,
    ClusterPolicy,
    LoadBalancer,
    affinity_prefix,
)
from proxy.settings import Settings
from proxy.upstream.balancer import LeastRequest, Random, RoundRobin, make_balancer
from proxy.upstream.cluster import Upstream, affinity_token
from proxy.upstream.hashring import ConsistentHash, _points, key_hash
from proxy.upstream.pool import EndpointPool

SETTINGS = Settings()


def pools(count: int, *, first: int = 1) -> tuple[EndpointPool, ...]:
    made = tuple(EndpointPool(Endpoint(f"10.0.0.{first + i}", 8080)) for i in range(count))
    for index, pool in enumerate(made):
        pool.index = index
    return made


def indexed(selection: tuple[EndpointPool, ...]) -> tuple[EndpointPool, ...]:
    for index, pool in enumerate(selection):
        pool.index = index
    return selection


def test_make_balancer_follows_the_policy():
    assert isinstance(make_balancer(None), RoundRobin)
    assert isinstance(make_balancer(LoadBalancer()), RoundRobin)
    assert isinstance(make_balancer(LoadBalancer(kind=RANDOM)), Random)
    assert isinstance(make_balancer(LoadBalancer(kind=LEAST_REQUEST)), LeastRequest)
    assert isinstance(make_balancer(LoadBalancer(kind=CONSISTENT_HASH, hash_on=HASH_HEADER, hash_key=b"x")),
                      ConsistentHash)
    # Only the latency-aware balancer wants successes reported; only the ring wants a key.
    assert [b.reports_success for b in (RoundRobin(), Random(), LeastRequest(), ConsistentHash())] == \
        [False, False, True, False]
    assert [b.needs_key for b in (RoundRobin(), Random(), LeastRequest(), ConsistentHash())] == \
        [False, False, False, True]


def test_upstream_takes_its_balancer_from_the_cluster_policy():
    cluster = Cluster("ns/svc:80", "ns", "svc", "80", endpoints=(Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80)),
                      policy=ClusterPolicy(load_balancer=LoadBalancer(kind=LEAST_REQUEST)))
    upstream = Upstream(cluster, settings=SETTINGS)
    assert isinstance(upstream.balancer, LeastRequest) and upstream.reports_success
    pool_a, pool_b = upstream.pools
    # A policy change on the same cluster swaps the balancer; the pools (warm connections) stay.
    upstream.update(Cluster("ns/svc:80", "ns", "svc", "80", endpoints=cluster.endpoints))
    assert isinstance(upstream.balancer, RoundRobin) and not upstream.reports_success
    assert upstream.pools == (pool_a, pool_b) and upstream.policy is None


@pytest.mark.parametrize("balancer", [Random(), LeastRequest()])
def test_every_endpoint_gets_a_share_and_a_retry_goes_elsewhere(balancer):
    three = pools(3)
    balancer.update(three)
    counts = Counter(balancer.pick() for _ in range(3000))
    assert set(counts) == set(three)
    assert all(700 < count < 1300 for count in counts.values()), counts
    for previous in three:
        assert all(balancer.pick(previous) is not previous for _ in range(200))


def test_random_single_endpoint_and_empty():
    balancer = Random()
    assert balancer.pick() is None
    (only,) = pools(1)
    balancer.update((only,))
    assert balancer.pick() is only and balancer.pick(only) is only


def test_least_request_prefers_fewer_requests_in_flight():
    balancer = LeastRequest()
    busy, idle = pools(2)
    balancer.update((busy, idle))
    busy.in_flight = 5
    assert all(balancer.pick() is idle for _ in range(100))
    # Of three, the busiest is never picked (it loses every pair it is drawn in).
    third = EndpointPool(Endpoint("10.0.0.9", 8080))
    balancer.update(indexed((busy, idle, third)))
    assert busy not in {balancer.pick() for _ in range(300)}


def test_least_request_prefers_the_faster_endpoint():
    balancer = LeastRequest()
    slow, fast = pools(2)
    balancer.update((slow, fast))
    for _ in range(20):
        balancer.report(slow, True, 0.200)
        balancer.report(fast, True, 0.002)
    assert all(balancer.pick() is fast for _ in range(50))
    # The faster one takes requests until its cost (in flight + 1) x EWMA passes the slow one's.
    fast.in_flight = 150
    assert balancer.pick() is slow


def test_least_request_counts_failures_as_slow_and_starts_new_endpoints_at_the_average():
    balancer = LeastRequest()
    failing, healthy = pools(2)
    balancer.update((failing, healthy))
    balancer.report(healthy, True, 0.010)
    balancer.report(failing, False, 0.001)  # a fast 503 is not a fast endpoint
    assert failing.ewma >= 1.0 and balancer.pick() is healthy
    newcomer = EndpointPool(Endpoint("10.0.0.7", 8080))
    balancer.update(indexed((failing, healthy, newcomer)))
    now = failing.ewma_at
    assert newcomer.ewma == 0.0
    assert balancer.cost(newcomer, now) == pytest.approx((failing.ewma + healthy.ewma) / 2, rel=0.01)


def test_consistent_hash_keeps_a_key_on_one_endpoint_and_spreads_keys():
    ring = ConsistentHash()
    ten = pools(10)
    ring.update(ten)
    keys = [b"user-%d" % i for i in range(20000)]
    owners = {key: ring.pick(None, key) for key in keys}
    assert all(ring.pick(None, key) is owners[key] for key in keys[:500])
    shares = Counter(owners.values())
    assert set(shares) == set(ten)
    assert all(1200 < count < 2800 for count in shares.values()), shares  # 2000 each, give or take


def test_consistent_hash_moves_about_one_nth_of_keys_when_an_endpoint_leaves_or_joins():
    ring = ConsistentHash()
    ten = pools(10)
    ring.update(ten)
    keys = [b"session-%d" % i for i in range(20000)]
    before = {key: ring.pick(None, key) for key in keys}
    leaving = ten[3]
    ring.update(indexed(ten[:3] + ten[4:]))
    after = {key: ring.pick(None, key) for key in keys}
    moved = [key for key in keys if after[key] is not before[key]]
    # Exactly the keys of the endpoint that left moved (a ring never reshuffles the others): ~1/10 of them.
    assert all(before[key] is leaving for key in moved)
    assert len(moved) == sum(1 for owner in before.values() if owner is leaving)
    assert len(moved) < 0.15 * len(keys), len(moved)
    # One joins: it takes ~1/11 of the keys, each from the endpoint that owned that arc; nothing else moves.
    joining = EndpointPool(Endpoint("10.0.0.99", 8080))
    ring.update(indexed(ten[:3] + ten[4:] + (joining,)))
    again = {key: ring.pick(None, key) for key in keys}
    moved = [key for key in keys if again[key] is not after[key]]
    assert all(again[key] is joining for key in moved)
    assert 0.04 * len(keys) < len(moved) < 0.15 * len(keys), len(moved)


def test_consistent_hash_retry_walks_the_ring_and_keyless_requests_are_spread():
    ring = ConsistentHash()
    three = pools(3)
    ring.update(three)
    for i in range(200):
        key = b"k%d" % i
        owner = ring.pick(None, key)
        following = ring.pick(owner, key)
        assert following is not owner and following is ring.pick(owner, key)  # deterministic too
    assert {ring.pick() for _ in range(300)} == set(three)
    assert all(ring.pick(three[0]) is not three[0] for _ in range(100))


def test_consistent_hash_is_the_same_in_every_process():
    """BLAKE2b, not hash(): another interpreter with another PYTHONHASHSEED maps keys the same way."""
    code = ("from proxy.upstream.hashring import key_hash, _points; from proxy.routing.model import Endpoint; "
            "print(key_hash(b'abc'), _points(Endpoint('10.0.0.1', 80))[:3])")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert outputs == {f"{key_hash(b'abc')} {_points(Endpoint('10.0.0.1', 80))[:3]}\n"}


def test_round_robin_retry_takes_the_next_endpoint():
    balancer = RoundRobin()
    three = pools(3)
    balancer.update(three)
    assert [balancer.pick(p) for p in three] == [three[1], three[2], three[0]]


def test_affinity_tokens_name_endpoints_without_showing_them():
    cluster = Cluster("ns/svc:80", "ns", "svc", "80")
    token = affinity_token(cluster, Endpoint("10.1.2.3", 8080))
    assert token == affinity_token(cluster, Endpoint("10.1.2.3", 8080))
    assert token != affinity_token(cluster, Endpoint("10.1.2.4", 8080))
    assert b"10.1.2.3" not in token
    # A digest of the Service port, ".", a digest of the endpoint (the first part: sticky canaries, see
    # routing.ingress.canary).
    prefix, dot, rest = token.partition(b".")
    assert dot and len(prefix) == 6 and len(rest) == 16 and prefix.isalnum() and rest.isalnum()
    assert token.startswith(affinity_prefix("ns", "svc", "80"))
