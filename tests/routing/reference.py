"""The whole-snapshot builder as it was before builds became incremental: the oracle of test_incremental.

`proxy.routing.build.Builder` splits the same work per Ingress, per host and per cluster and
redoes only what a change touches; this version walks every Ingress oldest first into one
merger, the plainest statement of the merge rules. Both must give equal tables, clusters and
warnings for every snapshot (the checksum is the production one, computed from this table).
"""

from __future__ import annotations

from proxy.routing.checksum import checksum
from proxy.routing.clusters import ClusterResolver, cluster_key
from proxy.routing.filters import HTTPS_REDIRECT
from proxy.routing.ingress.annotations import annotations_of, parse_annotations
from proxy.routing.ingress.classes import select_classes
from proxy.routing.ingress.tls import TlsHosts, tls_host_names
from proxy.routing.fields import Malformed, require_object
from proxy.routing.ingress.parse import Backend, IngressRules, age, parse_ingress
from proxy.objects import Snapshot, Warning
from proxy.routing.model import (
    PATH_DEFAULT_BACKEND,
    PATH_EXACT,
    PATH_IMPLEMENTATION_SPECIFIC,
    PATH_PREFIX,
    Cluster,
    Config,
    Route,
)
from proxy.routing.table import VirtualHost, RouteTable
from proxy.settings import Settings


def reference_build(snapshot: Snapshot, settings: Settings) -> Config:
    """The routing table, its clusters and every warning for one snapshot, all rebuilt."""
    selection, warnings = select_classes(snapshot, settings)
    merger = _Merger()
    host_checks: dict[str, tuple[str, str]] = {}
    served = []
    for (namespace, name), obj in sorted(snapshot.ingresses.items(), key=lambda item: (age(item[1]), item[0])):
        try:
            if selection.serves(require_object(obj, "Ingress")):
                served.append((namespace, name, obj))
        except Malformed as error:
            warnings.append(Warning("Ingress", namespace, name, f"{error}; Ingress skipped"))
    # Hosts with TLS anywhere among the served Ingresses: their plain-HTTP requests are redirected.
    merger.tls = TlsHosts(host for _, _, obj in served for host in tls_host_names(obj))
    for namespace, name, obj in served:
        try:
            rules, problems = parse_ingress(obj, namespace=namespace, name=name, hosts=host_checks)
            warnings.extend(problems)
            annotations, messages = parse_annotations(annotations_of(obj))
            warnings.extend(Warning("Ingress", namespace, name, message) for message in messages)
            merger.add(rules, redirect=annotations.ssl_redirect, force_redirect=annotations.force_ssl_redirect)
        except Exception as error:  # noqa: BLE001  (a bug must cost one Ingress, never the whole table)
            warnings.append(Warning("Ingress", namespace, name, f"skipped: {type(error).__name__}: {error}"))
    warnings.extend(merger.warnings)

    table = merger.table()
    clusters, cluster_warnings = _resolve_clusters(snapshot, table, merger.backends)
    warnings.extend(cluster_warnings)
    return Config(
        table=table,
        clusters=clusters,
        warnings=tuple(sorted(dict.fromkeys(warnings), key=_warning_order)),
        checksum=checksum(table, clusters),
    )


