"""Live state of one upstream cluster: its endpoints, their connection pools, its balancer and its policy's state.

A cluster without a policy (`Cluster.policy` None) is round robin over its ready endpoints and keeps
no other state: its requests take the plain path, and so do those of a cluster whose policy only
names a balancer that needs no request key, or passive health (`guarded` False). With a policy the
Upstream also holds what the policy needs at run time: the balancer it names, passive health
(proxy.upstream.outliers), the circuit breaker's counts and its queue of requests waiting for a
connection, the affinity cookie's value of each endpoint, and the counters the metrics read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from hashlib import blake2b
from typing import TYPE_CHECKING

from proxy.routing.model import Cluster, Endpoint
from proxy.routing.policies import HTTP2, CircuitBreaker, ClusterPolicy, SessionAffinity, affinity_prefix
from proxy.settings import Settings
from proxy.upstream.balancer import Balancer, RoundRobin, make_balancer
from proxy.upstream.h2_pool import H2EndpointPool
from proxy.upstream.outliers import Outliers, count
from proxy.upstream.pool import EndpointPool, TlsEndpointPool
from proxy.upstream.tls import H2_ALPN_PROTOCOLS, ClientContexts, UpstreamTLS

if TYPE_CHECKING:
    from proxy.upstream.health import HealthVerdicts

# Circuit-breaker limits, as the x-pyngress-overloaded header and the metrics name them.
MAX_CONNECTIONS = "max-connections"
MAX_PENDING_REQUESTS = "max-pending-requests"
MAX_PARALLEL_REQUESTS = "max-parallel-requests"
MAX_PARALLEL_RETRIES = "max-parallel-retries"
LIMITS = (MAX_CONNECTIONS, MAX_PENDING_REQUESTS, MAX_PARALLEL_REQUESTS, MAX_PARALLEL_RETRIES)

# Retry reasons, as the metrics name them.
RETRY_REASONS = ("connect-failure", "reset", "timeout", "status")
# Client contexts of HTTP/2 clusters' TLS policies (ALPN h2), shared by every such cluster of the process.
_H2_CONTEXTS = ClientContexts(alpn=H2_ALPN_PROTOCOLS)


class ClusterCounters:
    """What the cluster's policy did, for the metrics (plain numbers; summed over workers at scrape time)."""

    __slots__ = ("overloaded", "retries", "budget_exhausted")

    def __init__(self) -> None:
        self.overloaded: dict[str, int] = dict.fromkeys(LIMITS, 0)
        self.retries: dict[str, int] = dict.fromkeys(RETRY_REASONS, 0)
        self.budget_exhausted = 0


class Waiter:
    """A request waiting for a connection of a cluster at its max_connections (see Upstream.wake)."""

    __slots__ = ("ready",)

    def __init__(self, ready: Callable[[], bool]) -> None:
        # Called when a connection may be free: True if the request took one (or went away).
        self.ready = ready


