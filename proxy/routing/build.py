"""Kubernetes objects → Config: the whole routing of one snapshot.

`build()` is pure and deterministic (no I/O, no clock): equal snapshots give equal Configs and
checksums, and nothing in a snapshot can make it raise: broken objects become warnings.

`Builder` gives the same answers but remembers its work between calls, so a change costs what it
touches rather than the size of the cluster. The work splits along the lines where it is independent:

- per Ingress (its dict, by identity): whether it is ours, its parsed rules, warnings, TLS hosts;
- per rule host ("" for host-less rules and the catch-all, "*.x", "x"): the merge of every Ingress
  naming that host, oldest first ("the older claim wins" is "the first claim wins"). Conflicts only
  ever happen inside one host, so a host is merged again only when an Ingress naming it changed,
  or when TLS coverage (which decides its redirect flags) changed for it;
- per cluster key: the Service port resolved against its Service, EndpointSlice and Endpoints dicts;
- the checksum: one digest per host and per cluster, combined in key order.

The object cache hands out unchanged objects (and untouched kinds' mappings) as the identical
objects in successive snapshots, which is what makes identity a sound memo key; snapshots are never
mutated, so an object that is still the same object still means the same thing.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from proxy.routing.annotations import TlsHosts, annotations_of, force_ssl_redirect, ssl_redirect, tls_host_names
from proxy.routing.backends import ClusterResolver, cluster_key
from proxy.routing.classes import ClassSelection, select_classes
from proxy.routing.fields import Malformed, require_object
from proxy.routing.ingress import IngressRules, age, parse_ingress
from proxy.routing.model import (
    PATH_DEFAULT_BACKEND,
    PATH_EXACT,
    PATH_IMPLEMENTATION_SPECIFIC,
    PATH_PREFIX,
    Cluster,
    Config,
    Key,
    KubeObject,
    Route,
    Snapshot,
    Warning,
)
from proxy.routing.table import HostRoutes, RouteTable
from proxy.settings import Settings

__all__ = ["BuildWork", "Builder", "build", "checksum", "cluster_key"]

# (path as written, path type, table key, cluster key) of one valid path, for one host.
_PathEntry = tuple[str, str, str, str]
_NO_NAMES: frozenset[str] = frozenset()


def build(snapshot: Snapshot, settings: Settings) -> Config:
    """The routing table, its clusters and every warning for one snapshot."""
    return Builder().build(snapshot, settings)


class _Contribution:
    """What one served Ingress brings to each host it names, ready to merge."""

    __slots__ = ("key", "order", "paths", "default", "has_hosts", "redirect", "force_redirect")

    def __init__(self, key: Key, order: tuple[Any, ...], rules: IngressRules, *, redirect: bool,
                 force_redirect: bool) -> None:
        namespace = rules.namespace
        self.key = key
        self.order = order  # oldest first, then by (namespace, name)
        # Rule host -> its paths in written order; every named host is present (a claim, even without paths).
        paths: dict[str, list[_PathEntry]] = {host: [] for host in rules.hosts}
        for rule in rules.paths:
            backend = rule.backend
            entry = (rule.path, rule.path_type, rule.key, cluster_key(namespace, backend.service, backend.port))
            group = paths.get(rule.host)
            if group is None:
                group = paths[rule.host] = []
            group.append(entry)
        self.default: str | None = None
        if rules.default is not None:
            self.default = cluster_key(namespace, rules.default.service, rules.default.port)
            paths.setdefault("", [])  # the catch-all lives with the host-less rules
        self.paths = paths
        self.has_hosts = bool(rules.hosts)
        self.redirect = redirect
        self.force_redirect = force_redirect


class _IngressEntry:
    """Memo of one Ingress dict: its age, whether it is ours (per class selection), its parse."""

    __slots__ = ("obj", "order", "selection", "served", "problem", "parsed", "tls")

    def __init__(self, key: Key, obj: Any) -> None:
        self.obj = obj  # held so its id() cannot be reused while it is remembered
        self.order = (age(obj), key)
        self.selection: ClassSelection | None = None
        self.served = False
        self.problem: Warning | None = None  # unreadable class fields
        self.parsed: tuple[_Contribution | None, tuple[Warning, ...]] | None = None
        self.tls: frozenset[str] | None = None

    def judge(self, key: Key, selection: ClassSelection) -> None:
        """Decide whether `selection` serves this Ingress (the parse is kept: it does not depend on it)."""
        self.selection = selection
        self.problem = None
        try:
            self.served = selection.serves(require_object(self.obj, "Ingress"))
        except Malformed as error:
            self.served = False
            self.problem = Warning("Ingress", key[0], key[1], f"{error}; Ingress skipped")

    def parse(self, key: Key, host_checks: dict[str, tuple[str, str]]) -> tuple[_Contribution | None,
                                                                                tuple[Warning, ...]]:
        if self.parsed is None:
            namespace, name = key
            problems: list[Warning] = []
            try:
                rules, problems = parse_ingress(self.obj, namespace=namespace, name=name, hosts=host_checks)
                annotations = annotations_of(self.obj)
                contribution: _Contribution | None = _Contribution(
                    key, self.order, rules, redirect=ssl_redirect(annotations),
                    force_redirect=force_ssl_redirect(annotations))
            except Exception as error:  # noqa: BLE001  (a bug must cost one Ingress, never the whole table)
                contribution = None
                problems = [*problems, Warning("Ingress", namespace, name,
                                               f"skipped: {type(error).__name__}: {error}")]
            self.parsed = (contribution, tuple(problems))
        return self.parsed

    def tls_hosts(self) -> frozenset[str]:
        if self.tls is None:
            try:
                self.tls = frozenset(tls_host_names(self.obj))
            except Exception:  # noqa: BLE001  (never seen: tls_host_names checks every type it reads)
                self.tls = frozenset()
        return self.tls


class _Group:
    """The merged routes of one rule host, and what the builder needs to undo or combine them."""

    __slots__ = ("routes", "warnings", "covered", "uses", "digest")

    def __init__(self, routes: HostRoutes, warnings: tuple[Warning, ...], covered: bool,
                 uses: frozenset[tuple[str, str, str]], digest: bytes) -> None:
        self.routes = routes
        self.warnings = warnings
        self.covered = covered  # TLS coverage the redirect flags were computed with
        self.uses = uses  # (cluster key, namespace, Ingress) of every route here
        self.digest = digest


class _ClusterEntry:
    """One resolved cluster and the objects it was resolved from (held, compared by identity)."""

    __slots__ = ("cluster", "problems", "service_problems", "service", "slices", "slice_items", "legacy",
                 "digest")

    def __init__(self, snapshot: Snapshot, resolver: ClusterResolver, key: str) -> None:
        namespace, service, port = _backend_of(key)
        self.cluster, found = resolver.resolve(namespace=namespace, service=service, port=port)
        # Service problems are reported on each Ingress routing to the cluster, the rest as they are.
        self.service_problems: tuple[Warning, ...] = ()
        self.problems: tuple[Warning, ...] = ()
        if found:
            self.service_problems = tuple(w for w in found if w.kind == "Service")
            self.problems = tuple(w for w in found if w.kind != "Service")
        owner = (namespace, service)
        self.service = snapshot.services.get(owner)
        self.slices = slices = snapshot.endpoint_slices.get(owner)
        self.slice_items = tuple(slices.items()) if slices else ()
        self.legacy = snapshot.endpoints.get(owner)
        self.digest = _cluster_digest(self.cluster)

    def current(self, snapshot: Snapshot) -> bool:
        """True while the snapshot holds the very objects this was resolved from."""
        cluster = self.cluster
        owner = (cluster.namespace, cluster.service)
        if snapshot.services.get(owner) is not self.service or snapshot.endpoints.get(owner) is not self.legacy:
            return False
        slices = snapshot.endpoint_slices.get(owner)
        if slices is self.slices:
            return True
        if slices is None or self.slices is None or len(slices) != len(self.slice_items):
            return False
        return all(slices.get(name) is obj for name, obj in self.slice_items)


@dataclass(slots=True)
class BuildWork:
    """What one `Builder.build` call had to redo: zero everywhere means nothing it read had changed."""

    ingresses: int = 0  # Ingress objects parsed
    hosts: int = 0  # rule hosts merged (or dropped)
    clusters: int = 0  # clusters resolved


class Builder:
    """`build()` with memory: reuses per-Ingress, per-host and per-cluster work from earlier calls.

    Every call returns exactly what `build(snapshot, settings)` returns. Not thread-safe: one
    build at a time (the controller builds one snapshot after the other in a worker thread).
    """

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self.work = BuildWork()  # of the last build
        self._reset()

    def _reset(self) -> None:
        self._previous: Snapshot | None = None
        self._selection: ClassSelection | None = None
        self._class_warnings: tuple[Warning, ...] = ()
        self._ingresses: dict[Key, _IngressEntry] = {}
        # What each Ingress currently adds (only those that add something are listed).
        self._contributions: dict[Key, _Contribution] = {}
        self._tls_of: dict[Key, frozenset[str]] = {}
        self._ingress_warnings: dict[Key, tuple[Warning, ...]] = {}
        # TLS host name -> number of served Ingresses listing it.
        self._tls_counts: dict[str, int] = {}
        self._tls = TlsHosts(())
        self._tls_names_changed = False  # a name entered or left _tls_counts since _tls was made
        # Rule host -> keys of the Ingresses contributing to it.
        self._members: dict[str, set[Key]] = {}
        self._groups: dict[str, _Group] = {}
        self._group_order: list[str] = []  # rule hosts, sorted (the checksum's order)
        self._hosts: dict[str, HostRoutes] = {}
        self._wildcards: dict[str, HostRoutes] = {}
        self._any_host: HostRoutes | None = None
        # Cluster key -> Ingress routing to it -> number of hosts where it does.
        self._owners: dict[str, dict[Key, int]] = {}
        self._clusters: dict[str, _ClusterEntry] = {}
        self._cluster_order: list[str] = []
        self._clusters_out: dict[str, Cluster] = {}
        self._table: RouteTable | None = None
        self._warnings: tuple[Warning, ...] | None = None  # None: must be gathered again
        self._checksum = ""

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
        dirty: set[str] = set()  # rule hosts to merge again

        everything = False
        if previous is None or snapshot.ingress_classes is not previous.ingress_classes:
            selection, class_warnings = select_classes(snapshot, settings)
            if tuple(class_warnings) != self._class_warnings:
                self._class_warnings = tuple(class_warnings)
                self._warnings = None
            if selection != self._selection:
                self._selection = selection  # an equal one is not swapped in: entries compare it by identity
                everything = True
        if everything or previous is None or snapshot.ingresses is not previous.ingresses:
            host_checks: dict[str, tuple[str, str]] = {}
            for key, obj in self._changed_ingresses(snapshot.ingresses, everything=everything):
                self._refresh(key, obj, dirty, host_checks)

        if self._tls_names_changed:
            self._tls_names_changed = False
            self._tls = TlsHosts(self._tls_counts)
            covers = self._tls.covers
            dirty.update(host for host, group in self._groups.items() if group.covered != covers(host))

        touched: set[str] = set()  # cluster keys whose use started or ended
        for host in sorted(dirty):
            self._merge(host, touched)
        work.hosts = len(dirty)
        if dirty:
            self._table = None
            self._warnings = None

        backends_moved = previous is None or (
            snapshot.services is not previous.services
            or snapshot.endpoint_slices is not previous.endpoint_slices
            or snapshot.endpoints is not previous.endpoints
        )
        clusters_changed = self._update_clusters(snapshot, touched, recheck=backends_moved)
        self._previous = snapshot

        if self._table is None:
            self._table = RouteTable(hosts=self._hosts, wildcards=self._wildcards, any_host=self._any_host)
        if clusters_changed:
            clusters = self._clusters
            self._clusters_out = {key: clusters[key].cluster for key in self._cluster_order}
            self._warnings = None
        if dirty or clusters_changed or not self._checksum:
            self._checksum = _combine(
                [self._groups[host].digest for host in self._group_order],
                [self._clusters[key].digest for key in self._cluster_order],
            )
        if self._warnings is None:
            self._warnings = self._gather_warnings()
        return Config(table=self._table, clusters=dict(self._clusters_out), warnings=self._warnings,
                      checksum=self._checksum)

    # ------------------------------------------------------------------ Ingresses

    def _changed_ingresses(self, ingresses: Mapping[Key, KubeObject], *,
                           everything: bool) -> Iterable[tuple[Key, KubeObject | None]]:
        """(key, object or None when gone) of every Ingress that is new, different or deleted."""
        entries = self._ingresses
        if everything:
            changed: list[tuple[Key, KubeObject | None]] = list(ingresses.items())
            new = sum(1 for key in ingresses if key not in entries)
        else:
            changed = []
            new = 0
            for key, obj in ingresses.items():
                entry = entries.get(key)
                if entry is None:
                    new += 1
                    changed.append((key, obj))
                elif entry.obj is not obj:
                    changed.append((key, obj))
        if len(entries) > len(ingresses) - new:
            changed.extend((key, None) for key in entries.keys() - ingresses.keys())
        return changed

    def _refresh(self, key: Key, obj: KubeObject | None, dirty: set[str],
                 host_checks: dict[str, tuple[str, str]]) -> None:
        """Bring one Ingress's contribution, TLS hosts and warnings up to date; mark the hosts it touched."""
        entries = self._ingresses
        contribution: _Contribution | None = None
        tls = _NO_NAMES
        warnings: tuple[Warning, ...] = ()
        if obj is None:
            entries.pop(key, None)
        else:
            entry = entries.get(key)
            if entry is None or entry.obj is not obj:
                entry = entries[key] = _IngressEntry(key, obj)
            elif entry.selection is self._selection:
                return
            assert self._selection is not None
            entry.judge(key, self._selection)
            if entry.problem is not None:
                warnings = (entry.problem,)
            elif entry.served:
                if entry.parsed is None:
                    self.work.ingresses += 1
                contribution, warnings = entry.parse(key, host_checks)
                tls = entry.tls_hosts()

        old = self._contributions.get(key)
        if old is not contribution:
            if old is not None:
                for host in old.paths:
                    members = self._members[host]
                    members.discard(key)
                    if not members:
                        del self._members[host]
                    dirty.add(host)
                del self._contributions[key]
            if contribution is not None:
                for host in contribution.paths:
                    members = self._members.get(host)
                    if members is None:
                        members = self._members[host] = set()
                    members.add(key)
                    dirty.add(host)
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
        if old is not None:
            self._use(old.uses, -1, touched)
        members = self._members.get(host)
        if not members:
            if old is not None:
                del self._group_order[bisect.bisect_left(self._group_order, host)]
                _place(host, None, self._hosts, self._wildcards)
                if not host:
                    self._any_host = None
            return
        if len(members) == 1:
            contributions = [self._contributions[key] for key in members]
        else:
            contributions = sorted((self._contributions[key] for key in members), key=_by_order)
        covered = self._tls.covers(host) if host else False
        routes, warnings = _merge_host(host, contributions, covered=covered)
        digest, uses = _host_digest(host, routes)
        group = _Group(routes, tuple(warnings), covered, uses, digest)
        self._groups[host] = group
        self._use(uses, 1, touched)
        if old is None:
            bisect.insort(self._group_order, host)
        if host:
            _place(host, routes, self._hosts, self._wildcards)
        else:
            self._any_host = routes

    def _use(self, uses: frozenset[tuple[str, str, str]], sign: int, touched: set[str]) -> None:
        """Count (sign 1) or uncount (-1) one host's (cluster, owner) pairs."""
        all_owners = self._owners
        for cluster, namespace, name in uses:
            counted = all_owners.get(cluster)
            if counted is None:
                counted = all_owners[cluster] = {}
                touched.add(cluster)
            owner = (namespace, name)
            total = counted.get(owner, 0) + sign
            if total > 0:
                counted[owner] = total
            else:
                del counted[owner]
                if not counted:
                    del all_owners[cluster]
                    touched.add(cluster)

    # ------------------------------------------------------------------ clusters

    def _update_clusters(self, snapshot: Snapshot, touched: set[str], *, recheck: bool) -> bool:
        """Resolve clusters that came into use or whose objects changed; drop unused ones. True if any moved."""
        clusters = self._clusters
        owners = self._owners
        resolver: ClusterResolver | None = None
        changed = False
        if recheck:
            for key, entry in clusters.items():
                if not entry.current(snapshot):
                    resolver = resolver or ClusterResolver(snapshot)
                    fresh = clusters[key] = _ClusterEntry(snapshot, resolver, key)
                    self.work.clusters += 1
                    if fresh.digest != entry.digest or (fresh.problems, fresh.service_problems) != (
                            entry.problems, entry.service_problems):
                        changed = True
        if not touched:
            return changed
        added = [key for key in touched if key in owners and key not in clusters]
        gone = [key for key in touched if key not in owners and key in clusters]
        if added:
            resolver = resolver or ClusterResolver(snapshot)
            for key in added:
                clusters[key] = _ClusterEntry(snapshot, resolver, key)
            self.work.clusters += len(added)
        for key in gone:
            del clusters[key]
        order = self._cluster_order
        if len(added) + len(gone) > 32:
            self._cluster_order = sorted(clusters)
        else:
            for key in added:
                bisect.insort(order, key)
            for key in gone:
                del order[bisect.bisect_left(order, key)]
        return changed or bool(added or gone)

    # ------------------------------------------------------------------ warnings

    def _gather_warnings(self) -> tuple[Warning, ...]:
        found = list(self._class_warnings)
        for warnings in self._ingress_warnings.values():
            found.extend(warnings)
        for group in self._groups.values():
            found.extend(group.warnings)
        for key, entry in self._clusters.items():
            found.extend(entry.problems)
            if entry.service_problems:
                service = entry.cluster.service
                for namespace, name in self._owners[key]:
                    found.extend(Warning("Ingress", namespace, name, f"Service {service}: {problem.message}")
                                 for problem in entry.service_problems)
        return tuple(sorted(dict.fromkeys(found), key=_warning_order))


