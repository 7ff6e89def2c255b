"""One HTTPRoute object → its rules, compiled into `Route`s (one per rule and match).

`read_route` judges what one object says (parentRefs, hostnames, matches, filters, timeouts) and is
kept while the snapshot holds the identical object; `compile_route` resolves its backendRefs against
a snapshot's Services and ReferenceGrants and makes the Route of each match, host-less: the
processor stamps each host key it serves onto a copy. A rule that cannot be implemented is dropped
with the reason the spec asks for; the route's other rules keep serving.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from proxy.objects import Key, Warning
from proxy.routing.fields import Malformed, mapping, port_number, require_object, sequence, text
from proxy.routing.filters import RequestRedirect, compose
from proxy.routing.gateway.actions import (
    BackendRef,
    FilterSpec,
    RuleInvalid,
    read_backend_ref,
    read_filters,
    unsupported,
)
from proxy.routing.gateway.backends import BackendResolver
from proxy.routing.gateway.durations import parse_duration
from proxy.routing.gateway.grants import GATEWAY_GROUP
from proxy.routing.gateway.hostnames import check_hostname
from proxy.routing.gateway.meta import age, generation
from proxy.routing.gateway.status import ParentRef
from proxy.routing.matches import Conditions, HeaderMatch, QueryMatch
from proxy.routing.merge import Candidate
from proxy.routing.model import (
    BODY_LIMIT_GLOBAL,
    KIND_HTTP_ROUTE,
    PATH_EXACT,
    PATH_PREFIX,
    PATH_REGEX,
    Backend,
    Backends,
    Route,
    Timeouts,
)
from proxy.routing.paths import normalize_path
from proxy.routing.policy.sessions import read_route_retry, read_session_persistence
from proxy.routing.policy.spec import PolicySpec

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_UNMATCHABLE = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True, slots=True)
class Match:
    """One HTTPRouteMatch: where it goes in the table and what else it requires."""

    path: str  # as written
    path_type: str  # PATH_EXACT, PATH_PREFIX or PATH_REGEX
    slot: str  # table key: normalized Exact path, Prefix without trailing "/", regex source
    pattern: re.Pattern[str] | None
    conditions: Conditions | None
    # A GRPCRoute match's (characters of its service, of its method): its precedence across slots (merge).
    grpc: tuple[int, int] | None = None


@dataclass(slots=True)
class Rule:
    index: int
    name: str
    matches: tuple[Match, ...] = ()
    filters: tuple[FilterSpec, ...] = ()
    backends: tuple[BackendRef, ...] = ()
    timeouts: Timeouts | None = None
    native: PolicySpec | None = None  # its own retry and sessionPersistence
    problem: RuleInvalid | None = None  # set: the rule is dropped


@dataclass(slots=True)
class RouteSpec:
    """What one HTTPRoute object says, judged without any other object."""

    key: Key
    obj: Any
    generation: int
    age: float
    parents: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] | None = None  # None: the route names no hostnames (all of the listener's)
    rules: tuple[Rule, ...] = ()
    problem: str = ""  # the object cannot be read at all
    warnings: list[Warning] = field(default_factory=list)
    # The TRACING_ANNOTATION: spans for its rules' requests or not; None: the process's default.
    tracing: bool | None = None
    kind: str = KIND_HTTP_ROUTE  # or KIND_GRPC_ROUTE (routing.gateway.grpc_routes reads those)

    def warn(self, message: str) -> None:
        self.warnings.append(Warning(self.kind, self.key[0], self.key[1], message))


# Spans for an HTTPRoute's requests: "true" or "false" (unset: --trace-by-default); the Gateway API has no field
# for it, ingress-nginx's Ingress annotation is enable-opentelemetry.
TRACING_ANNOTATION = "pyngress.dev/tracing"


def read_route(key: Key, obj: Any) -> RouteSpec:
    """Judge one HTTPRoute; never raises (a broken object is a RouteSpec with `problem`)."""
    return read_route_object(key, obj, "HTTPRoute", _read_rule)


def read_route_object(key: Key, obj: Any, kind: str,
                      read_rule: Callable[[RouteSpec, Rule, dict[str, Any], str], None]) -> RouteSpec:
    """What every route kind shares (parentRefs, hostnames, tracing, one Rule per `spec.rules` item, a broken rule
    costing only itself); `read_rule` reads one rule of the kind. Never raises."""
    spec = RouteSpec(key, obj, generation(obj), age(obj), kind=kind)
    namespace = key[0]
    read_tracing(spec, obj)
    try:
        body = mapping(require_object(obj, kind), "spec", "")
        spec.parents = tuple(_parent(item, f"spec.parentRefs[{i}]", namespace)
                             for i, item in enumerate(sequence(body, "parentRefs", "spec.")))
        if body.get("hostnames") is not None:
            spec.hostnames = read_hostnames(spec, sequence(body, "hostnames", "spec."))
        items = sequence(body, "rules", "spec.")
    except Malformed as error:
        spec.problem = str(error)
        return spec
    rules = []
    for index, item in enumerate(items or [{}]):
        rule = Rule(index, "")
        where = f"spec.rules[{index}]"
        try:
            read_rule(spec, rule, require_object(item, where), where)
        except RuleInvalid as error:
            rule.problem = error
        except Malformed as error:
            rule.problem = unsupported(str(error))
        except Exception as error:  # noqa: BLE001  (a bug must cost one rule, never the whole build)
            rule.problem = unsupported(f"skipped: {type(error).__name__}: {error}")
        rules.append(rule)
    spec.rules = tuple(rules)
    return spec


def read_tracing(spec: RouteSpec, obj: Any) -> None:
    """The TRACING_ANNOTATION ("true" or "false"; anything else is a warning and leaves the default)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    value = annotations.get(TRACING_ANNOTATION) if isinstance(annotations, dict) else None
    if value is None:
        return
    lowered = value.strip().lower() if isinstance(value, str) else ""
    if lowered in ("true", "false"):
        spec.tracing = lowered == "true"
    else:
        spec.warn(f'annotation {TRACING_ANNOTATION}: {value!r:.60} is not "true" or "false"; the process\'s '
                  "default used")