class Upstream:
    """The cluster's current endpoints, each with its own idle connection pool, and the balancer choosing among them.

    ``update()`` swaps the endpoint set in place so routes keep pointing at the same
    object: pools of endpoints that stay keep their warm connections (and their health state),
    pools of removed endpoints are retired (idle connections closed now, in-flight ones after
    their response).
    """

    __slots__ = ("key", "settings", "cluster", "endpoints", "pools", "_by_endpoint", "balancer", "closed", "host_name",
                 "tls", "contexts", "health",
                 "policy", "guarded", "available", "reports_success", "outliers", "breaker", "affinity", "tokens",
                 "active", "retrying", "pending", "dialing", "waiters", "counters")

    def __init__(self, cluster: Cluster, *, settings: Settings, contexts: ClientContexts | None = None,
                 health: HealthVerdicts | None = None) -> None:
        self.key = cluster.key
        self.settings = settings
        # Client contexts by TLS policy (the controller's, prepared off the event loop) and this process's
        # active health verdicts (new pools of endpoints found unhealthy start unhealthy).
        self.contexts = contexts
        self.health = health
        self.tls: UpstreamTLS | None = None
        self.cluster = cluster
        self.endpoints: tuple[Endpoint, ...] = ()
        # Read by the forwarder on every attempt; replaced whole, never mutated.
        self.pools: tuple[EndpointPool, ...] = ()
        # The pools the balancer balances over: ready and not ejected (all of them when every one is ejected).
        self.available: tuple[EndpointPool, ...] = ()
        self._by_endpoint: dict[Endpoint, EndpointPool] = {}
        self.balancer: Balancer = RoundRobin()
        # Whether successful attempts are reported (the exchange skips the call otherwise).
        self.reports_success = False
        self.closed = False
        # The policy and its run-time state (None / empty without a policy).
        self.policy: ClusterPolicy | None = None
        # Whether each request needs its own policy state (proxy.http.attempts): a circuit breaker, cookie
        # affinity or a hashing balancer. Other balancers and passive health work on the plain path.
        self.guarded = False
        self.outliers: Outliers | None = None
        self.breaker: CircuitBreaker | None = None
        self.affinity: SessionAffinity | None = None
        self.tokens: dict[bytes, EndpointPool] = {}
        # Requests of this cluster taking the policy path now (a breaker's max_parallel_requests, the retry
        # budget), those of them being retried, and those waiting for a connection (dialing or queued).
        self.active = 0
        self.retrying = 0
        self.pending = 0
        self.dialing = 0
        self.waiters: deque[Waiter] = deque()
        self.counters = ClusterCounters()
        self.update(cluster)

    def __repr__(self) -> str:
        return f"<Upstream {self.key} endpoints={len(self.endpoints)}>"

    def retune(self, settings: Settings) -> None:
        """New pool settings (the global configuration's upstream keep-alive and connect timeout): every pool
        takes them now; connections open or in use stay."""
        self.settings = settings
        policy = self.cluster.policy
        connect_timeout = settings.upstream_connect_timeout
        if policy is not None and policy.connect_timeout:
            connect_timeout = policy.connect_timeout
        for pool in self._by_endpoint.values():
            pool.limit = settings.upstream_keepalive
            pool.idle_timeout = settings.upstream_keepalive_timeout
            pool.connect_timeout = connect_timeout

    def update(self, cluster: Cluster) -> None:
        """Replace the endpoints (an ExternalName cluster has one: its DNS name and port) and apply the policy."""
        self.cluster = cluster
        if cluster.policy != self.policy:
            self._apply(cluster.policy)
        # The Host sent for a request that had none (HTTP/1.0): the name the backend is known by.
        name = cluster.external_name or f"{cluster.service}.{cluster.namespace}.svc"
        self.host_name = name.encode("ascii", "replace")
        resolve = bool(cluster.external_name)
        # HTTP/2 to the pods (a Service port's appProtocol h2c, backend-protocol GRPC/GRPCS/H2C): its own pool class.
        http2 = cluster.protocol == HTTP2 or (cluster.policy is not None and cluster.policy.protocol == HTTP2)
        tls = self._tls(cluster, name, http2=http2)
        if resolve:
            wanted: tuple[Endpoint, ...] = (Endpoint(cluster.external_name or "", cluster.external_port),)
        else:
            wanted = tuple(dict.fromkeys(cluster.endpoints))
        old = self._by_endpoint
        settings = self.settings
        health = self.health
        policy = cluster.policy
        connect_timeout = settings.upstream_connect_timeout
        if policy is not None and policy.connect_timeout:
            connect_timeout = policy.connect_timeout
        fresh: dict[Endpoint, EndpointPool] = {}
        for endpoint in wanted:
            pool = old.pop(endpoint, None)
            if (pool is None or pool.resolve != resolve or pool.tls is not tls
                    or isinstance(pool, H2EndpointPool) != http2):
                if pool is not None:
                    pool.close()
                if http2:
                    pool = H2EndpointPool(
                        endpoint, tls=tls, resolve=resolve, limit=settings.upstream_keepalive,
                        idle_timeout=settings.upstream_keepalive_timeout, connect_timeout=connect_timeout,
                    )
                elif tls is None:
                    pool = EndpointPool(
                        endpoint,
                        resolve=resolve,
                        limit=settings.upstream_keepalive,
                        idle_timeout=settings.upstream_keepalive_timeout,
                        connect_timeout=connect_timeout,
                    )
                else:
                    pool = TlsEndpointPool(
                        endpoint, tls=tls, resolve=resolve, limit=settings.upstream_keepalive,
                        idle_timeout=settings.upstream_keepalive_timeout,
                        connect_timeout=connect_timeout,
                    )
                if health is not None and not health.healthy(self.key, endpoint):
                    pool.healthy = False
            fresh[endpoint] = pool
        for pool in old.values():
            pool.close()
        self._by_endpoint = fresh
        self.endpoints = tuple(fresh)
        self.pools = tuple(fresh.values())
        if self.outliers is not None:
            self.outliers.forget(self.pools)
        self._balance()
        if self.closed:
            self.close()

    def _tls(self, cluster: Cluster, server_name: str, *, http2: bool = False) -> UpstreamTLS | None:
        """The cluster's TLS to its pods: kept while its policy and name stay (its pools keep their connections).
        HTTP/2 clusters offer h2 by ALPN: their contexts are built apart (cheap without certificates to load)."""
        policy = cluster.policy.tls if cluster.policy is not None else None
        if policy is None:
            self.tls = None
            return None
        current = self.tls
        if (current is not None and current.policy == policy and current.server_name == (policy.sni or server_name)
                and current.http2 == http2):
            return current
        if http2:
            self.tls = UpstreamTLS(policy, context=_H2_CONTEXTS.get(policy), server_name=server_name, http2=True)
            return self.tls
        contexts = self.contexts
        if contexts is None:
            contexts = self.contexts = ClientContexts()
        self.tls = UpstreamTLS(policy, context=contexts.get(policy), server_name=server_name)
        return self.tls

    def pool_of(self, endpoint: Endpoint) -> EndpointPool | None:
        return self._by_endpoint.get(endpoint)

    def health_changed(self) -> None:
        """Some pool's `healthy` flag flipped: the balancer sees the pools it may use again."""
        self._balance()

    def _apply(self, policy: ClusterPolicy | None) -> None:
        """Set up the run-time state `policy` needs (a new balancer starts from the current endpoints)."""
        self.policy = policy
        self.balancer = make_balancer(policy.load_balancer if policy is not None else None)
        self.reports_success = self.balancer.reports_success
        if self.outliers is not None:
            self.outliers.close()
            for pool in self.pools:
                pool.ejected_until = 0.0
        ejection = policy.ejection if policy is not None else None
        self.outliers = Outliers(ejection, self._balance) if ejection is not None else None
        self.breaker = policy.circuit_breaker if policy is not None else None
        self.affinity = policy.affinity if policy is not None else None
        self.guarded = self.breaker is not None or self.affinity is not None or self.balancer.needs_key
        for pool in self.pools:
            pool.token = b""

    def _balance(self) -> None:
        """Hand the balancer the pools it may use now (ready, not ejected) and index them."""
        pools = self.pools
        available = pools
        if self.outliers is not None:
            available = tuple(pool for pool in available if not pool.ejected_until)
        if not all(pool.healthy for pool in available):
            # Endpoints failing active health checks are left out too.
            available = tuple(pool for pool in available if pool.healthy)
        if not available:
            available = pools  # every endpoint ejected or unhealthy: use them all rather than none (panic routing)
        for index, pool in enumerate(available):
            pool.index = index
        self.available = available
        if self.affinity is not None:
            cluster = self.cluster
            for pool in pools:
                if not pool.token:
                    pool.token = affinity_token(cluster, pool.endpoint)
            self.tokens = {pool.token: pool for pool in available}
        self.balancer.update(available)

    def pick(self) -> EndpointPool | None:
        """The pool of a first attempt, as the balancer chooses; None without endpoints."""
        return self.balancer.pick()

    def report(self, pool: EndpointPool, status: int, latency: float = -1.0) -> None:
        """How an attempt on `pool` ended: its answer's status, or 0 for a gateway error (connect failure,
        reset, timeout, broken answer). Feeds passive health and the balancer."""
        failed = count(pool, status)
        if failed and self.outliers is not None:
            self.outliers.record(pool, status, self.pools)
        self.balancer.report(pool, not failed, latency)

    # ------------------------------------------------------------------ circuit breaker and retry budget

    def open_connections(self) -> int:
        """Connections open to the cluster's endpoints or being dialed."""
        return sum(pool.open for pool in self.pools) + self.dialing

    def active_requests(self) -> int:
        """Requests of the cluster in progress: the retry budget's base (requests on the plain path count once
        they use an endpoint)."""
        return max(self.active, sum(pool.in_flight for pool in self.pools))

    def idle_pool(self, preferred: EndpointPool) -> EndpointPool | None:
        """A pool with an idle connection, `preferred` first (a cluster at max_connections reuses what it has)."""
        if preferred.idle:
            return preferred
        for pool in self.available:
            if pool.idle:
                return pool
        return None

    def wake(self) -> None:
        """A connection may be free (a request finished): let waiting requests take it, in order."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()  # (taken out first: `ready` may finish requests, which wake again)
            if not waiter.ready():
                waiters.appendleft(waiter)
                return

    @property
    def ejected(self) -> int:
        return len(self.outliers.ejected) if self.outliers is not None else 0

    def idle_connections(self) -> int:
        return sum(len(pool.idle) for pool in self.pools)

    def close(self) -> None:
        """Close every idle connection; requests in flight finish and their connections close after."""
        self.closed = True
        for pool in self.pools:
            pool.close()
        if self.outliers is not None:
            self.outliers.close()


def affinity_token(cluster: Cluster, endpoint: Endpoint) -> bytes:
    """The affinity cookie's value for an endpoint: a digest, so the cookie does not show pod addresses; the
    same in every worker and replica (no secret), so any of them keeps the session on its pod."""
    name = f"{cluster.namespace}/{cluster.service}:{cluster.port}|{endpoint.address}:{endpoint.port}"
    return affinity_prefix(cluster.namespace, cluster.service, cluster.port) + \
        blake2b(name.encode(), digest_size=8).hexdigest().encode()


__all__ = ["LIMITS", "MAX_CONNECTIONS", "MAX_PARALLEL_REQUESTS", "MAX_PARALLEL_RETRIES", "MAX_PENDING_REQUESTS",
           "RETRY_REASONS", "ClusterCounters", "Upstream", "Waiter", "affinity_token"]
