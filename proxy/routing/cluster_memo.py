"""The incremental builder's clusters: each cluster in use, resolved, and kept while its objects stay the same.

A cluster (namespace/service:port) is resolved against its Service, EndpointSlice and Endpoints dicts; the
entry holds those very objects, so it is resolved again only when one of them is no longer the identical
object in the snapshot (the cache hands out unchanged objects as the same dicts). `ClusterMemo` maps the key
of each cluster some route uses to its entry, and keeps the keys whose resolution had problems and the index
by Service that tells which clusters a moved Service touches (made when first needed: a first build never
needs it). What the builder hands to Configs (the clusters in key order) it assembles from `ClusterUpdate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from proxy.objects import Key, Snapshot, Warning
from proxy.routing.checksum import DigestSet, cluster_digest
from proxy.routing.clusters import ClusterResolver, cluster_protocol, split_cluster_key
from proxy.routing.model import Cluster
from proxy.routing.policies import ClusterPolicy

__all__ = ["ClusterEntry", "ClusterMemo", "ClusterUpdate"]


class ClusterEntry:
    """One resolved cluster and the objects it was resolved from (held, compared by identity)."""

    __slots__ = ("cluster", "problems", "service_problems", "service", "slices", "legacy", "digest")

    def __init__(self, snapshot: Snapshot, resolver: ClusterResolver, key: str, policy: ClusterPolicy | None) -> None:
        namespace, service, port = split_cluster_key(key)
        self.cluster, found = resolver.resolve(namespace=namespace, service=service, port=port, policy=policy,
                                               protocol=cluster_protocol(key))
        # Service problems are reported on each Ingress routing to the cluster, the rest as they are.
        self.service_problems: tuple[Warning, ...] = ()
        self.problems: tuple[Warning, ...] = ()
        if found:
            self.service_problems = tuple(w for w in found if w.kind == "Service")
            self.problems = tuple(w for w in found if w.kind != "Service")
        owner = (namespace, service)
        self.service = snapshot.services.get(owner)
        # The group mapping is held as it was: snapshots are never mutated, so it still lists the slices used.
        self.slices = snapshot.endpoint_slices.get(owner)
        self.legacy = snapshot.endpoints.get(owner)
        self.digest = cluster_digest(self.cluster)

    def current(self, snapshot: Snapshot) -> bool:
        """True while the snapshot holds the very objects this was resolved from."""
        cluster = self.cluster
        owner = (cluster.namespace, cluster.service)
        if snapshot.services.get(owner) is not self.service or snapshot.endpoints.get(owner) is not self.legacy:
            return False
        slices = snapshot.endpoint_slices.get(owner)
        if slices is self.slices:
            return True
        used = self.slices
        if slices is None or used is None or len(slices) != len(used):
            return False
        return all(slices.get(name) is obj for name, obj in used.items())


@dataclass(slots=True)
class ClusterUpdate:
    """What one `ClusterMemo.refresh` changed."""

    added: list[str] = field(default_factory=list)  # keys of clusters now in use
    gone: list[str] = field(default_factory=list)  # keys of clusters no longer in use
    replaced: dict[str, Cluster] = field(default_factory=dict)  # clusters in use before, resolved to another
    resolved: int = 0  # clusters resolved
    problems_moved: bool = False  # a cluster's problems changed: the warnings must be gathered again


class ClusterMemo(dict[str, ClusterEntry]):
    """Cluster key -> its entry, for the clusters some route uses; with the keys whose resolution had problems."""

    __slots__ = ("troubled", "_by_service")

    def __init__(self) -> None:
        super().__init__()
        self.troubled: set[str] = set()  # cluster keys whose resolution had problems
        # (namespace, service) -> its cluster keys; made when first needed (a first build never needs it).
        self._by_service: dict[Key, tuple[str, ...]] | None = None

    def refresh(self, snapshot: Snapshot, touched: set[str], moved: set[Key], *, in_use: Mapping[str, int],
               variants: Mapping[str, ClusterPolicy], digests: DigestSet) -> ClusterUpdate:
        """Resolve clusters that came into use (in `touched` and now in `in_use`) or whose objects (of the
        services in `moved`) changed; drop unused ones; keep `digests` up to date."""
        update = ClusterUpdate()
        by_service = self._by_service
        if moved and by_service is None:
            by_service = self._by_service = {}
            for key, entry in self.items():
                service = (entry.cluster.namespace, entry.cluster.service)
                by_service[service] = (*by_service.get(service, ()), key)
        resolver: ClusterResolver | None = None
        for key in [key for service in moved for key in by_service.get(service, ())]:  # type: ignore[union-attr]
            entry = self[key]
            if entry.current(snapshot):
                continue  # e.g. a new group mapping listing the same slices
            resolver = resolver or ClusterResolver(snapshot)
            fresh = self[key] = ClusterEntry(snapshot, resolver, key, entry.cluster.policy)
            update.resolved += 1
            if fresh.digest != entry.digest:
                digests.discard(entry.digest)
                digests.add(fresh.digest)
                update.replaced[key] = fresh.cluster
            if (fresh.problems, fresh.service_problems) != (entry.problems, entry.service_problems):
                update.problems_moved = True
                self.troubled.discard(key)
                if fresh.problems or fresh.service_problems:
                    self.troubled.add(key)
        added = update.added = [key for key in touched if key in in_use and key not in self]
        gone = update.gone = [key for key in touched if key not in in_use and key in self]
        if added:
            resolver = resolver or ClusterResolver(snapshot)
            for key in added:
                entry = self[key] = ClusterEntry(snapshot, resolver, key, variants.get(key))
                digests.add(entry.digest)
                if entry.problems or entry.service_problems:
                    self.troubled.add(key)
                if by_service is not None:
                    service = (entry.cluster.namespace, entry.cluster.service)
                    by_service[service] = (*by_service.get(service, ()), key)
            update.resolved += len(added)
        for key in gone:
            entry = self.pop(key)
            digests.discard(entry.digest)
            self.troubled.discard(key)
            if by_service is not None:
                service = (entry.cluster.namespace, entry.cluster.service)
                remaining = tuple(other for other in by_service[service] if other != key)
                if remaining:
                    by_service[service] = remaining
                else:
                    del by_service[service]
        return update
