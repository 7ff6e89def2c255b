"""Kubernetes objects → Config: the whole routing of one snapshot, built from scratch.

`build()` is the production function, Contour's shape: processors, one per source of truth, run
over the snapshot and their output is merged into one table:

1. the IngressClass selection decides which Ingresses are ours;
2. the Ingress processor turns each served Ingress into paths per host (`IngressEntry`);
3. TLS coverage (hosts any served Ingress lists in spec.tls) decides each host's plain-HTTP redirect;
4. each host's contributions merge, oldest first (`routing.merge`);
5. the Gateway API processor (`routing.gateway`) turns our Gateways and HTTPRoutes into per-port
   candidates and status; each port's table is merged from them (`routing.listeners`), together
   with the Ingress table on the Ingress ports;
6. traffic policies (`routing.policy`: BackendTrafficPolicy, BackendTLSPolicy) are indexed first and
   applied as routes are made in steps 4 and 5: a route under a policy carries its RoutePolicy and
   points to variant clusters (a Service port under a ClusterPolicy);
7. every cluster a rule uses is resolved against Services and EndpointSlices (`routing.clusters`);
8. the checksum is taken from the frozen result (`routing.checksum`), policy status included.

It is pure and deterministic (no I/O, no clock): equal snapshots give equal Configs and checksums,
and nothing in a snapshot can make it raise: broken objects become warnings. The incremental
`routing.incremental.Builder` runs the same steps per object and remembers them between builds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from proxy.objects import Snapshot, Warning
from proxy.routing.checksum import checksum
from proxy.routing.clusters import ClusterResolver, cluster_protocol, split_cluster_key
from proxy.routing.gateway import GatewayTranslation, translate
from proxy.routing.global_config import global_config, with_config
from proxy.routing.ingress.classes import select_classes
from proxy.routing.ingress.nginx import DefaultBackend
from proxy.routing.ingress.processor import IngressEntry, by_age
from proxy.routing.ingress.tls import TlsHosts
from proxy.routing.listeners import ListenerTables
from proxy.routing.merge import IngressPaths, claims, default_server, merge_host
from proxy.routing.model import Cluster, Config, Route
from proxy.routing.policies import ClusterPolicy
from proxy.routing.policy.index import index_policies
from proxy.routing.policy.status import policy_status
from proxy.routing.policy.tls_status import tls_policy_status
from proxy.routing.table import RouteTable, VirtualHost
from proxy.settings import Settings

__all__ = ["build", "checksum"]


def build(snapshot: Snapshot, settings: Settings) -> Config:
    """The routing table, its clusters and every warning for one snapshot."""
    selection, class_warnings = select_classes(snapshot, settings)
    config, config_warnings = global_config(snapshot, settings)
    warnings: list[Warning] = [*class_warnings, *config_warnings]
    policies = index_policies(snapshot)

    served: list[IngressEntry] = []
    host_checks: dict[str, tuple[str, str]] = {}
    for key, obj in snapshot.ingresses.items():
        entry = IngressEntry(key, obj)
        entry.judge(selection)
        if entry.problem is not None:
            warnings.append(entry.problem)
            continue
        if not entry.served:
            continue
        entry.parse(host_checks, snapshot.secrets, config, snapshot.config_maps)
        warnings.extend(entry.warnings)
        served.append(entry)
    served.sort(key=by_age)

    tls = TlsHosts(name for entry in served for name in entry.tls_hosts())
    members: dict[str, list[IngressPaths]] = {}
    for entry in served:
        for host in entry.hosts():
            members.setdefault(host, []).append(entry)

    hosts: dict[str, VirtualHost] = {}
    wildcards: dict[str, VirtualHost] = {}
    any_host: VirtualHost | None = None
    fallback = DefaultBackend.of(config)  # --default-backend-service: what no rule matches goes there
    for host, contributions in members.items():
        routes, problems = merge_host(host, contributions, covered=tls.covers(host) if host else False,
                                      policies=policies, fallback=fallback)
        warnings.extend(problems)
        if not claims(contributions):
            continue  # only ingress-nginx canaries name it: the host is not served
        if not host:
            any_host = routes
        elif host.startswith("*."):
            wildcards[host[2:]] = routes
        else:
            hosts[host] = routes
    if any_host is None and fallback:
        any_host = default_server(fallback)
    table = RouteTable(hosts=hosts, wildcards=wildcards, any_host=any_host)

    gateway = translate(snapshot, settings, policies=policies)
    listeners = {}
    extra: list[Route] = []
    if gateway.ports:
        tables = ListenerTables()
        listeners = tables.build(gateway.ports, ingress=table, contributions=lambda host: members.get(host, ()),
                                 covers=tls.covers, policies=policies, fallback=fallback)
        extra = [route for routes in tables.merged_hosts() for route in routes.routes()]
        warnings.extend(tables.warnings())
    warnings.extend(gateway.warnings)
    if gateway.tls_holder is not None:
        extra.extend(gateway.tls_holder.routes())

    clusters, cluster_warnings = resolve_clusters(snapshot, table, extra, variants=policies.variants)
    warnings.extend(cluster_warnings)
    warnings.extend(policies.warnings())
    status = policy_status(snapshot, policies, settings.gateway_controller_name)
    tls_status = tls_policy_status(snapshot, policies, settings.gateway_controller_name, gateway_status=gateway.status,
                                   used={(c.namespace, c.service, c.port) for c in clusters.values()})
    return Config(table=table, clusters=clusters, warnings=tuple(sorted(dict.fromkeys(warnings), key=warning_order)),
                  checksum=with_config(checksum(table, clusters, listeners, gateway_digested(gateway), status,
                                                tls_status), config, settings),
                  listeners=listeners, gateway_status=gateway.status, policy_status=status,
                  tls_policy_status=tls_status, global_config=config, tls_routes=gateway.tls)


def resolve_clusters(snapshot: Snapshot, table: RouteTable, extra: Iterable[Route] = (), *,
                     variants: Mapping[str, ClusterPolicy] | None = None) -> tuple[dict[str, Cluster], list[Warning]]:
    """Every cluster the table's rules (and `extra` rules) use, sorted by key; a Service's problems go to
    each object using it. `variants`: the policy of each cluster key under a traffic policy."""
    users: dict[str, set[tuple[str, str, str]]] = {}
    for routes in (table.routes(), extra):
        for route in routes:
            for key in route.cluster_keys():
                users.setdefault(key, set()).add((route.kind, route.namespace, route.ingress))
    resolver = ClusterResolver(snapshot)
    clusters: dict[str, Cluster] = {}
    warnings: list[Warning] = []
    for key in sorted(users):
        namespace, service, port = split_cluster_key(key)
        policy = variants.get(key) if variants else None
        cluster, found = resolver.resolve(namespace=namespace, service=service, port=port, policy=policy,
                                          protocol=cluster_protocol(key))
        clusters[key] = cluster
        for problem in found:
            if problem.kind != "Service":
                warnings.append(problem)
                continue
            for kind, owner_namespace, owner in sorted(users[key]):
                warnings.extend(service_warnings(service, kind, owner_namespace, owner, (problem,)))
    return clusters, warnings


def service_warnings(service: str, kind: str, namespace: str, owner: str,
                     problems: Iterable[Warning]) -> Iterator[Warning]:
    """A Service's problems, on an object routing to it; the default server's route (--default-backend-service)
    names no object: its problems are the Service's own."""
    for problem in problems:
        if owner:
            yield Warning(kind, namespace, owner, f"Service {service}: {problem.message}")
        else:
            yield Warning("Service", namespace, service, f"--default-backend-service: {problem.message}")


def gateway_digested(gateway: GatewayTranslation) -> object:
    """What of a Gateway translation the checksum covers besides the listener tables: its status, and the
    TLSRoutes' SNI tables when there are any."""
    return (gateway.status, sorted(gateway.tls.items())) if gateway.tls else gateway.status


def warning_order(warning: Warning) -> tuple[str, str, str, str]:
    return (warning.kind, warning.namespace, warning.name, warning.message)
