"""The routing table: the only routing structure the request path reads.

Lookup cost depends on the request (one dict hit for the host, one per path segment),
never on how many Ingresses or routes exist. A path slot holds either one `Route` (no
conditions: the answer) or a `Choice` (rules with method, header or query conditions, in
Gateway API precedence order), so conditions are only evaluated where a rule has them.

Path precedence inside a host: Exact, then RegularExpression (in precedence order), then
the longest Prefix (element-wise), then the host's default backend. A slot whose conditions
all fail lets the walk go on to the next, less specific slot, as the Gateway API requires.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from proxy.routing.model import Route
from proxy.routing.request import Request


class Choice:
    """Rules sharing one path slot, most specific first; the first whose conditions hold wins."""

    __slots__ = ("routes",)

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes

    def pick(self, request: Request | None) -> Route | None:
        """The first route whose conditions hold (without a request: the first without conditions)."""
        for route in self.routes:
            conditions = route.conditions
            if conditions is None:
                return route
            if request is not None and conditions.matches(request):
                return route
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and other.routes == self.routes

    def __hash__(self) -> int:
        return hash(self.routes)

    def __repr__(self) -> str:
        return f"Choice({self.routes!r})"


Slot = Route | Choice


def slot_routes(slot: Slot) -> tuple[Route, ...]:
    return (slot,) if type(slot) is Route else slot.routes  # type: ignore[union-attr]


class VirtualHost:
    """The rules of one host (merged over every Ingress and route that names it)."""

    __slots__ = ("exact", "prefix", "regex", "default", "log_unmatched")

    def __init__(
        self,
        *,
        exact: Mapping[str, Slot] | None = None,
        prefix: Mapping[str, Slot] | None = None,
        regex: tuple[tuple[re.Pattern[str], Slot], ...] = (),
        default: Route | None = None,
        log_unmatched: bool = True,
    ) -> None:
        # Exact: the normalized request path as written in the rule.
        self.exact: dict[str, Slot] = dict(exact or {})
        # Prefix and ImplementationSpecific: the rule path without trailing "/" ("/" itself is "").
        self.prefix: dict[str, Slot] = dict(prefix or {})
        # RegularExpression paths (whole-path match), in precedence order.
        self.regex = regex
        # The Ingress defaultBackend that catches what no path of this host matches.
        self.default = default
        # False: the proxy's 404 for a path no rule matches writes no access log line (the host's root location is
        # its oldest Ingress's, with enable-access-log "false"; routing.merge.merge_host).
        self.log_unmatched = log_unmatched

    def match(self, path: str, request: Request | None = None) -> Route | None:
        """The route for a normalized path: Exact, regex, longest Prefix, default; conditions decide ties."""
        found = self.exact.get(path)
        if found is not None:
            if type(found) is Route:
                return found
            route = found.pick(request)  # type: ignore[union-attr]
            if route is not None:
                return route
        if self.regex:
            for pattern, found in self.regex:
                if pattern.fullmatch(path) is not None:
                    route = found if type(found) is Route else found.pick(request)  # type: ignore[union-attr]
                    if route is not None:
                        return route
        prefix = self.prefix
        if prefix:
            key = path.rstrip("/")
            while True:
                found = prefix.get(key)
                if found is not None:
                    if type(found) is Route:
                        return found
                    route = found.pick(request)  # type: ignore[union-attr]
                    if route is not None:
                        return route
                if not key:
                    break
                key = key[: key.rfind("/")]
        return self.default

    def slots(self) -> Iterator[Slot]:
        yield from self.exact.values()
        for _, slot in self.regex:
            yield slot
        yield from self.prefix.values()

    def routes(self) -> Iterator[Route]:
        for slot in self.slots():
            if type(slot) is Route:
                yield slot
            else:
                yield from slot.routes  # type: ignore[union-attr]
        if self.default is not None:
            yield self.default


class RouteTable:
    """Host → VirtualHost: exact host, then a one-label `*.` wildcard (Ingress), then a `*.` suffix of
    any depth (Gateway API, longest first), then host-less rules."""

    __slots__ = ("hosts", "wildcards", "suffixes", "any_host")

    def __init__(
        self,
        *,
        hosts: Mapping[str, VirtualHost] | None = None,
        wildcards: Mapping[str, VirtualHost] | None = None,
        suffixes: Mapping[str, VirtualHost] | None = None,
        any_host: VirtualHost | None = None,
    ) -> None:
        self.hosts: dict[str, VirtualHost] = dict(hosts or {})
        # Keyed by the suffix after "*.": "*.example.com" is stored as "example.com".
        self.wildcards: dict[str, VirtualHost] = dict(wildcards or {})
        # Gateway API wildcards, which match any number of labels; same keys.
        self.suffixes: dict[str, VirtualHost] = dict(suffixes or {})
        # Rules without a host, plus the catch-all defaultBackend.
        self.any_host = any_host

    def host_routes(self, host: str) -> VirtualHost | None:
        """The rule set a normalized host selects; a claimed host never falls through."""
        routes = self.hosts.get(host)
        if routes is not None:
            return routes
        dot = host.find(".")
        if dot > 0:
            rest = host[dot + 1 :]
            routes = self.wildcards.get(rest)
            if routes is not None:
                return routes
            suffixes = self.suffixes
            if suffixes:
                while True:
                    routes = suffixes.get(rest)
                    if routes is not None:
                        return routes
                    dot = rest.find(".")
                    if dot < 0:
                        break
                    rest = rest[dot + 1 :]
        return self.any_host

    def match(self, host: str, path: str, request: Request | None = None) -> Route | None:
        """The route for a normalized host and path, or None for a 404."""
        routes = self.hosts.get(host)
        if routes is None:
            routes = self.host_routes(host)
            if routes is None:
                return None
        return routes.match(path, request)

    def virtual_hosts(self) -> Iterator[tuple[str, VirtualHost]]:
        """(rule host as written, its VirtualHost): "x", "*.x" (one label, or any depth), "" for any host."""
        yield from self.hosts.items()
        for suffix, routes in self.wildcards.items():
            yield "*." + suffix, routes
        for suffix, routes in self.suffixes.items():
            if self.wildcards.get(suffix) is not routes:
                yield "*." + suffix, routes
        if self.any_host is not None:
            yield "", self.any_host

    def routes(self) -> Iterator[Route]:
        seen: set[int] = set()
        for _, routes in self.virtual_hosts():
            if id(routes) in seen:
                continue
            seen.add(id(routes))
            yield from routes.routes()


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