# ---------------------------------------------------------------------- merging one host

def _by_order(contribution: _Contribution) -> tuple[Any, ...]:
    return contribution.order


def _merge_host(host: str, contributions: list[_Contribution], *, covered: bool) -> tuple[HostRoutes, list[Warning]]:
    """Fold the Ingresses naming `host` (oldest first) into its routes; a later claim on a taken slot loses.

    `covered`: the host has TLS among the served Ingresses (plain HTTP is redirected unless opted out).
    """
    routes = HostRoutes()
    exact, prefix = routes.exact, routes.prefix
    warnings: list[Warning] = []
    for contribution in contributions:
        namespace, name = contribution.key
        redirected = contribution.force_redirect or (contribution.redirect and covered)
        for path, path_type, key, cluster in contribution.paths[host]:
            route = Route(namespace, name, host, path, path_type, cluster, redirected)
            slots = exact if path_type == PATH_EXACT else prefix
            taken = slots.get(key)
            if taken is None:
                slots[key] = route
            elif taken.path_type == PATH_IMPLEMENTATION_SPECIFIC and path_type == PATH_PREFIX:
                slots[key] = route
                warnings.append(_lost(taken, route, why="a Prefix path wins over ImplementationSpecific at the "
                                                        "same path"))
            elif taken.path_type == PATH_PREFIX and path_type == PATH_IMPLEMENTATION_SPECIFIC:
                warnings.append(_lost(route, taken, why="a Prefix path wins over ImplementationSpecific at the "
                                                        "same path"))
            else:
                warnings.append(_lost(route, taken, why=""))
        default = contribution.default
        if default is None:
            continue
        if host:
            route = Route(namespace, name, host, "", PATH_DEFAULT_BACKEND, default, redirected)
            if routes.default is None:
                routes.default = route
            else:
                warnings.append(_lost(route, routes.default, why=""))
        elif routes.default is None:
            routes.default = Route(namespace, name, "", "", PATH_DEFAULT_BACKEND, default,
                                   contribution.force_redirect)
        elif not contribution.has_hosts:
            # An Ingress whose defaultBackend serves hosts of its own is not warned for losing the catch-all.
            loser = Route(namespace, name, "", "", PATH_DEFAULT_BACKEND, default)
            warnings.append(_lost(loser, routes.default,
                                  why="the oldest Ingress's defaultBackend catches unclaimed hosts"))
    return routes, warnings


