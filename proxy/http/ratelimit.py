"""Local rate limits of routes (RoutePolicy.rate_limit): token buckets, per route or per client address.

A bucket holds `requests + burst` tokens and refills at `requests / per` tokens a second; a request takes
one or is refused (the route's `status`, 429 by default). Limits are local: each worker process of each
replica has its own buckets, so N of them allow N times the rate (the README says so).

Per-client buckets live in a table bounded by CLIENT_TABLE_LIMIT entries: past it, the client seen least
recently is forgotten (its next request starts with a full bucket), so a flood of source addresses costs
bounded memory. The client is the connection's peer address (behind a load balancer that is the load
balancer's, unless it preserves client addresses).

Buckets survive table rebuilds while their route and limit stay the same (`Limiters.bind`, once per
published table, keyed by what names the rule), so an unrelated change does not refill every bucket.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from proxy.routing.model import Route
from proxy.routing.policies import ClientLimit, RateLimit

# Per-client buckets kept per route at most (about 100 bytes each).
CLIENT_TABLE_LIMIT = 10_000

_clock = time.monotonic


class Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class RateLimiter:
    """The buckets of one route's limit."""

    __slots__ = ("limit", "rate", "capacity", "bucket", "clients", "limited")

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.rate = limit.requests / limit.per if limit.per > 0 else float(limit.requests)
        self.capacity = float(max(1, limit.requests + limit.burst))
        self.bucket = Bucket(self.capacity, _clock())
        self.clients: OrderedDict[bytes, Bucket] = OrderedDict()
        self.limited = 0

    def allow(self, client: bytes) -> bool:
        """Take a token for a request from `client` (its address); False: refuse the request."""
        now = _clock()
        if self.limit.per_client:
            clients = self.clients
            bucket = clients.get(client)
            if bucket is None:
                if len(clients) >= CLIENT_TABLE_LIMIT:
                    clients.popitem(last=False)
                bucket = clients[client] = Bucket(self.capacity, now)
            else:
                clients.move_to_end(client)
        else:
            bucket = self.bucket
        tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            return True
        bucket.tokens = tokens
        self.limited += 1
        return False

    def retry_after(self) -> int:
        """Whole seconds until a refused client has a token again (at least 1)."""
        return max(1, int(1.0 / self.rate + 0.999)) if self.rate > 0 else 1


def _rule_key(route: Route, limit: RateLimit) -> tuple[object, ...]:
    return (route.kind, route.namespace, route.ingress, route.host, route.path, route.path_type, route.rule,
            route.conditions, limit)


class Limiters:
    """The running table's rate limiters by route identity, carried over from one table to the next."""

    __slots__ = ("_by_rule",)

    def __init__(self) -> None:
        self._by_rule: dict[tuple[object, ...], RateLimiter] = {}

    def bind(self, routes: Iterable[Route]) -> dict[int, RateLimiter]:
        """A limiter for each route of the new table with a rate limit (by `id(route)`); limiters of rules
        that are gone are dropped."""
        previous = self._by_rule
        current: dict[tuple[object, ...], RateLimiter] = {}
        by_route: dict[int, RateLimiter] = {}
        for route in routes:
            policy = route.policy
            if policy is None or policy.rate_limit is None:
                continue
            key = _rule_key(route, policy.rate_limit)
            limiter = current.get(key) or previous.get(key) or RateLimiter(policy.rate_limit)
            current[key] = limiter
            by_route[id(route)] = limiter
        self._by_rule = current
        return by_route


# ClientLimiter.admit's answers.
REFUSED = 0
PASSED = 1
HELD = 2  # passed, holding a limit-connections slot: give it back with release()
REFUSED_CONNECTION = 3  # refused by limit-connections (answered with the limit's connection_status)


class ClientLimiter:
    """The counters of one ingress-nginx limit zone (ClientLimit): request buckets per client address, and
    the requests each address has in progress (an entry lives while its count is above 0)."""

    __slots__ = ("limit", "rpm", "rps", "active")

    def __init__(self, limit: ClientLimit) -> None:
        self.limit = limit
        self.rpm = RateLimiter(limit.rpm) if limit.rpm is not None else None
        self.rps = RateLimiter(limit.rps) if limit.rps is not None else None
        self.active: dict[bytes, int] = {}

    def admit(self, client: bytes) -> int:
        """REFUSED, REFUSED_CONNECTION, PASSED, or HELD (a connection slot taken for `client`)."""
        limit = self.limit
        if limit.exempt is not None and client in limit.exempt:
            return PASSED
        connections = limit.connections
        if connections and self.active.get(client, 0) >= connections:
            return REFUSED_CONNECTION
        if self.rpm is not None and not self.rpm.allow(client):
            return REFUSED
        if self.rps is not None and not self.rps.allow(client):
            return REFUSED
        if not connections:
            return PASSED
        self.active[client] = self.active.get(client, 0) + 1
        return HELD

    def release(self, client: bytes) -> None:
        left = self.active.get(client, 0) - 1
        if left > 0:
            self.active[client] = left
        else:
            self.active.pop(client, None)


class ClientLimiters:
    """The running table's ingress-nginx limit zones: one ClientLimiter per Ingress and limit, shared by the
    routes of that Ingress, carried over to the next table while the limit stays the same."""

    __slots__ = ("_by_zone",)

    def __init__(self) -> None:
        self._by_zone: dict[ClientLimit, ClientLimiter] = {}

    def bind(self, routes: Iterable[Route]) -> dict[int, ClientLimiter]:
        previous = self._by_zone
        current: dict[ClientLimit, ClientLimiter] = {}
        by_route: dict[int, ClientLimiter] = {}
        for route in routes:
            policy = route.policy
            if policy is None or policy.client_limit is None:
                continue
            limit = policy.client_limit
            limiter = current.get(limit) or previous.get(limit) or ClientLimiter(limit)
            current[limit] = limiter
            by_route[id(route)] = limiter
        self._by_zone = current
        return by_route


__all__ = ["CLIENT_TABLE_LIMIT", "HELD", "PASSED", "REFUSED", "REFUSED_CONNECTION", "ClientLimiter", "ClientLimiters",
           "Limiters", "RateLimiter"]