def _parent(item: Any, where: str, namespace: str) -> ParentRef:
    item = require_object(item, where)
    group = item.get("group")
    kind = item.get("kind")
    if (group is not None and not isinstance(group, str)) or (kind is not None and not isinstance(kind, str)):
        raise Malformed(f"{where}.group and .kind must be strings")
    return ParentRef(name=text(item, "name", f"{where}.", required=True),
                     namespace=text(item, "namespace", f"{where}.") or namespace,
                     group=GATEWAY_GROUP if group is None else group, kind=kind or "Gateway",
                     section_name=text(item, "sectionName", f"{where}."),
                     port=port_number(item, "port", f"{where}."))


def read_hostnames(spec: RouteSpec, items: list[Any]) -> tuple[str, ...]:
    """Valid hostnames; invalid ones are skipped with a warning (and match nothing)."""
    found: dict[str, None] = {}
    for index, item in enumerate(items):
        try:
            found[check_hostname(item, f"spec.hostnames[{index}]")] = None
        except Malformed as error:
            spec.warn(f"{error}; hostname ignored")
    return tuple(found)


def _read_rule(spec: RouteSpec, rule: Rule, item: dict[str, Any], where: str) -> None:
    namespace = spec.key[0]
    rule.name = text(item, "name", f"{where}.")
    matches = sequence(item, "matches", f"{where}.") or [{}]
    rule.matches = tuple(_match(require_object(m, f"{where}.matches[{i}]"), f"{where}.matches[{i}]")
                         for i, m in enumerate(matches))
    rule.filters = read_filters(sequence(item, "filters", f"{where}."), f"{where}.filters", namespace)
    backends = []
    for index, ref in enumerate(sequence(item, "backendRefs", f"{where}.")):
        at = f"{where}.backendRefs[{index}]"
        ref = require_object(ref, at)
        read = read_backend_ref(ref, at, namespace)
        filters = read_filters(sequence(ref, "filters", f"{at}."), f"{at}.filters", namespace)
        backends.append(replace(read, filters=filters) if filters else read)
    rule.backends = tuple(backends)
    uses_prefix = any(f.prefix_match for f in rule.filters) or any(
        f.prefix_match for ref in rule.backends for f in ref.filters)
    if uses_prefix and any(m.path_type != PATH_PREFIX for m in rule.matches):
        raise unsupported(f"{where}: ReplacePrefixMatch needs PathPrefix matches")
    rule.timeouts = _timeouts(mapping(item, "timeouts", f"{where}."), f"{where}.timeouts.")
    rule.native = read_native(spec, item, where)


def read_native(spec: RouteSpec, item: dict[str, Any], where: str) -> PolicySpec | None:
    """The rule's own `retry` and `sessionPersistence`: the most specific policy layer of its routes.
    One that cannot be served is ignored with a warning; the rule keeps serving."""
    found: dict[str, Any] = {}
    for name, key, reader in (("retry", "retry", read_route_retry),
                              ("sessionPersistence", "affinity", read_session_persistence)):
        body = item.get(name)
        if body is None:
            continue
        at = f"{where}.{name}"
        try:
            found[key] = reader(require_object(body, at), f"{at}.", spec.warn)
        except Malformed as error:
            spec.warn(f"{error}; {at} ignored")
    return PolicySpec(**found) if found else None


