"""Merging the rules of one host: every Ingress and route naming it folded into one VirtualHost.

Ingress paths merge as Kubernetes and ingress-nginx users expect: the oldest Ingress claims a
host + path + type first, a later claim on a taken slot loses with a warning (Prefix wins over
ImplementationSpecific at the same path), the oldest defaultBackend catches what no path matches.

Rules with conditions (Gateway API matches) share slots: a slot then holds a `Choice`, ordered
by the Gateway API's precedence after the path: a method, more header matches, more query
matches, the oldest object, namespace/name, rule order. An unconditional rule ends a Choice
(what would follow it can never be reached). GRPCRoute matches are ranked across slots too (more
service characters, then more method characters: routing.gateway.grpc_routes).

ingress-nginx annotations join here because they reach across Ingresses of one host: an
ingress-nginx canary turns the main Ingress's slot into a Choice of its own order (header, cookie,
then weights: routing.ingress.canary), `use-regex` or `rewrite-target` on one Ingress turns every
path of the host into nginx's regex locations (routing.ingress.regex_paths), and `app-root` answers
"/" for the whole host. Filters of one Ingress's own annotations come from routing.ingress.nginx.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from proxy.objects import Key, Warning
from proxy.routing.filters import Filters, RegexRewrite, compose
from proxy.routing.ingress.canary import canary_rules
from proxy.routing.ingress.client_auth import ClientCertificateCheck, guard, host_check
from proxy.routing.ingress.nginx import DefaultBackend, NginxFeatures, unset_names
from proxy.routing.ingress.regex_paths import to_regex_host
from proxy.routing.model import (
    BODY_LIMIT_DEFAULT,
    KIND_INGRESS,
    PATH_DEFAULT_BACKEND,
    PATH_EXACT,
    PATH_IMPLEMENTATION_SPECIFIC,
    PATH_PREFIX,
    PATH_REGEX,
    ErrorPages,
    Route,
)
from proxy.routing.policy.spec import PolicySpec
from proxy.routing.table import Choice, Slot, VirtualHost, slot_routes

# (path as written, path type, table key, cluster key) of one valid Ingress path, for one host.
PathEntry = tuple[str, str, str, str]


class IngressPolicies(Protocol):
    """The traffic policies Ingress routes are made under (routing.policy.index.PolicyIndex)."""

    @property
    def active(self) -> bool: ...

    def ingress_route(self, route: Route, annotations: PolicySpec | None = None) -> Route: ...

    def overridden(self, ingress: Key, annotations: PolicySpec) -> list[str]: ...


class IngressPaths(Protocol):
    """What one served Ingress brings to the hosts it names (see ingress.processor.IngressEntry)."""

    key: Key
    age: float
    default: str | None  # cluster key of spec.defaultBackend
    has_hosts: bool
    redirect: bool  # ssl-redirect
    force_redirect: bool  # force-ssl-redirect
    https_redirect: Filters  # the filters of its redirected routes (HTTPS_REDIRECT, or preserve-trailing-slash's)
    nginx: NginxFeatures | None  # the other ingress-nginx annotations, compiled (None: none used)
    tracing: bool | None  # enable-opentelemetry (None: the process's default)
    passthrough: bool  # ssl-passthrough

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
    # A GRPCRoute match's (characters of its service, of its method), for the spec's order across slots.
    grpc: tuple[int, int] | None = None


def claims(contributions: Sequence[IngressPaths]) -> bool:
    """True when a host is served at all: some Ingress naming it is not an ingress-nginx canary (a canary
    alone claims nothing: its host keeps falling through, as ingress-nginx creates no server for it)."""
    return any(c.nginx is None or c.nginx.canary is None for c in contributions)


def merge_host(host: str, contributions: Sequence[IngressPaths], *, covered: bool,
               candidates: tuple[Candidate, ...] = (),
               policies: IngressPolicies | None = None,
               fallback: DefaultBackend | None = None) -> tuple[VirtualHost, list[Warning]]:
    """Fold the Ingresses naming `host` (oldest first), then `candidates`, into its rules.

    `covered`: the host has TLS among the served Ingresses (plain HTTP is redirected unless opted out).
    `policies`: the traffic policies each Ingress route is put under once made (routing.policy.index), with
    its Ingress's traffic annotations as a layer of their own (routing.ingress.nginx_traffic).
    `fallback`: ingress-nginx's --default-backend-service (None: none): what no path of the host matches goes
    there when no Ingress of the host has a defaultBackend (`fallback_route`).
    ingress-nginx annotations (routing.ingress.nginx) add filters to their Ingress's routes, lend canary
    backends to other Ingresses' routes, and may make the host a regex host (routing.ingress.regex_paths).
    """
    routes = VirtualHost()
    exact, prefix = routes.exact, routes.prefix
    warnings: list[Warning] = []
    canaries: list[IngressPaths] = []
    # A regex host's locations are nginx's: one per path as written and pathType (see regex_paths).
    regex = any(c.nginx is not None and c.nginx.canary is None and any(c.nginx.regex_host(entry[0])
                                                                        for entry in c.paths_for(host))
                for c in contributions if c.nginx is not None)
    located: dict[str, Slot] = {}
    root: Route | None = None
    # ingress-nginx's auth-tls is the server's: the oldest such Ingress's check guards the others' paths too.
    guarded = host_check(c.nginx for c in contributions if c.nginx is not None and c.nginx.canary is None)
    for contribution in contributions:
        namespace, name = contribution.key
        nginx = contribution.nginx
        tracing = contribution.tracing
        if nginx is not None and nginx.canary is not None:
            canaries.append(contribution)
            continue
        redirected = contribution.force_redirect or (contribution.redirect and covered)
        filters = contribution.https_redirect if redirected else None
        # Paths of an Ingress without auth-tls of its own on a host where another Ingress asks certificates.
        stranger = guarded if guarded is not None and host_check((nginx,)) is None else None
        for path, path_type, key, cluster in contribution.paths_for(host):
            route = Route(namespace, name, host, path, path_type, cluster, filters=filters, tracing=tracing,
                          body_limit=BODY_LIMIT_DEFAULT)
            if nginx is not None:
                route = nginx.route(route)
            if stranger is not None:
                route = guard(route, stranger)
            if regex:
                slots, key = located, f"{path_type}\0{path}"
            else:
                slots = exact if path_type == PATH_EXACT else prefix
            taken = slots.get(key)
            if taken is None:
                slots[key] = route
                continue
            assert type(taken) is Route  # Ingress slots hold single routes until canaries and candidates join
            if taken.path_type == PATH_IMPLEMENTATION_SPECIFIC and path_type == PATH_PREFIX:
                slots[key] = route
                warnings.append(_lost(taken, route, why="a Prefix path wins over ImplementationSpecific at the "
                                                        "same path"))
            elif taken.path_type == PATH_PREFIX and path_type == PATH_IMPLEMENTATION_SPECIFIC:
                warnings.append(_lost(route, taken, why="a Prefix path wins over ImplementationSpecific at the "
                                                        "same path"))
            else:
                warnings.append(_lost(route, taken, why=""))
        if nginx is not None and nginx.app_root is not None and root is None:
            # nginx's `if ($uri = /)` sits in the server block: it answers "/" before any location is chosen.
            root = Route(namespace, name, host, "/", PATH_EXACT, "", filters=Filters(request=(nginx.app_root,)),
                         tracing=tracing)
        default = contribution.default
        if default is None:
            continue
        if host:
            route = Route(namespace, name, host, "", PATH_DEFAULT_BACKEND, default, filters=filters, tracing=tracing,
                          body_limit=BODY_LIMIT_DEFAULT)
            if nginx is not None:
                route = nginx.secure(route)
            if stranger is not None:
                route = guard(route, stranger)
            if routes.default is None:
                routes.default = route
            else:
                warnings.append(_lost(route, routes.default, why=""))
        elif routes.default is None:
            routes.default = Route(namespace, name, "", "", PATH_DEFAULT_BACKEND, default,
                                   filters=contribution.https_redirect if contribution.force_redirect else None,
                                   tracing=tracing,
                                   body_limit=BODY_LIMIT_DEFAULT)
            if nginx is not None:
                routes.default = nginx.secure(routes.default)
        elif not contribution.has_hosts:
            # An Ingress whose defaultBackend serves hosts of its own is not warned for losing the catch-all.
            loser = Route(namespace, name, "", "", PATH_DEFAULT_BACKEND, default)
            warnings.append(_lost(loser, routes.default,
                                  why="the oldest Ingress's defaultBackend catches unclaimed hosts"))
    if routes.default is None and fallback:
        routes.default = fallback_route(host, contributions, fallback, covered=covered, guarded=guarded)
    if host:
        # controller.go createServers: a named host's root location "/" takes the annotations of its oldest Ingress
        # (canaries make no server), so with that one's enable-access-log "false" its unmatched paths are not logged.
        owner = next((c for c in contributions if c.nginx is None or c.nginx.canary is None), None)
        if owner is not None and owner.nginx is not None and not owner.nginx.access_log:
            routes.log_unmatched = False
    if canaries:
        cookies = {c.key: c.nginx.policy.affinity.cookie for c in contributions
                   if c.nginx is not None and c.nginx.policy is not None and c.nginx.policy.affinity is not None}
        warnings.extend(lend_canaries(routes, host, canaries, located if regex else None, cookies))
    route_hook = _route_hook(contributions, policies, warnings) if policies is not None else None
    if route_hook is not None:
        _hook(routes, route_hook)
        for key, slot in located.items():
            located[key] = _hooked(slot, route_hook)
    if regex:
        literal = {c.key for c in contributions if c.nginx is None or not c.nginx.use_regex}
        warnings.extend(to_regex_host(routes, located.values(), literal=lambda r: (
            (r.namespace, r.ingress) in literal
            and not (r.filters is not None and any(isinstance(f, RegexRewrite) for f in r.filters.request)))))
    if root is not None:
        routes.exact["/"] = root
    if host and any(c.passthrough for c in contributions if c.nginx is None or c.nginx.canary is None):
        warnings.extend(_pass_through(routes, host, contributions))
    if candidates:
        warnings.extend(_place_candidates(routes, contributions, candidates))
    return routes, warnings


def fallback_route(host: str, contributions: Sequence[IngressPaths], fallback: DefaultBackend, *, covered: bool,
                   guarded: ClientCertificateCheck | None = None) -> Route:
    """The route of what no path of `host` matches when no Ingress of the host has a defaultBackend: ingress-nginx's
    --default-backend-service (controller.go createServers: each server's root location, `IsDefBackend`, whose
    backend is the default upstream). A named host's root location is its oldest Ingress's, with that Ingress's
    annotations (ssl-redirect, security, auth...); the default server's ("" : unknown hosts, host-less rules) names
    no Ingress and has what the ConfigMap gives every location (nginx.tmpl): proxy-set-headers, and the
    custom-http-errors answers sent back to the default backend with X-Code (its `error_page`s at http level). Its
    X-Namespace, X-Ingress-Name, X-Service-Name and X-Service-Port are empty there, and nginx sends no field whose
    value is empty: the route's error fields are none."""
    cluster = fallback.cluster
    owner = next((c for c in contributions if c.nginx is None or c.nginx.canary is None), None) if host else None
    if owner is None:
        namespace = cluster.partition("/")[0]
        # controller.go: the default server's root location logs only with enable-access-log-for-default-backend.
        return Route(namespace, "", "", "", PATH_DEFAULT_BACKEND, cluster, body_limit=BODY_LIMIT_DEFAULT,
                     access_log=fallback.access_log,
                     filters=compose((fallback.headers,)) if fallback.headers is not None else None,
                     errors=ErrorPages(cluster, fallback.codes, unset=unset_names(fallback.headers))
                     if fallback.codes else None)
    namespace, name = owner.key
    redirected = owner.force_redirect or (owner.redirect and covered)
    route = Route(namespace, name, host, "", PATH_DEFAULT_BACKEND, cluster,
                  filters=owner.https_redirect if redirected else None, tracing=owner.tracing,
                  body_limit=BODY_LIMIT_DEFAULT)
    nginx = owner.nginx
    if nginx is not None:
        route = nginx.secure(route)
    if guarded is not None and host_check((nginx,)) is None:
        route = guard(route, guarded)
    return route