def _lost(loser: Route, winner: Route, *, why: str) -> Warning:
    """The loser's warning, naming the route that won; `why` "" means by age (or rule order)."""
    if loser.path_type == PATH_DEFAULT_BACKEND:
        what = f"defaultBackend for {_host_text(loser.host)}"
    else:
        what = f"path {loser.path!r} ({loser.path_type}) for {_host_text(loser.host)}"
    if (winner.namespace, winner.ingress) == (loser.namespace, loser.ingress):
        owner, why = "this Ingress", why or "written earlier"
    else:
        owner, why = f"Ingress {winner.name}", why or "the older Ingress wins"
    if winner.path_type == PATH_DEFAULT_BACKEND:
        taken = "its defaultBackend"
    else:
        taken = f"path {winner.path!r} ({winner.path_type})"
    message = f"{what} ignored: {owner} already serves {taken} ({why})"
    return Warning("Ingress", loser.namespace, loser.ingress, message)


def _host_text(host: str) -> str:
    return f"host {host}" if host else "any host"


def _place(host: str, routes: HostRoutes | None, hosts: dict[str, HostRoutes],
           wildcards: dict[str, HostRoutes]) -> None:
    """Put (or with None remove) a non-empty rule host's routes where the table looks them up."""
    table, key = (wildcards, host[2:]) if host.startswith("*.") else (hosts, host)
    if routes is None:
        table.pop(key, None)
    else:
        table[key] = routes


