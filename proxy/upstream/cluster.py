"""Live state of one upstream cluster: its endpoints, their connection pools, and its balancer."""

from __future__ import annotations

from proxy.routing.model import Cluster, Endpoint
from proxy.settings import Settings
from proxy.upstream.balancer import Balancer, RoundRobin
from proxy.upstream.pool import EndpointPool


class Upstream:
    """The cluster's current endpoints, each with its own idle connection pool, and the balancer choosing among them.

    ``update()`` swaps the endpoint set in place so routes keep pointing at the same
    object: pools of endpoints that stay keep their warm connections, pools of removed
    endpoints are retired (idle connections closed now, in-flight ones after their response).
    """

    __slots__ = ("key", "settings", "cluster", "endpoints", "pools", "_by_endpoint", "balancer", "closed", "host_name")

    def __init__(self, cluster: Cluster, *, settings: Settings) -> None:
        self.key = cluster.key
        self.settings = settings
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
        if resolve:
            wanted: tuple[Endpoint, ...] = (Endpoint(cluster.external_name or "", cluster.external_port),)
        else:
            wanted = tuple(dict.fromkeys(cluster.endpoints))
        old = self._by_endpoint
        settings = self.settings
        fresh: dict[Endpoint, EndpointPool] = {}
        for endpoint in wanted:
            pool = old.pop(endpoint, None)
            if pool is None or pool.resolve != resolve:
                if pool is not None:
                    pool.close()
                pool = EndpointPool(
                    endpoint,
                    resolve=resolve,
                    limit=settings.upstream_keepalive,
                    idle_timeout=settings.upstream_keepalive_timeout,
                    connect_timeout=settings.upstream_connect_timeout,
                )
            fresh[endpoint] = pool
        for pool in old.values():
            pool.close()
        self._by_endpoint = fresh
        self.endpoints = tuple(fresh)
        self.pools = tuple(fresh.values())
        self.balancer.update(self.pools)
        if self.closed:
            self.close()

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