def default_server(fallback: DefaultBackend) -> VirtualHost:
    """The rules of unknown hosts when no Ingress has host-less rules or a catch-all defaultBackend: ingress-nginx's
    default server "_", whose root location is --default-backend-service's."""
    return VirtualHost(default=fallback_route("", (), fallback, covered=False))


def _pass_through(routes: VirtualHost, host: str, contributions: Sequence[IngressPaths]) -> list[Warning]:
    """Mark the host's "/" rule as the target of its TLS connections (ingress-nginx: an ssl-passthrough
    Ingress makes its whole server passthrough, and the Service of the server's "/" location, whichever
    Ingress wrote it, receives the connections; without one the annotation is ignored, with a warning)."""
    slot = routes.prefix.get("")
    if type(slot) is Route and slot.path in ("/", "") and slot.cluster:
        routes.prefix[""] = replace(slot, passthrough=True)
        return []
    return [Warning("Ingress", c.key[0], c.key[1], f"ssl-passthrough for host {host}: no rule for path \"/\" with "
                    "a single Service (its Service receives the TLS connections); TLS is terminated for this host")
            for c in contributions if c.passthrough]


def lend_canaries(routes: VirtualHost, host: str, canaries: Sequence[IngressPaths],
                  located: dict[str, Slot] | None, cookies: dict[Key, bytes] | None = None) -> list[Warning]:
    """Attach each canary Ingress's backends to the main routes of the same path and pathType (oldest
    canary first: one canary per path); what finds no main route is not served, with a warning.
    `located`: a regex host's locations (by pathType and path as written), else the host's slots; `cookies`: the
    affinity cookie of each main Ingress that has one (ingress-nginx's sticky canaries)."""
    warnings: list[Warning] = []
    lent: set[tuple[int, str]] = set()
    for contribution in canaries:
        namespace, name = contribution.key
        assert contribution.nginx is not None and contribution.nginx.canary is not None
        spec = contribution.nginx.canary
        if not host and contribution.default is not None:
            warnings.append(Warning("Ingress", namespace, name, "canary defaultBackend not served: only rule paths "
                                                                "of a canary Ingress are supported"))
        for path, path_type, key, cluster in contribution.paths_for(host):
            what = f"canary path {path!r} ({path_type}) for {_host_text(host)} not served"
            if located is not None:
                slots, key = located, f"{path_type}\0{path}"
            else:
                slots = routes.exact if path_type == PATH_EXACT else routes.prefix
            taken = slots.get(key)
            place = (id(slots), key)
            if place in lent:
                warnings.append(Warning("Ingress", namespace, name, f"{what}: another canary Ingress already serves "
                                                                    "it (one canary per path; the older wins)"))
                continue
            if type(taken) is not Route or taken.path != path or taken.path_type != path_type:
                why = "no main Ingress serves that host, path and pathType (a canary is an alternative backend)"
                warnings.append(Warning("Ingress", namespace, name, f"{what}: {why}"))
                continue
            if taken.cluster == cluster or not taken.cluster:
                warnings.append(Warning("Ingress", namespace, name, f"{what}: its backend is the main Ingress's own"))
                continue
            slots[key] = canary_rules(taken, cluster, spec, (cookies or {}).get((taken.namespace, taken.ingress), b""))
            lent.add(place)
    return warnings