def _backend_of(key: str) -> tuple[str, str, str]:
    """(namespace, service, port) of a cluster key: service and port never hold '/' or ':' (validated)."""
    rest, port = key.rsplit(":", 1)
    namespace, service = rest.rsplit("/", 1)
    return namespace, service, port


def _warning_order(warning: Warning) -> tuple[str, str, str, str]:
    return (warning.kind, warning.namespace, warning.name, warning.message)


# ---------------------------------------------------------------------- checksum

def _host_digest(host: str, routes: HostRoutes) -> tuple[bytes, frozenset[tuple[str, str, str]]]:
    """Digest of one rule host's routes (one line per slot), and the (cluster, namespace, Ingress) of each.

    Fields are joined with NUL: no field can hold one (names and hosts are validated DNS names,
    rule paths with control characters are refused).
    """
    if not host:
        scope, key = "any", ""
    elif host.startswith("*."):
        scope, key = "wildcard", host[2:]
    else:
        scope, key = "host", host
    lines = []
    uses = set()
    for slot, slots in (("exact", routes.exact), ("prefix", routes.prefix)):
        where = f"{scope}\0{key}\0{slot}"
        for path, r in slots.items():
            lines.append(f"{where}\0{path}\0{r.namespace}\0{r.ingress}\0{r.host}\0{r.path}\0{r.path_type}"
                         f"\0{r.cluster}\0{r.ssl_redirect:d}")
            uses.add((r.cluster, r.namespace, r.ingress))
    if len(lines) > 1:
        lines.sort()
    # Every claimed host is listed, even one without routes: it answers 404 instead of falling through.
    r = routes.default
    if r is None:
        lines.append(f"{scope}\0{key}\0default")
    else:
        lines.append(f"{scope}\0{key}\0default\0{r.namespace}\0{r.ingress}\0{r.cluster}\0{r.ssl_redirect:d}")
        uses.add((r.cluster, r.namespace, r.ingress))
    return hashlib.sha256("\n".join(lines).encode()).digest(), frozenset(uses)