def _timeouts(body: dict[str, Any], where: str) -> Timeouts | None:
    if not body:
        return None
    request = parse_duration(body["request"], f"{where}request") if body.get("request") is not None else None
    backend = (parse_duration(body["backendRequest"], f"{where}backendRequest")
               if body.get("backendRequest") is not None else None)
    if request and backend and backend > request:
        raise unsupported(f"{where}backendRequest must not be longer than request")
    if request is None and backend is None:
        return None
    return Timeouts(request=request, backend_request=backend)


def _match(item: dict[str, Any], where: str) -> Match:
    path = mapping(item, "path", f"{where}.")
    kind = text(path, "type", f"{where}.path.") or "PathPrefix"
    value = path.get("value", "/")
    if not isinstance(value, str):
        raise unsupported(f"{where}.path.value must be a string")
    pattern = None
    if kind == "RegularExpression":
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise unsupported(f"{where}.path.value {value!r:.80} is not a valid regular expression: {error}") from None
        path_type, slot = PATH_REGEX, value
    elif kind in ("Exact", "PathPrefix"):
        normalized = normalize_path(value) if value.startswith("/") and not _UNMATCHABLE.search(value) else None
        if normalized is None:
            raise unsupported(f"{where}.path.value {value!r:.80} is not a valid path")
        path_type = PATH_EXACT if kind == "Exact" else PATH_PREFIX
        slot = normalized if kind == "Exact" else normalized.rstrip("/")
    else:
        raise unsupported(f"{where}.path.type {kind!r:.40} is not Exact, PathPrefix or RegularExpression")
    return Match(value, path_type, slot, pattern, _conditions(item, where))


def _conditions(item: dict[str, Any], where: str) -> Conditions | None:
    method = item.get("method")
    if method is not None and (not isinstance(method, str) or method not in _METHODS):
        raise unsupported(f"{where}.method {method!r:.20} is not supported")
    headers: dict[bytes, HeaderMatch] = {}
    for index, header in enumerate(sequence(item, "headers", f"{where}.")):
        at = f"{where}.headers[{index}]."
        name, value, pattern = value_match(require_object(header, at[:-1]), at)
        key = name.lower().encode()
        if key not in headers:  # only the first of equivalent names counts
            compiled = re.compile(value.encode("latin-1")) if pattern else None
            headers[key] = HeaderMatch(key, value.encode("latin-1"), compiled)
    query: dict[str, QueryMatch] = {}
    for index, param in enumerate(sequence(item, "queryParams", f"{where}.")):
        at = f"{where}.queryParams[{index}]."
        name, value, pattern = value_match(require_object(param, at[:-1]), at)
        if name not in query:
            query[name] = QueryMatch(name, value, re.compile(value) if pattern else None)
    if method is None and not headers and not query:
        return None
    return Conditions(method=method.encode() if method else None, headers=tuple(headers.values()),
                      query=tuple(query.values()))


def value_match(item: dict[str, Any], at: str) -> tuple[str, str, bool]:
    """(name, value, is a regular expression) of a header or query parameter match."""
    kind = text(item, "type", at) or "Exact"
    if kind not in ("Exact", "RegularExpression"):
        raise unsupported(f"{at}type {kind!r:.40} is not Exact or RegularExpression")
    name = text(item, "name", at, required=True)
    if not _TOKEN.fullmatch(name):
        raise unsupported(f"{at}name {name!r:.40} is not a valid name")
    value = item.get("value")
    if not isinstance(value, str):
        raise unsupported(f"{at}value must be a string")
    if kind == "RegularExpression":
        try:
            re.compile(value)
        except re.error as error:
            raise unsupported(f"{at}value {value!r:.80} is not a valid regular expression: {error}") from None
    return name, value, kind == "RegularExpression"


# ---------------------------------------------------------------------- compiling

@dataclass(slots=True)
class CompiledRule:
    rule: Rule
    routes: tuple[tuple[Match, Route], ...]  # host-less Routes, one per match


