"""Load balancers: which endpoint of a cluster a request (or its retry) goes to.

A balancer is owned by its `Upstream` and sees the cluster's pools that may take requests now
(ready, and not ejected by passive health), replaced whole when that set changes. `pick(previous,
key)` chooses the pool of a first attempt (`previous` None) or of a retry after `previous`; `key`
is what a hashing balancer hashes (the exchange computes it only when `needs_key` is set, so the
other balancers' requests pay nothing for it). `report(pool, ok, latency)` tells it how an attempt
ended. Per-endpoint state (position, in flight, failures, latency EWMA) lives on the pools, where
every balancer and the debug page can read it. Retries ask the balancer again: the exchange never
computes indices.

    RoundRobin     each first attempt takes the next endpoint in turn (the default)
    Random         a uniform draw
    LeastRequest   two random endpoints, the one with fewer requests in flight weighted by its latency
                   EWMA wins (Finagle's peak-EWMA cost, ingress-nginx's `ewma` decay and slow start)
    ConsistentHash proxy.upstream.hashring: a ring of virtual nodes over a key of the request
"""

from __future__ import annotations

import math
import random
import time
from typing import Protocol

from proxy.routing.policies import CONSISTENT_HASH, LEAST_REQUEST, RANDOM, LoadBalancer
from proxy.upstream.pool import EndpointPool

# LeastRequest: the latency EWMA forgets with this time constant (seconds; ingress-nginx's DECAY_TIME).
DECAY_TIME = 10.0
# A failed attempt counts as a latency sample this long (seconds), so an endpoint answering errors fast
# does not look like the fastest one.
FAILURE_LATENCY = 1.0

_random = random.random
_clock = time.monotonic
_exp = math.exp


class Balancer(Protocol):
    # Whether `report` wants successes too (a latency-aware balancer does); when False, an attempt that
    # went well is reported only to an endpoint with failures to forget, so the usual request makes no call.
    reports_success: bool
    # Whether `pick` wants the request's key (a hashing balancer); False: the exchange computes none.
    needs_key: bool

    def update(self, pools: tuple[EndpointPool, ...]) -> None:
        """Balance over `pools` from now on (their `index` is their position in it)."""
        ...

    def pick(self, previous: EndpointPool | None = None, key: bytes | None = None) -> EndpointPool | None:
        """The pool of a first attempt (`previous` None) or of the attempt after `previous`; None: no endpoint."""
        ...

    def report(self, pool: EndpointPool, ok: bool, latency: float = -1.0) -> None:
        """How an attempt on `pool` ended: ok, or not (a 5xx answer or a gateway error: connect failure,
        reset, timeout, a broken response); `latency`: seconds to the response head (< 0: none)."""
        ...


def make_balancer(policy: LoadBalancer | None) -> Balancer:
    """The balancer a cluster's policy asks for (round robin without one)."""
    kind = policy.kind if policy is not None else ""
    if kind == LEAST_REQUEST:
        return LeastRequest()
    if kind == RANDOM:
        return Random()
    if kind == CONSISTENT_HASH:
        from proxy.upstream.hashring import ConsistentHash  # only hashed clusters load it

        return ConsistentHash()
    return RoundRobin()


def _index_of(pools: tuple[EndpointPool, ...], pool: EndpointPool | None) -> int:
    """`pool`'s position in `pools`, or -1 (a pool that left the set, or None)."""
    if pool is None:
        return -1
    index = pool.index
    return index if index < len(pools) and pools[index] is pool else -1


class RoundRobin:
    """Each first attempt takes the next endpoint in turn; a retry takes the endpoint after the one that failed,
    so the attempts of one request go to distinct endpoints while there are enough."""

    __slots__ = ("pools", "cursor")
    reports_success = False
    needs_key = False

    def __init__(self, pools: tuple[EndpointPool, ...] = ()) -> None:
        self.pools = pools
        self.cursor = 0

    def update(self, pools: tuple[EndpointPool, ...]) -> None:
        self.pools = pools

    def pick(self, previous: EndpointPool | None = None, key: bytes | None = None) -> EndpointPool | None:
        pools = self.pools
        count = len(pools)
        if not count:
            return None
        if previous is not None:
            index = previous.index + 1
            if index < count and pools[index - 1] is previous:
                return pools[index]
            if index == count and pools[-1] is previous:
                return pools[0]
        index = self.cursor
        self.cursor = index + 1 if index < 0x3FFFFFFF else 0
        return pools[index % count]

    def report(self, pool: EndpointPool, ok: bool, latency: float = -1.0) -> None:
        pass


