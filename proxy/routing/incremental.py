"""The incremental builder: `build()` with memory, for a controller that builds again on every change.

`Builder` gives the same answers but remembers its work between calls, so a change costs what it
touches rather than the size of the cluster. The work splits along the lines where it is independent:

- per Ingress (its namespace/name, valid while the snapshot holds the identical dict there): whether
  it is ours, its parsed rules, warnings, TLS hosts. (Identity alone would not do: the same dict may
  sit under two names, and warnings name the key.);
- per rule host ("" for host-less rules and the catch-all, "*.x", "x"): the merge of every Ingress
  naming that host, oldest first ("the older claim wins" is "the first claim wins"; the Ingresses of
  each host: `routing.host_members`). Conflicts only ever happen inside one host, so a host is merged
  again only when an Ingress naming it changed, or when TLS coverage (which decides its redirect flags)
  changed for it;
- per cluster key: the Service port resolved against its Service, EndpointSlice and Endpoints dicts,
  resolved again when one of those is no longer the identical object (`routing.cluster_memo`);
- the checksum: one digest per host and per cluster, folded so that a change costs its own digest;
- the Gateway API objects: translated again (`routing.gateway.translate`, which keeps each HTTPRoute's
  reading while the object is identical) only when one of their mappings (GatewayClasses, Gateways,
  HTTPRoutes, ReferenceGrants, Namespaces) is not the identical object, or a Service a backendRef
  named or a Secret a listener named changed; the per-port tables (`routing.listeners`) then merge
  again only the (port, host) pairs whose candidates changed, or, on an Ingress port, whose Ingress
  host was merged again. Without a Gateway of ours none of this costs anything.

The IngressClass selection and the settings are inputs to everything: a different selection judges
every Ingress again (parses are kept), different settings start from scratch.

The object cache hands out unchanged objects (and untouched kinds' mappings) as the identical
objects in successive snapshots, which is what makes identity a sound memo key; snapshots are never
mutated, so an object that is still the same object still means the same thing.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.objects import Key, KubeObject, Snapshot, Warning
from proxy.routing.build import gateway_digested, service_warnings, warning_order
from proxy.routing.checksum import DigestSet, host_digest, policy_status_digest, status_digest
from proxy.routing.cluster_memo import ClusterEntry, ClusterMemo
from proxy.routing.gateway import GatewayTranslation, translate
from proxy.routing.gateway.processor import EMPTY, TranslationMemo, same_objects
from proxy.routing.global_config import GlobalConfig, global_config, with_config
from proxy.routing.host_members import HostMembers
from proxy.routing.ingress.classes import ClassSelection, select_classes
from proxy.routing.ingress.nginx import DefaultBackend
from proxy.routing.ingress.processor import IngressEntry
from proxy.routing.ingress.tls import TlsHosts
from proxy.routing.listeners import ListenerTables
from proxy.routing.merge import claims, default_server, merge_host
from proxy.routing.model import Cluster, Config, ListenerConfig
from proxy.routing.policy.index import PolicyIndex, PolicyMemo, index_policies
from proxy.routing.policy.status import TrafficPolicyStatus, policy_status
from proxy.routing.policy.tls_status import TlsPolicyStatus, tls_policy_status
from proxy.routing.table import RouteTable, VirtualHost
from proxy.settings import Settings

__all__ = ["BuildWork", "Builder"]

_NO_NAMES: frozenset[str] = frozenset()


# Snapshot mappings the Gateway translation reads whole (identity unchanged: nothing to translate again).
_GATEWAY_KINDS = ("gateway_classes", "gateways", "http_routes", "reference_grants", "namespaces", "tls_routes",
                 "grpc_routes")
# Snapshot mappings the policy index reads whole.
_POLICY_KINDS = ("backend_traffic_policies", "backend_tls_policies", "config_maps")


@dataclass(slots=True)
class BuildWork:
    """What one `Builder.build` call had to redo: zero everywhere means nothing it read had changed."""

    ingresses: int = 0  # Ingress objects parsed
    hosts: int = 0  # rule hosts merged (or dropped)
    clusters: int = 0  # clusters resolved
    gateways: int = 0  # 1 when the Gateway API objects were translated again
    listener_hosts: int = 0  # (port, host) pairs of Gateway listener tables merged
    policies: int = 0  # 1 when the traffic policies were indexed again


class Builder:
    """`build()` with memory: reuses per-Ingress, per-host and per-cluster work from earlier calls.

    Every call returns exactly what `build(snapshot, settings)` returns. Not thread-safe: one
    build at a time (the controller builds one snapshot after the other in a worker thread).
    Configs it returned share their unchanged parts (VirtualHost, Routes, Clusters, the clusters
    mapping) with later ones: like everything in a Config, they must not be mutated.
    """

    def __init__(self) -> None:
        self._settings: Settings | None = None
        # The global configuration (--configmap) of the last build: a different one starts from scratch.
        self._config: GlobalConfig | None = None
        self._config_warnings: tuple[Warning, ...] = ()
        # --default-backend-service as routes use it, and the global configuration it was made of.
        self._default_backend: DefaultBackend | None = None
        self._fallback_of: GlobalConfig | None = None
        self.work = BuildWork()  # of the last build
        self._reset()

    def _reset(self) -> None:
        self._previous: Snapshot | None = None
        self._selection: ClassSelection | None = None
        self._class_warnings: tuple[Warning, ...] = ()
        self._ingresses: dict[Key, IngressEntry] = {}
        self._secrets: Mapping[Key, KubeObject] = {}  # the snapshot's, while a build runs (parses read them)
        self._config_maps: Mapping[Key, KubeObject] = {}  # the same, for ConfigMaps
        # What each Ingress currently adds (only those that add something are listed).
        self._contributions: dict[Key, IngressEntry] = {}
        self._tls_of: dict[Key, frozenset[str]] = {}
        self._ingress_warnings: dict[Key, tuple[Warning, ...]] = {}
        # TLS host name -> number of served Ingresses listing it.
        self._tls_counts: dict[str, int] = {}
        self._tls = TlsHosts(())
        self._tls_names_changed = False  # a name entered or left _tls_counts since _tls was made
        # Rule host -> the Ingresses contributing to it.
        self._members = HostMembers()
        # Rule host -> digest of its merged routes (the routes themselves are in _hosts, _wildcards, _any_host).
        self._groups: dict[str, bytes] = {}
        self._group_warnings: dict[str, tuple[Warning, ...]] = {}
        self._hosts: dict[str, VirtualHost] = {}
        self._wildcards: dict[str, VirtualHost] = {}
        self._any_host: VirtualHost | None = None
        # (cluster key, namespace, Ingress) -> number of hosts where that Ingress routes to that cluster,
        # and cluster key -> the sum of those for it (flat: no dict per cluster for the collector to walk).
        self._uses: dict[tuple[str, str, str], int] = {}
        self._in_use: dict[str, int] = {}
        self._clusters = ClusterMemo()  # the clusters in use, resolved
        self._cluster_order: list[str] = []  # sorted keys of _clusters
        # Handed to Configs as is, so replaced, never edited.
        self._clusters_out: dict[str, Cluster] = {}
        self._digests = DigestSet()
        self._table: RouteTable | None = None
        self._warnings: tuple[Warning, ...] | None = None  # None: must be gathered again
        # Gateway API: the last translation, each HTTPRoute's reading, the per-port tables and what they add
        # (digests; (cluster, kind, namespace, object) uses of the VirtualHosts they merged, by id).
        self._gateway: GatewayTranslation = EMPTY
        self._gateway_memo = TranslationMemo()
        self._status_digest = b""
        self._listener_tables = ListenerTables()
        self._listeners: dict[int, ListenerConfig] = {}
        self._listener_digests: set[bytes] = set()
        self._listener_hosts: dict[int, tuple[VirtualHost, set[tuple[str, str, str, str]]]] = {}
        self._gateway_uses: dict[tuple[str, str, str, str], int] = {}
        # Traffic policies: the index routes are made under (and whose variants clusters resolve with), the
        # readings kept between indexings, and the status (with its digest).
        self._policies = PolicyIndex()
        self._policy_memo = PolicyMemo()
        self._policy_status: TrafficPolicyStatus | None = None
        self._policy_status_digest = b""
        self._tls_status: TlsPolicyStatus | None = None
        self._tls_status_digest = b""

    def build(self, snapshot: Snapshot, settings: Settings) -> Config:
        """The Config of `snapshot`, reusing the work of objects that did not change since the last call."""
        try:
            return self._build(snapshot, settings)
        except BaseException:
            self._reset()  # memo state may be half updated: the next build starts from scratch
            raise

    # ------------------------------------------------------------------ one build

    def _build(self, snapshot: Snapshot, settings: Settings) -> Config:
        work = self.work = BuildWork()
        if settings is not self._settings and settings != self._settings:
            self._reset()
            self._settings = settings
        previous = self._previous
        if (previous is None or self._config is None
                or snapshot.controller_config_maps is not previous.controller_config_maps
                or (self._config.proxy_set_headers and snapshot.config_maps is not previous.config_maps)):
            # (the ConfigMap proxy-set-headers names is read into the global configuration)
            config, config_warnings = global_config(snapshot, settings)
            if config != self._config:
                self._reset()
                self._config = config
                previous = None
            if tuple(config_warnings) != self._config_warnings:
                self._config_warnings = tuple(config_warnings)
                self._warnings = None
        # Rule hosts to merge again, in the order they came up (deterministic: follows the snapshot's order).
        dirty: dict[str, None] = {}
        if previous is None and self._config.default_backend:
            dirty[""] = None  # ingress-nginx's default server, there with or without Ingresses (_merge)

        policies_moved = self._update_policies(snapshot)
        if policies_moved:
            dirty.update((host, None) for host in self._groups)  # every route is made again under the new index

        everything = False
        if previous is None or snapshot.ingress_classes is not previous.ingress_classes:
            selection, class_warnings = select_classes(snapshot, settings)
            if tuple(class_warnings) != self._class_warnings:
                self._class_warnings = tuple(class_warnings)
                self._warnings = None
            if selection != self._selection:
                self._selection = selection  # an equal one is not swapped in: entries compare it by identity
                everything = True
        self._secrets = snapshot.secrets
        self._config_maps = snapshot.config_maps
        host_checks: dict[str, tuple[str, str]] = {}
        if everything or previous is None or snapshot.ingresses is not previous.ingresses:
            for key, obj in self._changed_ingresses(snapshot.ingresses, everything=everything):
                self._refresh(key, obj, dirty, host_checks)
        if previous is not None and snapshot.secrets is not previous.secrets:
            # Ingresses whose annotations read a Secret that changed (auth-secret, proxy-ssl-secret): parsed again.
            moved_secrets = _moved_keys(snapshot.secrets, previous.secrets)
            for key, entry in list(self._ingresses.items()):
                if entry.secrets and entry.secrets & moved_secrets and snapshot.ingresses.get(key) is entry.obj:
                    self._refresh(key, entry.obj, dirty, host_checks, again=True)
        if previous is not None and snapshot.config_maps is not previous.config_maps:
            # Ingresses whose annotations read a ConfigMap that changed (custom-headers, auth-proxy-set-headers).
            moved_maps = _moved_keys(snapshot.config_maps, previous.config_maps)
            for key, entry in list(self._ingresses.items()):
                if entry.config_maps and entry.config_maps & moved_maps and snapshot.ingresses.get(key) is entry.obj:
                    self._refresh(key, entry.obj, dirty, host_checks, again=True)

        if self._tls_names_changed:
            self._tls_names_changed = False
            merged_with, self._tls = self._tls, TlsHosts(self._tls_counts)
            # Every merged host was merged with `merged_with`: merge again those whose coverage differs now.
            covers = self._tls.covers
            dirty.update((host, None) for host in self._groups if merged_with.covers(host) != covers(host))

        touched: set[str] = set()  # cluster keys whose use started or ended
        for host in dirty:
            self._merge(host, touched)
        work.hosts = len(dirty)
        if dirty:
            self._table = None
            self._warnings = None

        # Services whose Service, EndpointSlices or Endpoints are not the objects of the last build.
        moved: set[Key] = set()
        if previous is not None:
            for now, before in ((snapshot.services, previous.services),
                                (snapshot.endpoint_slices, previous.endpoint_slices),
                                (snapshot.endpoints, previous.endpoints)):
                if now is not before:
                    moved |= _moved_keys(now, before)

        ingress_changed = self._table is None
        if ingress_changed:
            self._table = RouteTable(hosts=self._hosts, wildcards=self._wildcards, any_host=self._any_host)
        if (previous is None or self._gateway is not EMPTY
                or not same_objects(snapshot.gateway_classes, previous.gateway_classes)):
            self._update_gateway(snapshot, settings, touched, ingress_changed=ingress_changed,
                                 policies_moved=policies_moved)

        if moved or touched:
            self._update_clusters(snapshot, touched, moved)
        self._update_policy_status(snapshot, settings)
        self._previous = snapshot

        assert self._table is not None
        if self._warnings is None:
            self._warnings = self._gather_warnings()
        gateway = self._gateway
        assert self._config is not None
        digest = with_config(self._digests.hexdigest(), self._config, settings)
        if gateway is EMPTY:
            return Config(table=self._table, clusters=self._clusters_out, warnings=self._warnings,
                          checksum=digest, policy_status=self._policy_status,
                          tls_policy_status=self._tls_status, global_config=self._config)
        return Config(table=self._table, clusters=self._clusters_out, warnings=self._warnings,
                      checksum=digest, listeners=self._listeners, gateway_status=gateway.status,
                      policy_status=self._policy_status, tls_policy_status=self._tls_status,
                      global_config=self._config, tls_routes=gateway.tls)

    # ------------------------------------------------------------------ traffic policies

    def _update_policies(self, snapshot: Snapshot) -> bool:
        """Index the policies again when one of their objects (or a ConfigMap) changed; True when routes must
        be made again (the layers differ). Equal layers keep the routes: the new index adopts what the old
        one handed out."""
        previous = self._previous
        if previous is not None and all(same_objects(getattr(snapshot, kind), getattr(previous, kind))
                                        for kind in _POLICY_KINDS):
            read = self._policies.ports_read  # Services whose ports a sectionName was looked up in
            if not read or snapshot.services is previous.services or not (
                    _moved_keys(snapshot.services, previous.services) & read):
                return False
        fresh = index_policies(snapshot, self._policy_memo)
        self.work.policies = 1
        old, self._policies = self._policies, fresh
        self._warnings = None
        if fresh.same_layers(old):
            fresh.adopt(old)
            return False
        return True

    def _update_policy_status(self, snapshot: Snapshot, settings: Settings) -> None:
        """Status of the policies: it reads whether targets exist (and, for BackendTLSPolicy, which Gateways
        route to them), so it is judged on every build that has any."""
        controller = settings.gateway_controller_name
        if self._policies.traffic or self._policy_status is not None:
            status = policy_status(snapshot, self._policies, controller)
            if status != self._policy_status:
                self._policy_status = status
                self._policy_status_digest = self._swap_digest(self._policy_status_digest, status)
        if self._policies.tls or self._tls_status is not None:
            tls = tls_policy_status(snapshot, self._policies, controller, gateway_status=self._gateway.status,
                                    used={(c.namespace, c.service, c.port) for c in self._clusters_out.values()})
            if tls != self._tls_status:
                self._tls_status = tls
                self._tls_status_digest = self._swap_digest(self._tls_status_digest, tls)

    def _swap_digest(self, old: bytes, status: object | None) -> bytes:
        if old:
            self._digests.discard(old)
        new = policy_status_digest(status) if status is not None else b""
        if new:
            self._digests.add(new)
        return new

    # ------------------------------------------------------------------ Gateway API

    def _update_gateway(self, snapshot: Snapshot, settings: Settings, touched: set[str], *,
                        ingress_changed: bool, policies_moved: bool) -> None:
        """Translate the Gateway API objects again if anything they read changed (the policies' layers too);
        rebuild the per-port tables when the translation or (on an Ingress port) the Ingress table changed."""
        previous = self._previous
        old = self._gateway
        again = policies_moved or previous is None or not all(
            same_objects(getattr(snapshot, kind), getattr(previous, kind)) for kind in _GATEWAY_KINDS)
        if (not again and old.services and previous is not None and snapshot.services is not previous.services
                and _moved_keys(snapshot.services, previous.services) & old.services):
            again = True  # endpoints never matter here: a Service's endpoints are its cluster's business
        if (not again and old.secrets and previous is not None and snapshot.secrets is not previous.secrets
                and _moved_keys(snapshot.secrets, previous.secrets) & old.secrets):
            again = True
        gateway = old
        if again:
            split = self._policies.reset_mixed()  # the routes are made again: so are their splits
            gateway = self._gateway = translate(snapshot, settings, self._gateway_memo, policies=self._policies)
            if self._policies.mixed() != split:
                self._warnings = None
            digested = gateway_digested(gateway)
            self._status_digest = status_digest(digested) if digested is not None else b""
            self.work.gateways = 1
            if gateway.warnings != old.warnings:
                self._warnings = None
        elif not (ingress_changed and any(plan.ingress for plan in gateway.ports.values())):
            return
        listeners: dict[int, ListenerConfig] = {}
        if gateway.ports:
            assert self._table is not None
            tables = self._listener_tables
            listeners = tables.build(gateway.ports, ingress=self._table, contributions=self._members.of,
                                     covers=self._tls.covers, policies=self._policies,
                                     fallback=self._fallback())
            self.work.listener_hosts = tables.merges
            digests = tables.digests(listeners)
            merged = {id(routes): routes for routes in tables.merged_hosts()}
        else:
            self._listener_tables = ListenerTables()
            digests, merged = set(), {}
        if gateway.tls_holder is not None:
            merged[id(gateway.tls_holder)] = gateway.tls_holder  # the TLSRoutes' clusters are used like the rest
        if self._status_digest:
            digests.add(self._status_digest)
        for digest in self._listener_digests - digests:
            self._digests.discard(digest)
        for digest in digests - self._listener_digests:
            self._digests.add(digest)
        self._listener_digests = digests
        hosts = self._listener_hosts
        gone = [key for key in hosts if key not in merged]
        for key in gone:
            self._use(hosts.pop(key)[1], -1, touched, counts=self._gateway_uses)
        fresh = [key for key in merged if key not in hosts]
        for key in fresh:
            routes = merged[key]
            uses = {(cluster, r.kind, r.namespace, r.ingress) for r in routes.routes() for cluster in r.cluster_keys()}
            hosts[key] = (routes, uses)
            self._use(uses, 1, touched, counts=self._gateway_uses)
        if gone or fresh:
            self._warnings = None  # a Service's problems are reported on every object using it
        self._listeners = listeners

    # ------------------------------------------------------------------ Ingresses

    def _changed_ingresses(self, ingresses: Mapping[Key, KubeObject], *,
                           everything: bool) -> list[tuple[Key, KubeObject | None]]:
        """(key, object or None when gone) of every Ingress that is new, different or deleted."""
        entries = self._ingresses
        if everything:
            changed: list[tuple[Key, KubeObject | None]] = list(ingresses.items())
        else:
            get = entries.get
            changed = [(key, obj) for key, obj in ingresses.items()
                       if (entry := get(key)) is None or entry.obj is not obj]
        kept = len(ingresses) - sum(1 for key, _ in changed if key not in entries)
        if len(entries) > kept:
            changed.extend((key, None) for key in entries.keys() - ingresses.keys())
        return changed

    def _refresh(self, key: Key, obj: KubeObject | None, dirty: dict[str, None],
                 host_checks: dict[str, tuple[str, str]], *, again: bool = False) -> None:
        """Bring one Ingress's contribution, TLS hosts and warnings up to date; mark the hosts it touched.
        `again`: parse it again even though the object is the same (a Secret it reads changed)."""
        entries = self._ingresses
        contribution: IngressEntry | None = None
        tls = _NO_NAMES
        warnings: tuple[Warning, ...] = ()
        if obj is None:
            entries.pop(key, None)
        else:
            entry = entries.get(key)
            if entry is None or entry.obj is not obj or again:
                entry = entries[key] = IngressEntry(key, obj)
            elif entry.selection is self._selection:
                return
            assert self._selection is not None
            entry.judge(self._selection)
            if entry.problem is not None:
                warnings = (entry.problem,)
            elif entry.served:
                if not entry.parsed:
                    self.work.ingresses += 1
                    entry.parse(host_checks, self._secrets, self._config, self._config_maps)
                if entry.paths is not None:
                    contribution = entry
                warnings = entry.warnings
                tls = entry.tls_hosts()

        old = self._contributions.get(key)
        if old is not contribution:
            if old is not None:
                assert old.paths is not None
                for host, _ in old.paths:
                    self._members.leave(host, old)
                    dirty[host] = None
                del self._contributions[key]
            if contribution is not None:
                assert contribution.paths is not None
                for host, _ in contribution.paths:
                    self._members.join(host, contribution)
                    dirty[host] = None
                self._contributions[key] = contribution

        old_tls = self._tls_of.get(key, _NO_NAMES)
        if old_tls != tls:
            self._count_tls(old_tls, -1)
            self._count_tls(tls, 1)
            if tls:
                self._tls_of[key] = tls
            else:
                del self._tls_of[key]

        if self._ingress_warnings.get(key, ()) != warnings:
            if warnings:
                self._ingress_warnings[key] = warnings
            else:
                del self._ingress_warnings[key]
            self._warnings = None

    def _count_tls(self, names: frozenset[str], delta: int) -> None:
        counts = self._tls_counts
        for name in names:
            count = counts.get(name, 0) + delta
            if count > 0:
                if name not in counts:
                    self._tls_names_changed = True
                counts[name] = count
            else:
                del counts[name]
                self._tls_names_changed = True

    # ------------------------------------------------------------------ hosts

    def _merge(self, host: str, touched: set[str]) -> None:
        """Merge one rule host again from its contributing Ingresses (or drop it when none is left)."""
        old = self._groups.pop(host, None)
        self._group_warnings.pop(host, None)
        if old is not None:
            placed = self._any_host if not host else (
                self._wildcards[host[2:]] if host.startswith("*.") else self._hosts[host])
            assert placed is not None
            self._use(_uses_of(placed), -1, touched)
            self._digests.discard(old)
        contributions = self._members.of(host)
        routes: VirtualHost | None = None
        fallback = self._fallback()
        if contributions:
            routes, warnings = merge_host(host, contributions, covered=self._tls.covers(host) if host else False,
                                          policies=self._policies, fallback=fallback)
            if warnings:
                self._group_warnings[host] = tuple(warnings)
        if not host and fallback and (routes is None or not claims(contributions)):
            routes = default_server(fallback)  # unknown hosts: --default-backend-service (ingress-nginx's "_")
        elif routes is None or not claims(contributions):  # gone, or only ingress-nginx canaries name it
            if host:
                _place(host, None, self._hosts, self._wildcards)
            else:
                self._any_host = None
            return
        digest, uses = host_digest(host, routes), _uses_of(routes)
        self._groups[host] = digest
        self._use(uses, 1, touched)
        self._digests.add(digest)
        if host:
            _place(host, routes, self._hosts, self._wildcards)
        else:
            self._any_host = routes

    def _fallback(self) -> DefaultBackend | None:
        """--default-backend-service (None: none), made once per global configuration."""
        config = self._config
        if self._fallback_of is not config:
            self._fallback_of = config
            self._default_backend = DefaultBackend.of(config)
        return self._default_backend

    def _use(self, uses: set[tuple[str, str, str]] | set[tuple[str, str, str, str]], sign: int, touched: set[str],
             counts: dict[Any, int] | None = None) -> None:
        """Count (sign 1) or uncount (-1) one host's (cluster, owner) pairs; `touched` gets the clusters
        whose use started or ended. Gateway listener hosts count in their own `counts` (they name the kind)."""
        table: dict[Any, int] = self._uses if counts is None else counts
        in_use = self._in_use
        for use in uses:
            total = table.get(use, 0) + sign
            if total:
                table[use] = total
            else:
                del table[use]
            cluster = use[0]
            total = in_use.get(cluster, 0) + sign
            if total:
                in_use[cluster] = total
                if total == 1 and sign == 1:
                    touched.add(cluster)
            else:
                del in_use[cluster]
                touched.add(cluster)

    # ------------------------------------------------------------------ clusters

    def _update_clusters(self, snapshot: Snapshot, touched: set[str], moved: set[Key]) -> None:
        """Resolve clusters that came into use or whose objects (of the services in `moved`) changed;
        drop unused ones."""
        clusters = self._clusters
        update = clusters.refresh(snapshot, touched, moved, in_use=self._in_use, variants=self._policies.variants,
                                  digests=self._digests)
        self.work.clusters += update.resolved
        if update.problems_moved:
            self._warnings = None
        added, gone, replaced = update.added, update.gone, update.replaced
        if added or gone:
            order = self._cluster_order
            if len(added) + len(gone) > 32:
                order = self._cluster_order = sorted(clusters)
            else:
                for key in added:
                    bisect.insort(order, key)
                for key in gone:
                    del order[bisect.bisect_left(order, key)]
            self._clusters_out = {key: clusters[key].cluster for key in order}
        elif replaced:
            self._clusters_out = {**self._clusters_out, **replaced}  # same keys: the order stays sorted

    # ------------------------------------------------------------------ warnings

    def _gather_warnings(self) -> tuple[Warning, ...]:
        found = [*self._class_warnings, *self._config_warnings]
        for warnings in self._ingress_warnings.values():
            found.extend(warnings)
        for warnings in self._group_warnings.values():
            found.extend(warnings)
        reported: dict[str, ClusterEntry] = {}  # clusters whose Service problems go to each Ingress using them
        for key in self._clusters.troubled:
            entry = self._clusters[key]
            found.extend(entry.problems)
            if entry.service_problems:
                reported[key] = entry
        if reported:
            for cluster, namespace, name in self._uses:
                troubled = reported.get(cluster)
                if troubled is not None:
                    found.extend(service_warnings(troubled.cluster.service, "Ingress", namespace, name,
                                                  troubled.service_problems))
            for cluster, kind, namespace, name in self._gateway_uses:
                troubled = reported.get(cluster)
                if troubled is not None:
                    service = troubled.cluster.service
                    found.extend(Warning(kind, namespace, name, f"Service {service}: {problem.message}")
                                 for problem in troubled.service_problems)
        found.extend(self._gateway.warnings)
        found.extend(self._listener_tables.warnings())
        found.extend(self._policies.warnings())
        return tuple(sorted(dict.fromkeys(found), key=warning_order))


# ---------------------------------------------------------------------- helpers

def _uses_of(routes: VirtualHost) -> set[tuple[str, str, str]]:
    """(cluster key, namespace, object) of every rule of a host."""
    return {(key, r.namespace, r.ingress) for r in routes.routes() for key in r.cluster_keys()}


def _place(host: str, routes: VirtualHost | None, hosts: dict[str, VirtualHost],
           wildcards: dict[str, VirtualHost]) -> None:
    """Put (or with None remove) a non-empty rule host's routes where the table looks them up."""
    table, key = (wildcards, host[2:]) if host.startswith("*.") else (hosts, host)
    if routes is None:
        table.pop(key, None)
    else:
        table[key] = routes


def _moved_keys(now: Mapping[Key, Any], before: Mapping[Key, Any]) -> set[Key]:
    """Keys whose value is not the identical object in both mappings (added and removed ones too)."""
    get = before.get
    moved = {key for key, value in now.items() if get(key) is not value}
    added = sum(1 for key in moved if key not in before)
    if len(before) > len(now) - added:
        moved.update(before.keys() - now.keys())
    return moved