def _route_hook(contributions: Sequence[IngressPaths], policies: IngressPolicies,
                warnings: list[Warning]) -> Callable[[Route], Route] | None:
    """What puts an Ingress route of this host under its policies (None: nothing would change any)."""
    layers: dict[Key, PolicySpec] = {}
    for contribution in contributions:
        nginx = contribution.nginx
        if nginx is not None and nginx.policy is not None:
            layers[contribution.key] = nginx.policy
            warnings.extend(Warning("Ingress", contribution.key[0], contribution.key[1], message)
                            for message in policies.overridden(contribution.key, nginx.policy))
    if not layers:
        return policies.ingress_route if policies.active else None
    ingress_route = policies.ingress_route

    def hook(route: Route) -> Route:
        return ingress_route(route, layers.get((route.namespace, route.ingress)))
    return hook


def _hook(routes: VirtualHost, hook: Callable[[Route], Route]) -> None:
    """Apply the traffic-policy hook to every Ingress route of a freshly merged host."""
    for slots in (routes.exact, routes.prefix):
        for key, slot in slots.items():
            slots[key] = _hooked(slot, hook)
    if routes.default is not None:
        routes.default = hook(routes.default)


def _hooked(slot: Slot, hook: Callable[[Route], Route]) -> Slot:
    return hook(slot) if type(slot) is Route else Choice(tuple(hook(r) for r in slot_routes(slot)))


