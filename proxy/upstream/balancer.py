"""Load balancers: which endpoint of a cluster a request (or its retry) goes to.

A balancer is owned by its `Upstream` and sees the cluster's current pools (replaced whole when
endpoints change). `pick(previous)` chooses the pool of a first attempt (`previous` None) or of a
retry after `previous`; `report(pool, ok)` tells it how an attempt ended. Per-endpoint state (in
flight, consecutive failures) lives on the pools, where every balancer can read it. Retries ask
the balancer again: the exchange never computes indices.
"""

from __future__ import annotations

from typing import Protocol

from proxy.upstream.pool import EndpointPool


class Balancer(Protocol):
    # Whether `report` wants successes too (a latency-aware balancer does); when False, an attempt that
    # went well is reported only to an endpoint with failures to forget, so the usual request makes no call.
    reports_success: bool

    def update(self, pools: tuple[EndpointPool, ...]) -> None:
        """The cluster's endpoints changed: balance over `pools` from now on."""
        ...

    def pick(self, previous: EndpointPool | None = None) -> EndpointPool | None:
        """The pool of a first attempt (`previous` None) or of the attempt after `previous`; None: no endpoint."""
        ...

    def report(self, pool: EndpointPool, ok: bool) -> None:
        """How an attempt on `pool` ended: ok, or not (a 5xx answer or a gateway error: connect failure,
        reset, timeout, a broken response)."""
        ...


class RoundRobin:
    """Each first attempt takes the next endpoint in turn; a retry takes the endpoint after the one that failed,
    so the attempts of one request go to distinct endpoints while there are enough."""

    __slots__ = ("pools", "cursor")
    reports_success = False

    def __init__(self, pools: tuple[EndpointPool, ...] = ()) -> None:
        self.pools = pools
        self.cursor = 0

    def update(self, pools: tuple[EndpointPool, ...]) -> None:
        # Endpoints failing active health checks are left out, unless all are: then trying beats refusing.
        healthy = tuple(pool for pool in pools if pool.healthy) or pools
        for index, pool in enumerate(healthy):
            pool.index = index
        self.pools = healthy

    def pick(self, previous: EndpointPool | None = None) -> EndpointPool | None:
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

    def report(self, pool: EndpointPool, ok: bool) -> None:
        if ok:
            if pool.failures:
                pool.failures = 0
        else:
            pool.failures += 1