@dataclass(slots=True)
class CompiledRoute:
    """A route's served rules, its ResolvedRefs verdict and its dropped rules."""

    spec: RouteSpec
    rules: tuple[CompiledRule, ...]
    resolved: tuple[bool, str, str]  # (ok, reason, message)
    dropped: tuple[tuple[int, str, str], ...]  # (rule index, reason, message)
    # The Services its backendRefs named and the objects they were then (None: missing).
    services: tuple[tuple[Key, Any], ...] = ()
    # Rule index -> the rule's own retry / sessionPersistence (only rules that have them).
    natives: dict[int, PolicySpec] = field(default_factory=dict)
    _by_host: dict[str, tuple[tuple[tuple[str, str, int, int], Candidate], ...]] = field(default_factory=dict)

    def candidates(self, host: str) -> tuple[tuple[tuple[str, str, int, int], Candidate], ...]:
        """(identity, Candidate) of every rule match for one host key, made once per host."""
        found = self._by_host.get(host)
        if found is None:
            spec = self.spec
            namespace, name = spec.key
            made = []
            for rule in self.rules:
                index = rule.rule.index
                for number, (match, route) in enumerate(rule.routes):
                    conditions = match.conditions
                    specific = conditions.specificity if conditions is not None else (False, 0, 0)
                    order = (-int(specific[0]), -specific[1], -specific[2], spec.age, namespace, name, index)
                    made.append(((namespace, name, index, number),
                                 Candidate(replace(route, host=host), order, match.slot, match.pattern,
                                           match.grpc)))
            found = self._by_host[host] = tuple(made)
        return found


def compile_route(spec: RouteSpec, resolver: BackendResolver) -> CompiledRoute:
    """Resolve backendRefs and build each valid rule's Routes (host "")."""
    reads: dict[Key, Any] = {}
    resolver.reads = reads
    try:
        return _compile(spec, resolver, reads)
    finally:
        resolver.reads = None


def _compile(spec: RouteSpec, resolver: BackendResolver, reads: dict[Key, Any]) -> CompiledRoute:
    namespace, name = spec.key
    problems: list[tuple[str, str]] = []
    dropped = []
    compiled = []

    def resolve(ref: BackendRef) -> str:
        found = resolver.resolve(ref, route_namespace=namespace, from_kind=spec.kind)
        if not found.cluster:
            problems.append((found.reason, found.message))
        return found.cluster

    for rule in spec.rules:
        if rule.problem is not None:
            dropped.append((rule.index, rule.problem.reason, str(rule.problem)))
            continue
        unresolved = [f.unresolved for f in rule.filters if f.unresolved]
        unresolved += [f.unresolved for ref in rule.backends for f in ref.filters if f.unresolved]
        problems.extend(("InvalidKind", message) for message in unresolved)
        clusters = [resolve(ref) for ref in rule.backends]
        routes = []
        for match in rule.matches:
            matched = match.slot if match.path_type == PATH_PREFIX else None
            filters = compose(f for f in (spec_.compile(matched, resolve) for spec_ in rule.filters) if f is not None)
            redirect = filters is not None and any(type(f) is RequestRedirect for f in filters.request)
            cluster, backends = "", None
            if unresolved:
                filters, backends = None, Backends(())
            elif rule.backends:
                cluster, backends = _backends(rule, clusters, matched, resolve)
            elif not redirect:
                backends = Backends(())
            routes.append((match, Route(namespace, name, "", match.path, match.path_type, cluster,
                                        kind=spec.kind, rule=rule.index, rule_name=rule.name,
                                        conditions=match.conditions, backends=backends, filters=filters,
                                        timeouts=rule.timeouts, tracing=spec.tracing,
                                        body_limit=BODY_LIMIT_GLOBAL)))
        compiled.append(CompiledRule(rule, tuple(routes)))
    if problems:
        resolved = (False, problems[0][0], "; ".join(dict.fromkeys(message for _, message in problems)))
    else:
        resolved = (True, "ResolvedRefs", "all references resolved")
    natives = {rule.index: rule.native for rule in spec.rules if rule.native is not None}
    return CompiledRoute(spec, tuple(compiled), resolved, tuple(dropped), tuple(reads.items()), natives)


def _backends(rule: Rule, clusters: list[str], matched: str | None, resolve: Any) -> tuple[str, Backends | None]:
    """(cluster, None) for the fast path: one servable backend of non-zero weight and no filters;
    ("", Backends) otherwise, unservable references keeping their weight (their share gets 500)."""
    weighted = [(ref, cluster) for ref, cluster in zip(rule.backends, clusters) if ref.weight > 0]
    if len(weighted) == 1 and weighted[0][1] and not weighted[0][0].filters:
        return weighted[0][1], None
    made = []
    for ref, cluster in zip(rule.backends, clusters):
        filters = compose(f for f in (spec.compile(matched, resolve) for spec in ref.filters) if f is not None)
        made.append(Backend(cluster, ref.weight, ref.namespace, ref.name, filters))
    return "", Backends(tuple(made))