def _place_candidates(routes: VirtualHost, contributions: Sequence[IngressPaths],
                      candidates: tuple[Candidate, ...]) -> list[Warning]:
    """Add rules from other front ends to the slots; an Ingress route there competes by age like them
    (and is reported when an older rule without conditions leaves it unreachable)."""
    warnings: list[Warning] = []
    ages = {c.key: c.age for c in contributions}
    grouped: dict[tuple[str, str], list[Candidate]] = {}
    patterns: dict[str, re.Pattern[str]] = {}
    ranks: dict[str, tuple[int, int]] = {}
    if any(c.grpc is not None and c.pattern is not None for c in candidates):
        candidates = tuple(_service_regex(c) if c.grpc is not None and c.grpc[0] and c.pattern is None
                           and c.route.path_type == PATH_PREFIX else c for c in candidates)
    for candidate in candidates:
        kind = candidate.route.path_type
        group = PATH_EXACT if kind == PATH_EXACT else PATH_REGEX if kind == PATH_REGEX else PATH_PREFIX
        grouped.setdefault((group, candidate.slot), []).append(candidate)
        if candidate.pattern is not None:
            patterns[candidate.slot] = candidate.pattern
            if candidate.grpc is not None:
                ranks[candidate.slot] = candidate.grpc
    regex: dict[str, Slot] = {}
    for (group, slot), found in grouped.items():
        slots: dict[str, Slot] = (routes.exact if group == PATH_EXACT else regex if group == PATH_REGEX
                                  else routes.prefix)
        ranked = list(found)
        taken = slots.get(slot)
        if taken is not None:  # an Ingress path: one route, or a canary's rules (kept in their own order)
            for index, route in enumerate(slot_routes(taken)):
                age = ages.get((route.namespace, route.ingress), float("inf"))
                ranked.append(Candidate(route, (0, 0, 0, age, route.namespace, route.ingress, index), slot))
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
        # GRPCRoute matches by the spec: more service characters, then more method characters. Then longer
        # patterns first (the closest to "most specific" a regex has), then the source text; after the paths
        # of an ingress-nginx regex host (routing.ingress.regex_paths), which keep nginx's order.
        def precedence(source: str) -> tuple[int, int, int, str]:
            service, method = ranks.get(source, (0, 0))
            return -service, -method, -len(source), source

        routes.regex = (*routes.regex, *((patterns[source], regex[source])
                                         for source in sorted(regex, key=precedence)))
    return warnings


def _service_regex(candidate: Candidate) -> Candidate:
    """A GRPCRoute service-only match (the Prefix `/<service>`) as the regex `/<service>/[^/]+`, so that it
    is ranked among the host's gRPC regexes (a method-only match must not win over it)."""
    source = re.escape(candidate.slot) + "/[^/]+"
    route = replace(candidate.route, path=source, path_type=PATH_REGEX)
    return replace(candidate, route=route, slot=source, pattern=re.compile(source))


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
