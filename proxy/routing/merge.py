"""Merging the rules of one host: every Ingress and route naming it folded into one VirtualHost.

Ingress paths merge as Kubernetes and ingress-nginx users expect: the oldest Ingress claims a
host + path + type first, a later claim on a taken slot loses with a warning (Prefix wins over
ImplementationSpecific at the same path), the oldest defaultBackend catches what no path matches.

Rules with conditions (Gateway API matches) share slots: a slot then holds a `Choice`, ordered
by the Gateway API's precedence after the path: a method, more header matches, more query
matches, the oldest object, namespace/name, rule order. An unconditional rule ends a Choice
(what would follow it can never be reached).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from proxy.objects import Key, Warning
from proxy.routing.filters import HTTPS_REDIRECT
from proxy.routing.model import (
    KIND_INGRESS,
    PATH_DEFAULT_BACKEND,
    PATH_EXACT,
    PATH_IMPLEMENTATION_SPECIFIC,
    PATH_PREFIX,
    PATH_REGEX,
    Route,
)
from proxy.routing.table import Choice, Slot, VirtualHost

# (path as written, path type, table key, cluster key) of one valid Ingress path, for one host.
PathEntry = tuple[str, str, str, str]


class IngressPaths(Protocol):
    """What one served Ingress brings to the hosts it names (see ingress.processor.IngressEntry)."""

    key: Key
    age: float
    default: str | None  # cluster key of spec.defaultBackend
    has_hosts: bool
    redirect: bool  # ssl-redirect
    force_redirect: bool  # force-ssl-redirect
    tracing: bool | None  # enable-opentelemetry (None: the process's default)

    def paths_for(self, host: str) -> tuple[PathEntry, ...]: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A rule with conditions or from another front end, placed by precedence into its host's slots."""

    route: Route
    # Sort key after the path: (-method, -headers, -query, age, namespace, name, rule index).
    order: tuple[int, int, int, float, str, str, int]
    # Table key: the normalized Exact path, the Prefix path without trailing "/", or the regex source.
    slot: str
    pattern: re.Pattern[str] | None = None


def merge_host(host: str, contributions: Sequence[IngressPaths], *, covered: bool,
               candidates: tuple[Candidate, ...] = (),
               route_hook: Callable[[Route], Route] | None = None) -> tuple[VirtualHost, list[Warning]]:
    """Fold the Ingresses naming `host` (oldest first), then `candidates`, into its rules.

    `covered`: the host has TLS among the served Ingresses (plain HTTP is redirected unless opted out).
    `route_hook`: applied to each Ingress route as it is made (traffic policies: routing.policy.index).
    """
    routes = VirtualHost()
    exact, prefix = routes.exact, routes.prefix
    warnings: list[Warning] = []
    for contribution in contributions:
        namespace, name = contribution.key
        redirected = contribution.force_redirect or (contribution.redirect and covered)
        filters = HTTPS_REDIRECT if redirected else None
        tracing = contribution.tracing
        for path, path_type, key, cluster in contribution.paths_for(host):
            route = Route(namespace, name, host, path, path_type, cluster, filters=filters, tracing=tracing)
            if route_hook is not None:
                route = route_hook(route)
            slots = exact if path_type == PATH_EXACT else prefix
            taken = slots.get(key)
            if taken is None:
                slots[key] = route
                continue
            assert type(taken) is Route  # Ingress slots hold single routes until candidates join
            if taken.path_type == PATH_IMPLEMENTATION_SPECIFIC and path_type == PATH_PREFIX:
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
            route = Route(namespace, name, host, "", PATH_DEFAULT_BACKEND, default, filters=filters, tracing=tracing)
            if route_hook is not None:
                route = route_hook(route)
            if routes.default is None:
                routes.default = route
            else:
                warnings.append(_lost(route, routes.default, why=""))
        elif routes.default is None:
            routes.default = Route(namespace, name, "", "", PATH_DEFAULT_BACKEND, default,
                                   filters=HTTPS_REDIRECT if contribution.force_redirect else None, tracing=tracing)
            if route_hook is not None:
                routes.default = route_hook(routes.default)
        elif not contribution.has_hosts:
            # An Ingress whose defaultBackend serves hosts of its own is not warned for losing the catch-all.
            loser = Route(namespace, name, "", "", PATH_DEFAULT_BACKEND, default)
            warnings.append(_lost(loser, routes.default,
                                  why="the oldest Ingress's defaultBackend catches unclaimed hosts"))
    if candidates:
        warnings.extend(_place_candidates(routes, contributions, candidates))
    return routes, warnings


def _place_candidates(routes: VirtualHost, contributions: Sequence[IngressPaths],
                      candidates: tuple[Candidate, ...]) -> list[Warning]:
    """Add rules from other front ends to the slots; an Ingress route there competes by age like them
    (and is reported when an older rule without conditions leaves it unreachable)."""
    warnings: list[Warning] = []
    ages = {c.key: c.age for c in contributions}
    grouped: dict[tuple[str, str], list[Candidate]] = {}
    patterns: dict[str, re.Pattern[str]] = {}
    for candidate in candidates:
        kind = candidate.route.path_type
        group = PATH_EXACT if kind == PATH_EXACT else PATH_REGEX if kind == PATH_REGEX else PATH_PREFIX
        grouped.setdefault((group, candidate.slot), []).append(candidate)
        if candidate.pattern is not None:
            patterns[candidate.slot] = candidate.pattern
    regex: dict[str, Slot] = {}
    for (group, slot), found in grouped.items():
        slots: dict[str, Slot] = (routes.exact if group == PATH_EXACT else regex if group == PATH_REGEX
                                  else routes.prefix)
        ranked = list(found)
        taken = slots.get(slot)
        if taken is not None:  # an Ingress path (Ingress slots hold single routes)
            assert type(taken) is Route
            age = ages.get((taken.namespace, taken.ingress), float("inf"))
            ranked.append(Candidate(taken, (0, 0, 0, age, taken.namespace, taken.ingress, taken.rule), slot))
        ranked.sort(key=lambda c: c.order)
        chosen: list[Route] = []
        for number, candidate in enumerate(ranked):
            chosen.append(candidate.route)
            if candidate.route.conditions is None:
                # Nothing after an unconditional rule can be reached; an Ingress path there is worth a word.
                warnings.extend(_shadowed(later.route, candidate.route) for later in ranked[number + 1:]
                                if later.route.kind == KIND_INGRESS)
                break
        slots[slot] = chosen[0] if len(chosen) == 1 and chosen[0].conditions is None else Choice(tuple(chosen))
    if regex:
        # Longer patterns first (the closest to "most specific" a regex has), then the source text.
        routes.regex = tuple((patterns[source], regex[source]) for source in sorted(regex, key=lambda s: (-len(s), s)))
    return warnings


def _shadowed(loser: Route, winner: Route) -> Warning:
    """An Ingress path that an older rule of another front end (an HTTPRoute) serves on the same listener."""
    message = (f"path {loser.path!r} ({loser.path_type}) for {_host_text(loser.host)} loses to {winner.kind} "
               f"{winner.name} (rule {winner.rule}) on the listener they share (the older object wins)")
    return Warning("Ingress", loser.namespace, loser.ingress, message)


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
