"""Passive health (outlier ejection): endpoints that keep failing are left out of balancing for a while.

Kubernetes readiness stays the first signal (an endpoint that is not ready is not in the cluster at
all); ejection covers what readiness misses, from the answers the proxy sees. The rules are Envoy's:

- counting: a 5xx answer or a gateway error (connect failure, reset, timeout, broken answer) adds one
  to the endpoint's consecutive-5xx count; a gateway error or a 502/503/504 adds one to its
  consecutive-gateway-errors count; any other answer clears both (another 5xx clears the second);
- ejection, when either count reaches its threshold: for base_time x (how many times the endpoint has
  been ejected), at most max_time; the multiplier goes down by one for every base_time the endpoint
  then stays in service;
- max percent: an endpoint is ejected only if, with it, at most max_percent of the cluster's endpoints
  are ejected, except that one endpoint may always be ejected when none is (so a small cluster can eject
  one of two, or its only endpoint). When every endpoint is ejected the balancer uses them all
  anyway (Envoy's panic routing, here at 0% healthy rather than Envoy's 50%);
- return: by itself at the end of the ejection (one timer per cluster, for the earliest return).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.routing.policies import Ejection

if TYPE_CHECKING:
    from proxy.upstream.pool import EndpointPool

_GATEWAY_STATUSES = frozenset((502, 503, 504))


class Outliers:
    """The ejection state of one cluster: `record` outcomes, ejected pools come back on a timer."""

    __slots__ = ("policy", "changed", "ejected", "total", "_timer", "_loop")

    def __init__(self, policy: Ejection, changed: Callable[[], None]) -> None:
        self.policy = policy
        # Called when the set of ejected endpoints changes (the Upstream recomputes what it balances over).
        self.changed = changed
        self.ejected: list[EndpointPool] = []
        self.total = 0  # ejections so far (the metric)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def record(self, pool: EndpointPool, status: int, pools: tuple[EndpointPool, ...]) -> None:
        """A failed attempt on `pool` (status 0: a gateway error, no answer); counts were updated by the caller."""
        policy = self.policy
        if pool.ejected_until or pool.retired:
            return
        if pool.failures >= policy.consecutive_5xx or pool.gateway_failures >= policy.consecutive_gateway_errors:
            self.eject(pool, pools)

    def eject(self, pool: EndpointPool, pools: tuple[EndpointPool, ...]) -> bool:
        """Eject `pool` if the max percent allows it; True if it was."""
        ejected = self.ejected
        if ejected and (len(ejected) + 1) > self.policy.max_percent * len(pools):
            return False
        loop = self._loop = self._loop or asyncio.get_running_loop()
        now = loop.time()
        policy = self.policy
        if pool.ejections and pool.returned_at and policy.base_time > 0:
            healthy = int((now - pool.returned_at) / policy.base_time)
            pool.ejections = max(0, pool.ejections - healthy)
        pool.ejections += 1
        pool.ejected_until = now + min(policy.base_time * pool.ejections, policy.max_time)
        pool.failures = pool.gateway_failures = 0
        ejected.append(pool)
        self.total += 1
        self._arm()
        self.changed()
        return True

    def forget(self, pools: tuple[EndpointPool, ...]) -> None:
        """The cluster's endpoints changed: endpoints that left are no longer ejected here."""
        kept = set(map(id, pools))
        self.ejected = [pool for pool in self.ejected if id(pool) in kept]
        if not self.ejected and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.ejected and self._loop is not None:
            self._timer = self._loop.call_at(min(p.ejected_until for p in self.ejected), self._return)

    def _return(self) -> None:
        self._timer = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        back = [pool for pool in self.ejected if pool.ejected_until <= now]
        if back:
            for pool in back:
                pool.ejected_until = 0.0
                pool.returned_at = now
            self.ejected = [pool for pool in self.ejected if pool.ejected_until]
            self.changed()
        self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def count(pool: EndpointPool, status: int) -> bool:
    """Update `pool`'s consecutive failure counts for an attempt that ended with `status` (0: a gateway error,
    no answer); True when it failed."""
    if 0 < status < 500:
        pool.failures = 0
        pool.gateway_failures = 0
        return False
    pool.failures += 1
    if status == 0 or status in _GATEWAY_STATUSES:
        pool.gateway_failures += 1
    else:
        pool.gateway_failures = 0
    return True


__all__ = ["Outliers", "count"]
