"""Which TLS connections go to pods undecrypted: server name (SNI) → the rule whose backend receives them.

Two front ends write passthrough rules: an Ingress with ssl-passthrough (its host's "/" rule, marked
by routing.merge) and a TLSRoute attached to a Gateway listener of protocol TLS, mode Passthrough
(routing.gateway.tls_routes). Both are plain `Route`s with `passthrough` set, so their backends are
clusters like any other (resolved, balanced, their endpoints moving without a rebuild).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from proxy.routing.model import Route
from proxy.routing.table import RouteTable


class SniTable:
    """Server name → passthrough rule: exact name, then `*.` wildcards (longest suffix first)."""

    __slots__ = ("hosts", "wildcards", "any_depth")

    def __init__(self, hosts: Mapping[str, Route] | None = None, wildcards: Mapping[str, Route] | None = None,
                 *, any_depth: bool = False) -> None:
        self.hosts: dict[str, Route] = dict(hosts or {})
        # Keyed by the suffix after "*.".
        self.wildcards: dict[str, Route] = dict(wildcards or {})
        # Gateway API wildcards match any number of labels; an Ingress's only one.
        self.any_depth = any_depth

    def __bool__(self) -> bool:
        return bool(self.hosts or self.wildcards)

    def __repr__(self) -> str:
        return f"SniTable({self.hosts!r}, {self.wildcards!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SniTable) and other.hosts == self.hosts and other.wildcards == self.wildcards
                and other.any_depth == self.any_depth)

    def __hash__(self) -> int:
        return hash((tuple(self.hosts), tuple(self.wildcards), self.any_depth))

    def match(self, server_name: str) -> Route | None:
        """The rule for a ClientHello's server name (lower case, no trailing dot); None: terminate TLS."""
        route = self.hosts.get(server_name)
        if route is not None or not self.wildcards:
            return route
        rest = server_name
        while True:
            dot = rest.find(".")
            if dot <= 0:
                return None
            rest = rest[dot + 1:]
            route = self.wildcards.get(rest)
            if route is not None or not self.any_depth:
                return route

    def entries(self) -> Iterator[tuple[str, Route]]:
        """(host pattern as written, its rule)."""
        yield from self.hosts.items()
        for suffix, route in self.wildcards.items():
            yield "*." + suffix, route


EMPTY = SniTable()


def ingress_passthrough(table: RouteTable) -> SniTable:
    """The Ingress hosts whose "/" rule is marked passthrough (see routing.merge._pass_through)."""
    hosts = {host: route for host, routes in table.hosts.items()
             if type(route := routes.prefix.get("")) is Route and route.passthrough}
    wildcards = {suffix: route for suffix, routes in table.wildcards.items()
                 if type(route := routes.prefix.get("")) is Route and route.passthrough}
    return SniTable(hosts, wildcards) if hosts or wildcards else EMPTY


def joined(first: SniTable, second: SniTable) -> SniTable:
    """`first`'s names and `second`'s others (the Ingress table keeps the names it has; a TLSRoute adds)."""
    if not second:
        return first
    if not first:
        return second
    hosts = {**second.hosts, **first.hosts}
    wildcards = {**second.wildcards, **first.wildcards}
    return SniTable(hosts, wildcards, any_depth=second.any_depth or first.any_depth)