class _Merger:
    """Folds Ingresses (oldest first) into per-host route sets; a later claim on a taken slot loses."""

    def __init__(self) -> None:
        self.hosts: dict[str, VirtualHost] = {}
        self.wildcards: dict[str, VirtualHost] = {}
        self.any_host: VirtualHost | None = None
        # cluster key -> (namespace, service, port): what each key resolves from.
        self.backends: dict[str, tuple[str, str, str]] = {}
        self.warnings: list[Warning] = []
        self.tls = TlsHosts(())

    def table(self) -> RouteTable:
        return RouteTable(hosts=self.hosts, wildcards=self.wildcards, any_host=self.any_host)

    def host_routes(self, host: str) -> VirtualHost:
        """The route set of a host, created on first claim (a claimed host never falls through)."""
        if not host:
            if self.any_host is None:
                self.any_host = VirtualHost()
            return self.any_host
        if host.startswith("*."):
            table, key = self.wildcards, host[2:]
        else:
            table, key = self.hosts, host
        routes = table.get(key)
        if routes is None:
            routes = table[key] = VirtualHost()
        return routes

    def cluster(self, namespace: str, backend: Backend) -> str:
        key = cluster_key(namespace, backend.service, backend.port)
        if key not in self.backends:
            self.backends[key] = (namespace, backend.service, backend.port)
        return key

    def add(self, rules: IngressRules, *, redirect: bool = True, force_redirect: bool = False) -> None:
        namespace, name = rules.namespace, rules.name
        tls = self.tls

        def redirected(host: str) -> bool:
            return force_redirect or (redirect and tls.covers(host))

        for host in rules.hosts:
            self.host_routes(host)
        for rule in rules.paths:
            routes = self.host_routes(rule.host)
            route = Route(namespace, name, rule.host, rule.path, rule.path_type, self.cluster(namespace, rule.backend),
                          filters=HTTPS_REDIRECT if redirected(rule.host) else None)
            slots = routes.exact if rule.path_type == PATH_EXACT else routes.prefix
            taken = slots.get(rule.key)
            if taken is None:
                slots[rule.key] = route
            elif taken.path_type == PATH_IMPLEMENTATION_SPECIFIC and route.path_type == PATH_PREFIX:
                slots[rule.key] = route
                self._lose(taken, route, why="a Prefix path wins over ImplementationSpecific at the same path")
            elif taken.path_type == PATH_PREFIX and route.path_type == PATH_IMPLEMENTATION_SPECIFIC:
                self._lose(route, taken, why="a Prefix path wins over ImplementationSpecific at the same path")
            else:
                self._lose(route, taken, why="")
        if rules.default is None:
            return
        key = self.cluster(namespace, rules.default)
        for host in rules.hosts:
            routes = self.host_routes(host)
            route = Route(namespace, name, host, "", PATH_DEFAULT_BACKEND, key,
                          filters=HTTPS_REDIRECT if redirected(host) else None)
            if routes.default is None:
                routes.default = route
            else:
                self._lose(route, routes.default, why="")
        catch_all = self.host_routes("")
        if catch_all.default is None:
            catch_all.default = Route(namespace, name, "", "", PATH_DEFAULT_BACKEND, key,
                                    filters=HTTPS_REDIRECT if force_redirect else None)
        elif not rules.hosts:
            # An Ingress whose defaultBackend serves hosts of its own is not warned for losing the catch-all.
            loser = Route(namespace, name, "", "", PATH_DEFAULT_BACKEND, key)
            self._lose(loser, catch_all.default, why="the oldest Ingress's defaultBackend catches unclaimed hosts")

    def _lose(self, loser: Route, winner: Route, *, why: str) -> None:
        """Warn the loser's Ingress, naming the route that won; `why` "" means by age (or rule order)."""
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
        self.warnings.append(Warning("Ingress", loser.namespace, loser.ingress, message))


def _host_text(host: str) -> str:
    return f"host {host}" if host else "any host"


def _resolve_clusters(
    snapshot: Snapshot, table: RouteTable, backends: dict[str, tuple[str, str, str]]
) -> tuple[dict[str, Cluster], list[Warning]]:
    """Resolve every cluster some route uses; a Service problem is reported on each Ingress using it."""
    used = {route.cluster for route in table.routes()}
    resolver = ClusterResolver(snapshot)
    clusters: dict[str, Cluster] = {}
    warnings: list[Warning] = []
    troubled: dict[str, list[Warning]] = {}
    for key in sorted(used):
        namespace, service, port = backends[key]
        cluster, problems = resolver.resolve(namespace=namespace, service=service, port=port)
        clusters[key] = cluster
        for problem in problems:
            if problem.kind == "Service":
                troubled.setdefault(key, []).append(problem)
            else:
                warnings.append(problem)
    if troubled:
        # Rare, so found by a second walk instead of indexing every route's owner up front.
        for route in table.routes():
            for problem in troubled.get(route.cluster, ()):
                message = f"Service {backends[route.cluster][1]}: {problem.message}"
                warnings.append(Warning("Ingress", route.namespace, route.ingress, message))
    return clusters, warnings


def _warning_order(warning: Warning) -> tuple[str, str, str, str]:
    return (warning.kind, warning.namespace, warning.name, warning.message)
