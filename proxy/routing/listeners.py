"""Per-port tables for Gateway listeners: each port's candidates merged host by host.

On an Ingress port (--http-port for HTTP, --https-port for HTTPS) a listener's table is the Ingress
table with the Gateway routes of that port merged in: a host named by both is merged once more from
its Ingress paths plus the Gateway candidates (they compete for the same slots), every other host is
the Ingress table's own VirtualHost. Other ports hold Gateway routes only. A Gateway wildcard "*.x"
matches any depth (`RouteTable.suffixes`); when an Ingress also names "*.x" on a shared port, the
one-label lookup (`wildcards`) gets the merge of both and deeper hosts get the Gateway routes alone.

`ListenerTables` remembers each merge (by its candidates and the Ingress VirtualHost it started
from), so the incremental Builder merges again only the (port, host) pairs that changed; the plain
build uses a fresh one. Both therefore make the very same tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from proxy.objects import Warning
from proxy.routing.checksum import host_digest, listener_digest, listener_scope
from proxy.routing.gateway.processor import PortPlan
from proxy.routing.ingress.nginx import DefaultBackend
from proxy.routing.merge import Candidate, IngressPaths, IngressPolicies, merge_host
from proxy.routing.model import ListenerConfig
from proxy.routing.table import RouteTable, VirtualHost

# Where a merged VirtualHost sits in its table.
_HOST, _WILDCARD, _SUFFIX, _ANY = "host", "wildcard", "suffix", "any"


@dataclass(slots=True)
class _Merged:
    candidates: tuple[Candidate, ...]
    ingress: VirtualHost | None  # the Ingress VirtualHost it was merged with (compared by identity)
    routes: VirtualHost
    digest: bytes
    warnings: list[Warning]


class ListenerTables:
    """Builds `Config.listeners` from a translation's PortPlans, reusing unchanged merges."""

    def __init__(self) -> None:
        self._merged: dict[tuple[int, str, str], _Merged] = {}
        self._markers: dict[int, tuple[tuple[object, ...], bytes]] = {}
        self.merges = 0  # merges done by the last build

    def build(self, plans: Mapping[int, PortPlan], *, ingress: RouteTable,
              contributions: Callable[[str], Sequence[IngressPaths]],
              covers: Callable[[str], bool],
              policies: IngressPolicies | None = None,
              fallback: DefaultBackend | None = None) -> dict[int, ListenerConfig]:
        """The listener tables; `contributions(host)` are the Ingresses naming an Ingress host, oldest first;
        `policies` and `fallback` are the Ingress merge's (merge_host: an Ingress host merged again here keeps
        --default-backend-service for what no path matches; a Gateway-only host answers 404)."""
        self.merges = 0
        used: set[tuple[int, str, str]] = set()
        listeners: dict[int, ListenerConfig] = {}
        for local in sorted(plans):
            plan = plans[local]
            shared = plan.ingress
            hosts = dict(ingress.hosts) if shared else {}
            wildcards = dict(ingress.wildcards) if shared else {}
            suffixes: dict[str, VirtualHost] = {}
            any_host = ingress.any_host if shared else None
            merge = _Merger(self, local, used, contributions, covers, policies, fallback)
            for key, candidates in plan.hosts.items():
                if not key:
                    any_host = merge(_ANY, key, candidates, any_host if shared else None)
                elif key.startswith("*."):
                    suffix = key[2:]
                    suffixes[suffix] = merge(_SUFFIX, key, candidates, None)
                    if suffix in wildcards:
                        wildcards[suffix] = merge(_WILDCARD, key, candidates, wildcards[suffix])
                else:
                    hosts[key] = merge(_HOST, key, candidates, hosts.get(key))
            table = RouteTable(hosts=hosts, wildcards=wildcards, suffixes=suffixes, any_host=any_host)
            listeners[local] = ListenerConfig(plan.port, plan.protocol, table,
                                              MappingProxyType(dict(sorted(plan.certificates.items()))), shared)
        for place in [place for place in self._merged if place not in used]:
            del self._merged[place]
        return listeners

    def digests(self, listeners: Mapping[int, ListenerConfig]) -> set[bytes]:
        """The checksum digests of the last build's tables: one per merged host, one per listener."""
        found = {merge.digest for merge in self._merged.values()}
        found.update(listener_digest(local, config) for local, config in listeners.items())
        return found

    def warnings(self) -> list[Warning]:
        """Problems of the merges (Ingress paths left unreachable by older HTTPRoute rules; Ingress conflicts
        again, which the Ingress table reports too)."""
        return [warning for merge in self._merged.values() for warning in merge.warnings]

    def merged_hosts(self) -> list[VirtualHost]:
        """The VirtualHosts this builder merged (the rest of a shared table is the Ingress table's)."""
        return [merge.routes for merge in self._merged.values()]


class _Merger:
    """Merges one host of one port's table, or hands back the remembered merge when nothing it used changed."""

    __slots__ = ("contributions", "covers", "fallback", "policies", "local", "tables", "used")

    def __init__(self, tables: ListenerTables, local: int, used: set[tuple[int, str, str]],
                 contributions: Callable[[str], Sequence[IngressPaths]], covers: Callable[[str], bool],
                 policies: IngressPolicies | None, fallback: DefaultBackend | None) -> None:
        self.policies = policies
        self.fallback = fallback
        self.tables = tables
        self.local = local
        self.used = used
        self.contributions = contributions
        self.covers = covers

    def __call__(self, where: str, key: str, candidates: tuple[Candidate, ...],
                 start: VirtualHost | None) -> VirtualHost:
        """`start`: the Ingress VirtualHost of that host on a shared port (None: Gateway routes only)."""
        if start is not None and not candidates:
            return start
        place = (self.local, where, key)
        self.used.add(place)
        remembered = self.tables._merged
        found = remembered.get(place)
        if found is not None and found.ingress is start and found.candidates == candidates:
            found.candidates = candidates  # equal: keep the new tuple, whose items the next compare finds identical
            return found.routes
        self.tables.merges += 1
        with_ingress = list(self.contributions(key)) if start is not None else []
        routes, warnings = merge_host(key, with_ingress, covered=bool(with_ingress) and bool(key) and self.covers(key),
                                      candidates=candidates, policies=self.policies,
                                      fallback=self.fallback if with_ingress and key else None)
        scope = listener_scope(self.local, any_depth=where == _SUFFIX)
        remembered[place] = _Merged(candidates, start, routes, host_digest(key, routes, scope=scope), warnings)
        return routes
