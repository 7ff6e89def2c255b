"""Live state of one upstream cluster: its endpoints, their connection pools, and its balancer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.routing.model import Cluster, Endpoint
from proxy.settings import Settings
from proxy.upstream.balancer import Balancer, RoundRobin
from proxy.upstream.pool import EndpointPool, TlsEndpointPool
from proxy.upstream.tls import ClientContexts, UpstreamTLS

if TYPE_CHECKING:
    from proxy.upstream.health import HealthVerdicts


class Upstream:
    """The cluster's current endpoints, each with its own idle connection pool, and the balancer choosing among them.

    ``update()`` swaps the endpoint set in place so routes keep pointing at the same
    object: pools of endpoints that stay keep their warm connections, pools of removed
    endpoints are retired (idle connections closed now, in-flight ones after their response).
    """

    __slots__ = ("key", "settings", "cluster", "endpoints", "pools", "_by_endpoint", "balancer", "closed", "host_name",
                 "tls", "contexts", "health")

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
        self._by_endpoint: dict[Endpoint, EndpointPool] = {}
        self.balancer: Balancer = RoundRobin()
        self.closed = False
        self.update(cluster)

    def __repr__(self) -> str:
        return f"<Upstream {self.key} endpoints={len(self.endpoints)}>"

    def update(self, cluster: Cluster) -> None:
        """Replace the endpoints (an ExternalName cluster has one: its DNS name and port)."""
        self.cluster = cluster
        # The Host sent for a request that had none (HTTP/1.0): the name the backend is known by.
        name = cluster.external_name or f"{cluster.service}.{cluster.namespace}.svc"
        self.host_name = name.encode("ascii", "replace")
        resolve = bool(cluster.external_name)
        tls = self._tls(cluster, name)
        if resolve:
            wanted: tuple[Endpoint, ...] = (Endpoint(cluster.external_name or "", cluster.external_port),)
        else:
            wanted = tuple(dict.fromkeys(cluster.endpoints))
        old = self._by_endpoint
        settings = self.settings
        health = self.health
        fresh: dict[Endpoint, EndpointPool] = {}
        for endpoint in wanted:
            pool = old.pop(endpoint, None)
            if pool is None or pool.resolve != resolve or pool.tls is not tls:
                if pool is not None:
                    pool.close()
                if tls is None:
                    pool = EndpointPool(
                        endpoint,
                        resolve=resolve,
                        limit=settings.upstream_keepalive,
                        idle_timeout=settings.upstream_keepalive_timeout,
                        connect_timeout=settings.upstream_connect_timeout,
                    )
                else:
                    pool = TlsEndpointPool(
                        endpoint, tls=tls, resolve=resolve, limit=settings.upstream_keepalive,
                        idle_timeout=settings.upstream_keepalive_timeout,
                        connect_timeout=settings.upstream_connect_timeout,
                    )
                if health is not None and not health.healthy(self.key, endpoint):
                    pool.healthy = False
            fresh[endpoint] = pool
        for pool in old.values():
            pool.close()
        self._by_endpoint = fresh
        self.endpoints = tuple(fresh)
        self.pools = tuple(fresh.values())
        self.balancer.update(self.pools)
        if self.closed:
            self.close()

    def _tls(self, cluster: Cluster, server_name: str) -> UpstreamTLS | None:
        """The cluster's TLS to its pods: kept while its policy and name stay (its pools keep their connections)."""
        policy = cluster.policy.tls if cluster.policy is not None else None
        if policy is None:
            self.tls = None
            return None
        current = self.tls
        if current is not None and current.policy == policy and current.server_name == (policy.sni or server_name):
            return current
        contexts = self.contexts
        if contexts is None:
            contexts = self.contexts = ClientContexts()
        self.tls = UpstreamTLS(policy, context=contexts.get(policy), server_name=server_name)
        return self.tls

    def pool_of(self, endpoint: Endpoint) -> EndpointPool | None:
        return self._by_endpoint.get(endpoint)

    def health_changed(self) -> None:
        """Some pool's `healthy` flag flipped: the balancer sees the pools again (and may leave some out)."""
        self.balancer.update(self.pools)

    def pick(self) -> EndpointPool | None:
        """The pool of a first attempt, as the balancer chooses; None without endpoints."""
        return self.balancer.pick()

    def idle_connections(self) -> int:
        return sum(len(pool.idle) for pool in self.pools)

    def close(self) -> None:
        """Close every idle connection; requests in flight finish and their connections close after."""
        self.closed = True
        for pool in self.pools:
            pool.close()