class Random:
    """A uniform draw; a retry draws among the endpoints other than the one that failed."""

    __slots__ = ("pools",)
    reports_success = False
    needs_key = False

    def __init__(self) -> None:
        self.pools: tuple[EndpointPool, ...] = ()

    def update(self, pools: tuple[EndpointPool, ...]) -> None:
        self.pools = pools

    def pick(self, previous: EndpointPool | None = None, key: bytes | None = None) -> EndpointPool | None:
        pools = self.pools
        count = len(pools)
        if not count:
            return None
        skip = _index_of(pools, previous)
        if skip < 0 or count == 1:
            return pools[int(_random() * count)]
        index = int(_random() * (count - 1))
        return pools[index + 1 if index >= skip else index]

    def report(self, pool: EndpointPool, ok: bool, latency: float = -1.0) -> None:
        pass


class LeastRequest:
    """Power of two random choices: of two endpoints drawn at random, the one with the lower cost wins,
    cost = (requests in flight + 1) x latency EWMA (Finagle's peak EWMA cost).

    The EWMA is ingress-nginx's `ewma`: weighted by time (a sample counts for less the sooner it follows
    the previous one, over DECAY_TIME), and decaying toward zero while an endpoint gets no samples, so a slow
    endpoint is tried again after a while. An endpoint without samples yet starts at the average of the
    others (slow start) rather than at zero, which would draw every request to it. Requests count as in
    flight once they have their connection (while a new one is dialed they do not yet).
    """

    __slots__ = ("pools",)
    reports_success = True
    needs_key = False

    def __init__(self) -> None:
        self.pools: tuple[EndpointPool, ...] = ()

    def update(self, pools: tuple[EndpointPool, ...]) -> None:
        self.pools = pools

    def pick(self, previous: EndpointPool | None = None, key: bytes | None = None) -> EndpointPool | None:
        pools = self.pools
        count = len(pools)
        if count <= 2:
            if not count:
                return None
            if count == 1:
                return pools[0]
            first, second = pools
            if previous is first:
                return second
            if previous is second:
                return first
        else:
            skip = _index_of(pools, previous)
            if skip < 0:
                i = int(_random() * count)
                j = int(_random() * (count - 1))
                if j >= i:
                    j += 1
            else:  # two of the endpoints other than `previous`
                i = int(_random() * (count - 1))
                j = int(_random() * (count - 2))
                if j >= i:
                    j += 1
                if i >= skip:
                    i += 1
                if j >= skip:
                    j += 1
            first, second = pools[i], pools[j]
        now = _clock()
        cost_first = self.cost(first, now)
        cost_second = self.cost(second, now)
        if cost_second < cost_first or (cost_second == cost_first and _random() < 0.5):
            return second
        return first

    def cost(self, pool: EndpointPool, now: float) -> float:
        ewma = _decayed(pool, now) if pool.ewma else self.slow_start(now)
        return (pool.in_flight + 1) * (ewma or 1.0)

    def slow_start(self, now: float) -> float:
        """The latency assumed for an endpoint without samples: the average of those with samples (0: none)."""
        known = [_decayed(pool, now) for pool in self.pools if pool.ewma]
        return sum(known) / len(known) if known else 0.0

    def report(self, pool: EndpointPool, ok: bool, latency: float = -1.0) -> None:
        if not ok:
            latency = max(latency, FAILURE_LATENCY)
        elif latency < 0:
            return
        now = _clock()
        if pool.ewma:
            weight = _exp(-max(0.0, now - pool.ewma_at) / DECAY_TIME)
            pool.ewma = pool.ewma * weight + latency * (1.0 - weight)
        else:
            pool.ewma = latency
        pool.ewma_at = now


def _decayed(pool: EndpointPool, now: float) -> float:
    """`pool`'s EWMA now: decayed toward zero since its last sample."""
    return pool.ewma * _exp(-max(0.0, now - pool.ewma_at) / DECAY_TIME)


__all__ = ["Balancer", "LeastRequest", "Random", "RoundRobin", "make_balancer"]
