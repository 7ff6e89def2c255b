"""The routing table: the only routing structure the request path reads.

Lookup cost depends on the request (one dict hit for the host, one per path
segment), never on how many Ingresses exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Mapping

if TYPE_CHECKING:
    from proxy.routing.model import Route


class HostRoutes:
    """The paths of one host (merged over every Ingress that names it)."""

    __slots__ = ("exact", "prefix", "default")

    def __init__(
        self,
        *,
        exact: Mapping[str, Route] | None = None,
        prefix: Mapping[str, Route] | None = None,
        default: Route | None = None,
    ) -> None:
        # Exact: the normalized request path as written in the rule.
        self.exact: dict[str, Route] = dict(exact or {})
        # Prefix and ImplementationSpecific: the rule path without trailing "/" ("/" itself is "").
        self.prefix: dict[str, Route] = dict(prefix or {})
        # The Ingress defaultBackend that catches what no path of this host matches.
        self.default = default

    def match(self, path: str) -> Route | None:
        """Longest match for a normalized path; Exact wins at equal length."""
        route = self.exact.get(path)
        if route is not None:
            return route
        prefix = self.prefix
        if prefix:
            key = path.rstrip("/")
            while True:
                route = prefix.get(key)
                if route is not None:
                    return route
                if not key:
                    break
                key = key[: key.rfind("/")]
        return self.default

    def routes(self) -> Iterator[Route]:
        yield from self.exact.values()
        yield from self.prefix.values()
        if self.default is not None:
            yield self.default


class RouteTable:
    """Host → HostRoutes: exact host first, then a one-label `*.` wildcard, then host-less rules."""

    __slots__ = ("hosts", "wildcards", "any_host")

    def __init__(
        self,
        *,
        hosts: Mapping[str, HostRoutes] | None = None,
        wildcards: Mapping[str, HostRoutes] | None = None,
        any_host: HostRoutes | None = None,
    ) -> None:
        self.hosts: dict[str, HostRoutes] = dict(hosts or {})
        # Keyed by the suffix after "*.": "*.example.com" is stored as "example.com".
        self.wildcards: dict[str, HostRoutes] = dict(wildcards or {})
        # Rules without a host, plus the catch-all defaultBackend.
        self.any_host = any_host

    def host_routes(self, host: str) -> HostRoutes | None:
        """The rule set a normalized host selects; a claimed host never falls through."""
        routes = self.hosts.get(host)
        if routes is not None:
            return routes
        dot = host.find(".")
        if dot > 0:
            routes = self.wildcards.get(host[dot + 1 :])
            if routes is not None:
                return routes
        return self.any_host

    def match(self, host: str, path: str) -> Route | None:
        """The route for a normalized host and path, or None for a 404."""
        routes = self.hosts.get(host)
        if routes is None:
            routes = self.host_routes(host)
            if routes is None:
                return None
        return routes.match(path)

    def routes(self) -> Iterator[Route]:
        for routes in self.hosts.values():
            yield from routes.routes()
        for routes in self.wildcards.values():
            yield from routes.routes()
        if self.any_host is not None:
            yield from self.any_host.routes()


def normalize_host(host: str) -> str:
    """Lower-case, without port and trailing dot: the form table keys use."""
    if not host:
        return ""
    if host[0] == "[":  # IPv6 literal: "[::1]:8080"
        end = host.find("]")
        return host[: end + 1].lower() if end > 0 else host.lower()
    colon = host.rfind(":")
    if colon >= 0:
        host = host[:colon]
    if host.endswith("."):
        host = host[:-1]
    return host.lower()