def _cluster_digest(c: Cluster) -> bytes:
    endpoints = ",".join(map("%s %d".__mod__, c.endpoints))
    line = f"cluster\0{c.key}\0{c.namespace}\0{c.service}\0{c.port}\0{c.external_name}\0{c.external_port}\0{endpoints}"
    return hashlib.sha256(line.encode()).digest()


def _combine(hosts: list[bytes], clusters: list[bytes]) -> str:
    """Host digests in rule-host order, then cluster digests in key order (fixed-size, counted)."""
    head = f"{len(hosts)} {len(clusters)}\n".encode()
    return hashlib.sha256(b"".join([head, *hosts, *clusters])).hexdigest()


def checksum(table: RouteTable, clusters: Mapping[str, Cluster]) -> str:
    """A stable digest of routes and clusters: equal routing gives an equal checksum.

    Builds compute the same value piecewise (a digest per host, kept while the host is unchanged).
    """
    by_host = {host: routes for host, routes in table.hosts.items()}
    by_host.update(("*." + suffix, routes) for suffix, routes in table.wildcards.items())
    if table.any_host is not None:
        by_host[""] = table.any_host
    return _combine([_host_digest(host, by_host[host])[0] for host in sorted(by_host)],
                    [_cluster_digest(clusters[key]) for key in sorted(clusters)])
