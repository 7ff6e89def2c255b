"""The Gateway API front end: GatewayClasses, Gateways, HTTPRoutes (and GRPCRoutes, TLSRoutes) and
ReferenceGrants → per-port rules and status. A translator with no behaviour of its own: what it produces is
`merge.Candidate`s placed by the same merge as Ingress paths, and the status the spec asks for.

1. our GatewayClasses (spec.controllerName), and their Gateways (only --gateway ones when given);
2. each Gateway's listeners judged (`listeners`); two Gateways asking one port for two protocols, or
   an Ingress port for the other protocol, leave the younger listener PortUnavailable;
3. each HTTPRoute (GRPCRoute: `grpc_routes.read_grpc_route`, into the same rules) naming one of our Gateways
   read once per object (`routes.read_route`, memoized by
   the caller), its backendRefs resolved and rules compiled (`routes.compile_route`);
4. each parentRef attached to the listeners it selects (sectionName, port, allowedRoutes, hostnames),
   each rule match placed on every host key of every listener that owns it: a listener on a port
   owns the hosts for which no more specific listener hostname exists there (listener isolation);
5. status for every class, Gateway and HTTPRoute of ours; every problem also a Warning.

Pure and deterministic: equal snapshots give equal translations (Candidates in the same order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from proxy.objects import Key, Snapshot, Warning
from proxy.routing.gateway.backends import BackendResolver
from proxy.routing.gateway.classes import select_gateway_classes
from proxy.routing.gateway.grants import GATEWAY_GROUP, Grants
from proxy.routing.gateway.grpc_routes import read_grpc_route
from proxy.routing.gateway.hostnames import intersect, owner, route_hosts
from proxy.routing.gateway.listeners import (
    HTTP,
    HTTPS,
    TLS,
    TLS_ROUTE,
    WIRE,
    GatewayEntry,
    Listener,
    SecretChecks,
    parse_gateway,
)
from proxy.routing.gateway.routes import CompiledRoute, RouteSpec, compile_route, read_route
from proxy.routing.gateway.selectors import namespace_labels
from proxy.routing.gateway.status import (
    ACCEPTED,
    CONFLICTED,
    OVERLAPPING_TLS_CONFIG,
    PARTIALLY_INVALID,
    PROGRAMMED,
    RESOLVED_REFS,
    Condition,
    GatewayApiStatus,
    GatewayStatus,
    ListenerStatus,
    ParentRef,
    RouteParentStatus,
    RouteStatus,
    condition,
)
from proxy.routing.gateway.tls_routes import KIND_TLS_ROUTE, TlsRouteSpec, read_tls_route, resolve_backends
from proxy.routing.merge import Candidate
from proxy.routing.model import Route
from proxy.routing.passthrough import SniTable
from proxy.routing.table import VirtualHost
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.routing.policy.index import PolicyIndex

_MAX_PORT = 65535


@dataclass(slots=True)
class PortPlan:
    """What one local port serves for Gateway listeners, before the merge into a RouteTable."""

    port: int  # as clients see it
    protocol: str
    ingress: bool  # an Ingress listener's port: the table merges with the Ingress one
    certificates: dict[str, Key] = field(default_factory=dict)
    # Host key ("x", "*.x", "" for any host) -> its candidates; a listener's own hostname is always
    # listed (maybe with none): the host is claimed and requests for it never fall through.
    hosts: dict[str, tuple[Candidate, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class GatewayTranslation:
    ports: dict[int, PortPlan] = field(default_factory=dict)  # by local port
    status: GatewayApiStatus | None = None
    warnings: list[Warning] = field(default_factory=list)
    # The Services and Secrets read (found or not): a change to one of them calls for a new translation.
    services: frozenset[Key] = frozenset()
    secrets: frozenset[Key] = frozenset()
    # TLSRoutes by local port (served with --enable-ssl-passthrough), and every one of their rules in one
    # VirtualHost, made once per translation (the builders count the clusters its routes use).
    tls: dict[int, SniTable] = field(default_factory=dict)
    tls_holder: VirtualHost | None = None


EMPTY = GatewayTranslation()


class TranslationMemo:
    """What translations keep between builds: each HTTPRoute's reading (while the object is identical) and
    compilation (while, besides, the ReferenceGrants and the Services its backendRefs named are identical)."""

    __slots__ = ("compiled", "grants", "grpc_compiled", "grpc_specs", "specs")

    def __init__(self) -> None:
        self.specs: dict[Key, RouteSpec] = {}
        self.compiled: dict[Key, CompiledRoute] = {}
        self.grpc_specs: dict[Key, RouteSpec] = {}  # the same for GRPCRoutes
        self.grpc_compiled: dict[Key, CompiledRoute] = {}
        self.grants: Mapping[Key, Any] | None = None  # the ReferenceGrants the compilations saw


def same_objects(now: Mapping[Any, Any], before: Mapping[Any, Any] | None) -> bool:
    """The same mapping, or one holding the identical objects under the same keys."""
    if now is before:
        return True
    if before is None or len(now) != len(before):
        return False
    get = before.get
    return all(get(key) is value for key, value in now.items())


def translate(snapshot: Snapshot, settings: Settings, memo: TranslationMemo | None = None,
              policies: PolicyIndex | None = None) -> GatewayTranslation:
    """Everything the Gateway API objects of a snapshot ask for; `memo` keeps work between calls.

    `policies`: the traffic policies the routes are placed under (and that records their variant
    clusters); without it, only the rules' own retry and sessionPersistence apply.
    """
    if not snapshot.gateway_classes:
        return EMPTY
    if policies is None:
        # Imported here: routing.policy reads Gateway API fields through this package (an import cycle).
        from proxy.routing.policy.index import PolicyIndex
        policies = PolicyIndex()
    classes, warnings = select_gateway_classes(snapshot.gateway_classes, settings.gateway_controller_name)
    if not classes:
        return EMPTY
    grants = Grants(snapshot.reference_grants)
    secrets = SecretChecks(snapshot.secrets)
    gateways = _our_gateways(snapshot, settings, classes, grants, secrets)
    _claim_ports(gateways, settings)
    result = GatewayTranslation()
    work = _Attachments(snapshot, settings, gateways, grants, result, policies)
    routes, grpc_routes = work.attach_routes(memo if memo is not None else TranslationMemo())
    tls_routes = work.attach_tls_routes()
    if gateways:
        warnings.extend(grants.warnings)
    for gateway in gateways:
        warnings.extend(gateway.warnings)
    warnings.extend(work.warnings)
    result.warnings = warnings
    result.status = GatewayApiStatus(
        controller_name=settings.gateway_controller_name,
        classes={name: entry.status for name, entry in classes.items()},
        gateways={gateway.key: work.gateway_status(gateway) for gateway in sorted(gateways, key=lambda g: g.key)},
        routes=routes,
        tls_routes=tls_routes,
        grpc_routes=grpc_routes,
    )
    result.secrets = secrets.used
    result.services = frozenset(work.resolver.used)
    return result


def _our_gateways(snapshot: Snapshot, settings: Settings, classes: Mapping[str, Any], grants: Grants,
                  secrets: SecretChecks) -> list[GatewayEntry]:
    """Our Gateways, oldest first (the older claim on a port wins)."""
    wanted = frozenset(settings.gateways)
    found = []
    for key, obj in snapshot.gateways.items():
        spec = obj.get("spec") if isinstance(obj, dict) else None
        class_name = spec.get("gatewayClassName") if isinstance(spec, dict) else None
        if not isinstance(class_name, str) or class_name not in classes:
            continue
        if wanted and f"{key[0]}/{key[1]}" not in wanted:
            continue
        try:
            entry = parse_gateway(key, obj, offset=settings.gateway_port_offset, grants=grants, secrets=secrets)
        except Exception as error:  # noqa: BLE001  (a bug must cost one Gateway, never the whole build)
            entry = GatewayEntry(key, obj)
            entry.accepted = (False, "Invalid", f"skipped: {type(error).__name__}: {error}")
            entry.warn(entry.accepted[2])
        if not settings.ssl_passthrough:
            for listener in entry.listeners:
                if listener.protocol == TLS and listener.accepted[0]:
                    listener.reject("UnsupportedProtocol", "TLS passthrough listeners are served with "
                                                           "--enable-ssl-passthrough only")
                    entry.warn(f"listener {listener.name!r} not accepted: {listener.accepted[2]}")
        if not classes[class_name].accepted and entry.accepted[0]:
            entry.accepted = (False, "Invalid", f"GatewayClass {class_name} is not accepted")
            entry.warn(f"not accepted: {entry.accepted[2]}")
        found.append(entry)
    found.sort(key=lambda entry: (entry.age, entry.key))
    return found


def _claim_ports(gateways: list[GatewayEntry], settings: Settings) -> None:
    """Give each local port one protocol: the Ingress listener's, else the oldest Gateway's."""
    owners: dict[int, tuple[str, str]] = {}
    if settings.http_port:
        owners[settings.http_port] = (HTTP, f"the Ingress HTTP listener (--http-port {settings.http_port})")
    if settings.https_port:
        owners[settings.https_port] = (TLS, f"the Ingress HTTPS listener (--https-port {settings.https_port})")
    for gateway in gateways:
        if not gateway.accepted[0]:
            continue
        for listener in gateway.listeners:
            if not listener.accepted[0]:
                continue
            local = listener.local_port
            if not 0 < local <= _MAX_PORT:
                listener.reject("PortUnavailable", f"port {listener.port} would be served on local port {local} "
                                                   f"(port + --gateway-port-offset), which does not exist")
            elif local in owners and owners[local][0] != WIRE[listener.protocol]:
                protocol, holder = owners[local]
                listener.reject("PortUnavailable", f"port {listener.port} (local port {local}) is served as "
                                                   f"{'HTTPS' if protocol == TLS else protocol} by {holder}")
            else:
                owners.setdefault(local, (WIRE[listener.protocol], f"Gateway {gateway.key[0]}/{gateway.key[1]}"))
            if not listener.accepted[0]:
                gateway.warn(f"listener {listener.name!r} not accepted: {listener.accepted[2]}")


class _Attachments:
    """Route attachment for one translation: which listener takes which route, and what gets served."""

    def __init__(self, snapshot: Snapshot, settings: Settings, gateways: list[GatewayEntry], grants: Grants,
                 result: GatewayTranslation, policies: PolicyIndex) -> None:
        self.snapshot = snapshot
        self.policies = policies
        self.settings = settings
        self.by_key = {gateway.key: gateway for gateway in gateways}
        self.resolver = BackendResolver(snapshot.services, grants)
        self.result = result
        self.warnings: list[Warning] = []
        self.attached: dict[int, set[Key]] = {}  # id(listener) -> routes attached to it
        self._labels: dict[str, dict[str, str]] = {}
        # Hostname patterns of the listeners served on each local port (for listener isolation); TLS
        # passthrough listeners apart (their hosts are server names, not HTTP hosts).
        self.patterns: dict[int, set[str]] = {}
        self.tls_patterns: dict[int, set[str]] = {}
        # (local port, host key) -> the TLSRoute rules for it, oldest route first.
        self._tls_placed: dict[tuple[int, str], list[tuple[tuple[float, Key], Route]]] = {}
        self._placed: dict[tuple[int, str], set[tuple[str, str, int, int]]] = {}
        self._candidates: dict[tuple[int, str], list[Candidate]] = {}
        # (route kind, route, id(listener)) -> the older route of the other kind that keeps the listener (_settle).
        self.lost: dict[tuple[str, Key, int], RouteSpec] = {}
        for gateway in gateways:
            if not gateway.accepted[0]:
                continue
            for listener in gateway.listeners:
                if listener.serves:
                    self._serve(listener)

    def _serve(self, listener: Listener) -> None:
        local = listener.local_port
        plan = self.result.ports.get(local)
        if plan is None:
            ingress = ((local == self.settings.http_port and listener.protocol == HTTP)
                       or (local == self.settings.https_port and WIRE[listener.protocol] == TLS))
            plan = self.result.ports[local] = PortPlan(listener.port, listener.protocol, ingress)
        elif listener.protocol == HTTPS and plan.protocol == TLS:
            plan.protocol = HTTPS  # TLS passthrough beside HTTPS listeners: the port terminates the other names
        if listener.protocol == TLS:
            self.tls_patterns.setdefault(local, set()).add(listener.hostname)
            return
        plan.hosts.setdefault(listener.hostname, ())
        if listener.certificate is not None:
            plan.certificates.setdefault(listener.hostname, listener.certificate)
        self.patterns.setdefault(local, set()).add(listener.hostname)

    def labels(self, namespace: str) -> dict[str, str]:
        found = self._labels.get(namespace)
        if found is None:
            found = self._labels[namespace] = namespace_labels(self.snapshot.namespaces, namespace)
        return found

    # ------------------------------------------------------------------ routes

    def attach_routes(self, memo: TranslationMemo) -> tuple[dict[Key, RouteStatus], dict[Key, RouteStatus]]:
        """Attach every HTTPRoute and GRPCRoute naming one of our Gateways: their statuses, by kind."""
        statuses: dict[Key, RouteStatus] = {}
        grpc_statuses: dict[Key, RouteStatus] = {}
        routes, grpc_routes = self.snapshot.http_routes, self.snapshot.grpc_routes
        for specs, objects in ((memo.specs, routes), (memo.grpc_specs, grpc_routes)):
            for key in [key for key in specs if key not in objects]:
                del specs[key]
        grants = self.snapshot.reference_grants
        same = same_objects(grants, memo.grants)
        previous = memo.compiled if same else {}
        grpc_previous = memo.grpc_compiled if same else {}
        memo.compiled, memo.grpc_compiled, memo.grants = {}, {}, grants
        if not self.by_key:
            return statuses, grpc_statuses
        http = self._read_all(routes, read_route, memo.specs)
        grpc = self._read_all(grpc_routes, read_grpc_route, memo.grpc_specs) if grpc_routes else []
        if grpc and http:
            self._settle([*http, *grpc])
        try:
            self._attach_all(http, memo.compiled, previous, statuses)
            self._attach_all(grpc, memo.grpc_compiled, grpc_previous, grpc_statuses)
        finally:
            for (local, host), found in self._candidates.items():
                plan = self.result.ports[local]
                plan.hosts[host] = plan.hosts.get(host, ()) + tuple(found)
        return statuses, grpc_statuses

    def _read_all(self, routes: Mapping[Key, Any], reader: Callable[[Key, Any], RouteSpec],
                  specs: dict[Key, RouteSpec]) -> list[tuple[RouteSpec, list[ParentRef]]]:
        """Each route naming one of our Gateways (read once per object), with those parentRefs."""
        found = []
        for key in sorted(routes):
            obj = routes[key]
            spec = specs.get(key)
            if spec is None or spec.obj is not obj:
                spec = specs[key] = reader(key, obj)
            refs = [ref for ref in dict.fromkeys(spec.parents)
                    if (ref.group, ref.kind) == (GATEWAY_GROUP, "Gateway") and (ref.namespace, ref.name) in self.by_key]
            if refs:
                self.warnings.extend(spec.warnings)
                found.append((spec, refs))
        return found

    def _settle(self, routes: list[tuple[RouteSpec, list[ParentRef]]]) -> None:
        """HTTPRoutes and GRPCRoutes never share a hostname on a listener: where a route of one kind meets an
        older route of the other kind there (hostnames intersecting), it is not accepted by that listener
        (the oldest, then the first by namespace/name wins, as the GRPCRoute spec says). Fills `lost`."""
        claims: dict[int, list[tuple[str, tuple[str, ...], RouteSpec]]] = {}
        for spec, refs in sorted(routes, key=lambda item: (item[0].age, item[0].key, item[0].kind)):
            if spec.problem:
                continue
            kind = (GATEWAY_GROUP, spec.kind)
            for ref in refs:
                selected, _ = _selected_listeners(self.by_key[(ref.namespace, ref.name)], ref, spec.generation)
                for listener in selected:
                    if not listener.admits(spec.key[0], self.labels, kind):
                        continue
                    hosts = route_hosts(listener.hostname, spec.hostnames)
                    if not hosts:
                        continue
                    held = claims.setdefault(id(listener), [])
                    winner = next((other for other_kind, other_hosts, other in held if other_kind != spec.kind
                                   and any(intersect(a, b) is not None for a in hosts for b in other_hosts)), None)
                    if winner is not None:
                        self.lost[(spec.kind, spec.key, id(listener))] = winner
                    else:
                        held.append((spec.kind, hosts, spec))

    def _attach_all(self, routes: list[tuple[RouteSpec, list[ParentRef]]], compiled_now: dict[Key, CompiledRoute],
                    previous: dict[Key, CompiledRoute], statuses: dict[Key, RouteStatus]) -> None:
        services = self.snapshot.services
        for spec, refs in routes:
            key = spec.key
            compiled = previous.get(key)
            if (compiled is None or compiled.spec is not spec
                    or not all(services.get(name) is found for name, found in compiled.services)):
                compiled = None if spec.problem else compile_route(spec, self.resolver)
            else:
                self.resolver.used.update(compiled.services)
            if compiled is not None:
                compiled_now[key] = compiled
            try:
                statuses[key] = self._attach(spec, refs, compiled)
            except Exception as error:  # noqa: BLE001  (a bug must cost one route, never the whole build)
                self._warn(spec, f"skipped: {type(error).__name__}: {error}")

    def _attach(self, spec: RouteSpec, refs: list[ParentRef], compiled: CompiledRoute | None) -> RouteStatus:
        namespace, name = spec.key
        controller = self.settings.gateway_controller_name
        seen = spec.generation
        if compiled is None:
            message = f"cannot be read: {spec.problem}"
            self._warn(spec, f"not accepted: {message}")
            return RouteStatus(namespace, name, tuple(
                RouteParentStatus(ref, controller, (condition(ACCEPTED, False, "UnsupportedValue", message, seen),))
                for ref in refs))
        for index, reason, message in compiled.dropped:
            self._warn(spec, f"rule {index} dropped ({reason}): {message}")
        ok, reason, message = compiled.resolved
        if not ok:
            self._warn(spec, f"unresolved references ({reason}): {message}")
        resolved = condition(RESOLVED_REFS, ok, reason, message, seen)
        parents = []
        for ref in refs:
            accepted = self._attach_parent(compiled, ref)
            conditions: list[Condition] = [accepted, resolved]
            if accepted.status == "True" and compiled.dropped:
                rules = ", ".join(str(index) for index, _, _ in compiled.dropped)
                why = "; ".join(message for _, _, message in compiled.dropped)
                conditions.append(condition(PARTIALLY_INVALID, True, compiled.dropped[0][1],
                                            f"Dropped Rule(s) {rules}: {why}", seen))
            elif accepted.status != "True":
                self._warn(spec, f"not accepted by Gateway {ref.namespace}/{ref.name} ({accepted.reason}): "
                                 f"{accepted.message}")
            parents.append(RouteParentStatus(ref, controller, tuple(conditions)))
        return RouteStatus(namespace, name, tuple(parents))

    def _attach_parent(self, compiled: CompiledRoute, ref: ParentRef) -> Condition:
        spec = compiled.spec
        seen = spec.generation
        gateway = self.by_key[(ref.namespace, ref.name)]
        selected, unmatched = _selected_listeners(gateway, ref, seen)
        if unmatched is not None:
            return unmatched
        allowed = [listener for listener in selected
                   if listener.admits(spec.key[0], self.labels, (GATEWAY_GROUP, spec.kind))]
        if not allowed:
            return condition(ACCEPTED, False, "NotAllowedByListeners",
                             f"no listener of the Gateway admits {spec.kind}s from namespace {spec.key[0]}", seen)
        matching = [(listener, hosts) for listener in allowed
                    if (hosts := route_hosts(listener.hostname, spec.hostnames))]
        if not matching:
            return condition(ACCEPTED, False, "NoMatchingListenerHostname",
                             "no hostname of the route matches a listener hostname of the Gateway", seen)
        if self.lost:
            kept = [(listener, hosts) for listener, hosts in matching
                    if (spec.kind, spec.key, id(listener)) not in self.lost]
            if not kept:
                winner = self.lost[(spec.kind, spec.key, id(matching[0][0]))]
                return condition(ACCEPTED, False, "NotAllowedByListeners",
                                 f"the listener already serves the older {winner.kind} {winner.key[0]}/"
                                 f"{winner.key[1]} for a hostname of this route (HTTPRoutes and GRPCRoutes do "
                                 "not share hostnames on a listener)", seen)
            matching = kept
        if not compiled.rules:
            _, reason, message = compiled.dropped[0]
            return condition(ACCEPTED, False, reason, f"no rule can be implemented: {message}", seen)
        for listener, hosts in matching:
            self.attached.setdefault(id(listener), set()).add(spec.key)
            if listener.serves and gateway.accepted[0]:
                self._place(compiled, gateway, listener, hosts)
        names = ", ".join(repr(listener.name) for listener, _ in matching)
        return condition(ACCEPTED, True, "Accepted", f"attached to listener(s) {names}", seen)

    def _place(self, compiled: CompiledRoute, gateway: GatewayEntry, listener: Listener,
               hosts: tuple[str, ...]) -> None:
        """Put every rule match on the listener's port under each host key the listener owns, under the
        traffic policies of the route, its Services and the Gateway (listener)."""
        local = listener.local_port
        patterns = self.patterns[local]
        policies = self.policies
        natives = compiled.natives
        under_policy = policies.active or bool(natives)
        for host in hosts:
            if owner(patterns, host) != listener.hostname:
                continue  # a more specific listener on this port takes these requests (listener isolation)
            placed = self._placed.setdefault((local, host), set())
            found = self._candidates.setdefault((local, host), [])
            for identity, candidate in compiled.candidates(host):
                if identity not in placed:  # else: the same route through another listener with this hostname
                    placed.add(identity)
                    if under_policy:
                        route = policies.http_route(candidate.route, gateway=gateway.key, listener=listener.name,
                                                    native=natives.get(identity[2]))
                        if route is not candidate.route:
                            candidate = replace(candidate, route=route)
                    found.append(candidate)

    def _warn(self, spec: RouteSpec, message: str) -> None:
        self.warnings.append(Warning(spec.kind, spec.key[0], spec.key[1], message))

    # ------------------------------------------------------------------ TLSRoutes

    def attach_tls_routes(self) -> dict[Key, RouteStatus]:
        """Attach every TLSRoute naming one of our Gateways; the SNI table of each port goes to the result."""
        statuses: dict[Key, RouteStatus] = {}
        routes = self.snapshot.tls_routes
        if not self.by_key or not routes:
            return statuses
        for key in sorted(routes):
            spec = read_tls_route(key, routes[key])
            refs = [ref for ref in dict.fromkeys(spec.parents)
                    if (ref.group, ref.kind) == (GATEWAY_GROUP, "Gateway") and (ref.namespace, ref.name) in self.by_key]
            if not refs:
                continue
            self.warnings.extend(spec.warnings)
            try:
                statuses[key] = self._attach_tls(spec, refs)
            except Exception as error:  # noqa: BLE001  (a bug must cost one TLSRoute, never the whole build)
                self._warn_tls(spec, f"skipped: {type(error).__name__}: {error}")
        tables: dict[int, tuple[dict[str, Route], dict[str, Route]]] = {}
        served: list[Route] = []
        for (local, host), placed in sorted(self._tls_placed.items()):
            placed.sort(key=lambda item: item[0])
            winner = placed[0][1]
            for _, loser in placed[1:]:
                self.warnings.append(Warning(KIND_TLS_ROUTE, loser.namespace, loser.ingress,
                                             f"hostname {host} on local port {local} is served by the older "
                                             f"TLSRoute {winner.namespace}/{winner.ingress}"))
            hosts, wildcards = tables.setdefault(local, ({}, {}))
            if host.startswith("*."):
                wildcards[host[2:]] = winner
            else:
                hosts[host] = winner
            served.append(winner)
        self.result.tls = {local: SniTable(hosts, wildcards, any_depth=True)
                           for local, (hosts, wildcards) in tables.items()}
        if served:
            self.result.tls_holder = VirtualHost(prefix={str(index): route for index, route in enumerate(served)})
        return statuses

    def _attach_tls(self, spec: TlsRouteSpec, refs: list[ParentRef]) -> RouteStatus:
        namespace, name = spec.key
        controller = self.settings.gateway_controller_name
        seen = spec.generation
        if spec.problem:
            message = f"cannot be read: {spec.problem}"
            self._warn_tls(spec, f"not accepted: {message}")
            return RouteStatus(namespace, name, tuple(
                RouteParentStatus(ref, controller, (condition(ACCEPTED, False, "UnsupportedValue", message, seen),))
                for ref in refs))
        resolve_backends(spec, self.resolver)
        ok, reason, message = spec.resolved
        if not ok:
            self._warn_tls(spec, f"unresolved references ({reason}): {message}")
        resolved = condition(RESOLVED_REFS, ok, reason, message, seen)
        parents = []
        for ref in refs:
            accepted = self._attach_tls_parent(spec, ref)
            if accepted.status != "True":
                self._warn_tls(spec, f"not accepted by Gateway {ref.namespace}/{ref.name} ({accepted.reason}): "
                                     f"{accepted.message}")
            parents.append(RouteParentStatus(ref, controller, (accepted, resolved)))
        return RouteStatus(namespace, name, tuple(parents))

    def _attach_tls_parent(self, spec: TlsRouteSpec, ref: ParentRef) -> Condition:
        seen = spec.generation
        gateway = self.by_key[(ref.namespace, ref.name)]
        selected, unmatched = _selected_listeners(gateway, ref, seen)
        if unmatched is not None:
            return unmatched
        allowed = [listener for listener in selected if listener.admits(spec.key[0], self.labels, TLS_ROUTE)]
        if not allowed:
            return condition(ACCEPTED, False, "NotAllowedByListeners",
                             f"no TLS passthrough listener of the Gateway admits TLSRoutes from namespace "
                             f"{spec.key[0]}", seen)
        matching = [(listener, hosts) for listener in allowed
                    if (hosts := route_hosts(listener.hostname, spec.hostnames))]
        if not matching:
            return condition(ACCEPTED, False, "NoMatchingListenerHostname",
                             "no hostname of the route matches a listener hostname of the Gateway", seen)
        namespace, name = spec.key
        for listener, hosts in matching:
            self.attached.setdefault(id(listener), set()).add(spec.key)
            if not (listener.serves and gateway.accepted[0]):
                continue
            local = listener.local_port
            patterns = self.tls_patterns.get(local, set())
            for host in hosts:
                if not host:
                    self._warn_tls(spec, f"listener {listener.name!r}: neither the listener nor the route names a "
                                         "hostname; a passthrough route needs a server name to match")
                    continue
                if owner(patterns, host) != listener.hostname:
                    continue  # a more specific TLS listener on this port takes these names
                placed = self._tls_placed.setdefault((local, host), [])
                if any(route.namespace == namespace and route.ingress == name for _, route in placed):
                    continue  # the same route through another listener with this hostname
                route = Route(namespace, name, host, "", "", spec.cluster, kind=KIND_TLS_ROUTE,
                              backends=spec.backends, passthrough=True)
                placed.append(((spec.age, spec.key), route))
        names = ", ".join(repr(listener.name) for listener, _ in matching)
        return condition(ACCEPTED, True, "Accepted", f"attached to listener(s) {names}", seen)

    def _warn_tls(self, spec: TlsRouteSpec, message: str) -> None:
        self.warnings.append(Warning(KIND_TLS_ROUTE, spec.key[0], spec.key[1], message))

    # ------------------------------------------------------------------ Gateway status

    def gateway_status(self, gateway: GatewayEntry) -> GatewayStatus:
        seen = gateway.generation
        listeners = tuple(self._listener_status(gateway, listener) for listener in gateway.listeners)
        ok, reason, message = gateway.accepted
        if ok:
            invalid = [listener.name for listener in gateway.listeners if not listener.accepted[0]]
            if not gateway.listeners:
                ok, reason, message = False, "ListenersNotValid", "the Gateway has no listeners"
            elif invalid:
                names = ", ".join(repr(name) for name in invalid)
                ok = len(invalid) < len(gateway.listeners)
                reason, message = "ListenersNotValid", f"listener(s) {names} are not valid"
            else:
                message = "accepted"
        accepted = condition(ACCEPTED, ok, reason, message, seen)
        if not gateway.accepted[0]:
            programmed = condition(PROGRAMMED, False, "Invalid", gateway.accepted[2], seen)
        elif not gateway.programmed[0]:
            programmed = condition(PROGRAMMED, False, gateway.programmed[1], gateway.programmed[2], seen)
        elif any(listener.serves for listener in gateway.listeners):
            programmed = condition(PROGRAMMED, True, "Programmed", "serving", seen)
        else:
            programmed = condition(PROGRAMMED, False, "Invalid", "no listener can serve traffic", seen)
        return GatewayStatus(gateway.key[0], gateway.key[1], (accepted, programmed), listeners)

    def _listener_status(self, gateway: GatewayEntry, listener: Listener) -> ListenerStatus:
        seen = gateway.generation
        ok, reason, message = listener.accepted
        conditions = [condition(ACCEPTED, ok, reason, message or "accepted", seen)]
        if listener.serves and gateway.accepted[0]:
            conditions.append(condition(PROGRAMMED, True, "Programmed", f"served on local port {listener.local_port}",
                                        seen))
        else:
            why = (gateway.accepted[2] if not gateway.accepted[0] else message if not ok
                   else "no usable certificate")
            conditions.append(condition(PROGRAMMED, False, "Invalid", why, seen))
        ok, reason, message = listener.resolved
        conditions.append(condition(RESOLVED_REFS, ok, reason, message or "all references resolved", seen))
        if listener.conflicted is not None:
            conditions.append(condition(CONFLICTED, True, *listener.conflicted, seen))
        else:
            conditions.append(condition(CONFLICTED, False, "NoConflicts", "no conflicts", seen))
        if listener.overlapping:
            conditions.append(condition(OVERLAPPING_TLS_CONFIG, True, "OverlappingHostnames", listener.overlapping,
                                        seen))
        attached = len(self.attached.get(id(listener), ()))
        return ListenerStatus(listener.name, listener.supported_kinds, attached, tuple(conditions))


def _selected_listeners(gateway: GatewayEntry, ref: ParentRef, seen: int) -> tuple[list[Listener], Condition | None]:
    """The Gateway's listeners a parentRef's sectionName and port select (every listener when it names neither);
    when none, the NoMatchingParent condition to report instead."""
    selected = [listener for listener in gateway.listeners
                if (not ref.section_name or listener.name == ref.section_name)
                and (ref.port is None or listener.port == ref.port)]
    if selected:
        return selected, None
    wanted = " and ".join(filter(None, (f"sectionName {ref.section_name!r}" if ref.section_name else "",
                                        f"port {ref.port}" if ref.port is not None else "")))
    return [], condition(ACCEPTED, False, "NoMatchingParent", f"the Gateway has no listener with {wanted}", seen)
