"""The status the upstream conformance tests wait for, as checks on the status as JSON.

The document is what `/debug/gateways` serves (`proxy.debug.describe_gateways`): `gatewayClasses` (name ->
status), `gateways` ("namespace/name" -> status without addresses), `httpRoutes` and `grpcRoutes` ("namespace/name"
-> our `status.parents` entries). The routing level builds it from a Config, file mode reads it from the admin
port, cluster mode assembles it from the objects the status writer wrote to the API server, so one check
says the same thing in all three places.

The checks are the upstream helpers: GatewayAndHTTPRoutesMustBeAccepted (`Accepted`),
HTTPRouteMustHaveCondition (`RouteCondition`), HTTPRouteMustHaveNoAcceptedParents with
GatewayMustHaveZeroRoutes (`NotAttached`), GatewayStatusMustHaveListeners (`Listeners`), ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .objects import GROUP, INFRA

Doc = Mapping[str, Any]
HTTP_ROUTE_KINDS = (("gateway.networking.k8s.io", "HTTPRoute"),)


class StatusCheck(Protocol):
    def __call__(self, doc: Doc) -> None: ...


def has(conditions: list[dict[str, Any]], kind: str, status: str, reason: str = "") -> bool:
    """The upstream findConditionInList: a condition of that type and status (and reason, when given)."""
    return any(c["type"] == kind and c["status"] == status and (not reason or c["reason"] == reason)
               for c in conditions)


def gateway_of(doc: Doc, name: str, namespace: str = INFRA) -> dict[str, Any]:
    found = doc["gateways"].get(f"{namespace}/{name}")
    assert found is not None, f"no status for Gateway {namespace}/{name}"
    return found


def route_parents(doc: Doc, route: str, namespace: str = INFRA, routes: str = "httpRoutes") -> list[dict[str, Any]]:
    """A route's parent entries; `routes`: the document's field of its kind ("grpcRoutes": a GRPCRoute)."""
    return list((doc.get(routes) or {}).get(f"{namespace}/{route}") or ())


def route_has(doc: Doc, route: str, gateway: str, kind: str, status: str, reason: str = "", *,
              namespace: str = INFRA, gateway_namespace: str = INFRA, routes: str = "httpRoutes") -> bool:
    """HTTPRouteMustHaveCondition: some parent entry for the Gateway has the condition, and every entry
    carries the route's generation."""
    parents = route_parents(doc, route, namespace, routes)
    for parent in parents:
        assert all(c["observedGeneration"] >= 1 for c in parent["conditions"]), parent
    return any(has(p["conditions"], kind, status, reason) for p in parents
               if p["parentRef"]["name"] == gateway and p["parentRef"]["namespace"] == gateway_namespace)


@dataclass(frozen=True)
class Accepted:
    """GatewayAndHTTPRoutesMustBeAccepted (+ HTTPRouteMustHaveResolvedRefsConditionsTrue when `resolved`):
    each route Accepted by the Gateway (one entry per listener named, else one for the Gateway), and the
    Gateway's listeners (those named, else all) Accepted, ResolvedRefs and Programmed."""

    gateway: str
    routes: tuple[str, ...]
    listeners: tuple[str, ...] = ()
    namespace: str = INFRA
    route_namespace: str | None = None
    resolved: bool = True
    kind: str = "httpRoutes"  # the document's field of the routes' kind ("grpcRoutes": GRPCRoutes)

    def __call__(self, doc: Doc) -> None:
        route_namespace = self.route_namespace or self.namespace
        for route in self.routes:
            parents = [p for p in route_parents(doc, route, route_namespace, self.kind)
                       if p["parentRef"]["name"] == self.gateway and p["parentRef"]["namespace"] == self.namespace]
            assert parents, f"{route} has no status entry for {self.gateway}"
            for section in self.listeners or ("",):
                entries = [p for p in parents if not section or p["parentRef"].get("sectionName", "") in (section, "")]
                assert any(has(p["conditions"], "Accepted", "True", "Accepted") for p in entries), \
                    (route, section, parents)
                assert all(p["parentRef"]["group"] == GROUP and p["parentRef"]["kind"] == "Gateway" for p in entries)
            if self.resolved:
                assert route_has(doc, route, self.gateway, "ResolvedRefs", "True", "ResolvedRefs",
                                 namespace=route_namespace, gateway_namespace=self.namespace,
                                 routes=self.kind), (route, parents)
        for item in gateway_of(doc, self.gateway, self.namespace)["listeners"]:
            if self.listeners and item["name"] not in self.listeners:
                continue
            for kind in ("ResolvedRefs", "Accepted", "Programmed"):
                assert has(item["conditions"], kind, "True"), (self.gateway, item["name"], kind, item["conditions"])


def accepted(gateway: str, *routes: str, **options: Any) -> Accepted:
    return Accepted(gateway, routes, **options)


@dataclass(frozen=True)
class RouteCondition:
    """HTTPRouteMustHaveCondition: the route's entry for the Gateway has the condition."""

    route: str
    gateway: str
    type: str
    status: str
    reason: str = ""
    namespace: str = INFRA
    gateway_namespace: str = INFRA

    def __call__(self, doc: Doc) -> None:
        assert route_has(doc, self.route, self.gateway, self.type, self.status, self.reason,
                         namespace=self.namespace, gateway_namespace=self.gateway_namespace), \
            (self, route_parents(doc, self.route, self.namespace))


@dataclass(frozen=True)
class NotAttached:
    """HTTPRouteMustHaveCondition(Accepted False, reason), HTTPRouteMustHaveNoAcceptedParents and
    GatewayMustHaveZeroRoutes."""

    route: str
    gateway: str
    reason: str

    def __call__(self, doc: Doc) -> None:
        RouteCondition(self.route, self.gateway, "Accepted", "False", self.reason)(doc)
        parents = route_parents(doc, self.route)
        assert len(parents) == 1 and not any(c["type"] == "Accepted" and c["status"] == "True"
                                             for c in parents[0]["conditions"]), parents
        assert all(item["attachedRoutes"] == 0 for item in gateway_of(doc, self.gateway)["listeners"])


@dataclass(frozen=True)
class ListenerExpectation:
    name: str
    conditions: tuple[tuple[str, str, str], ...] = ()  # (type, status, reason); "" reason: any
    attached: int = 0
    kinds: tuple[tuple[str, str], ...] = HTTP_ROUTE_KINDS


@dataclass(frozen=True)
class Listeners:
    """GatewayStatusMustHaveListeners: the same listeners, each with the supportedKinds, attachedRoutes and
    conditions given."""

    gateway: str
    expected: tuple[ListenerExpectation, ...]

    def __call__(self, doc: Doc) -> None:
        listeners = gateway_of(doc, self.gateway)["listeners"]
        assert len(listeners) == len(self.expected), listeners
        by_name = {item["name"]: item for item in listeners}
        for want in self.expected:
            got = by_name.get(want.name)
            assert got is not None, want.name
            kinds = tuple((k["group"], k["kind"]) for k in got["supportedKinds"])
            # As upstream's listenersMatch: every expected kind listed (more may be: GRPCRoute beside HTTPRoute),
            # and none at all when none is expected.
            assert set(want.kinds) <= set(kinds) and (bool(want.kinds) or not kinds), (want.name, kinds)
            assert got["attachedRoutes"] == want.attached, (want.name, got["attachedRoutes"])
            for kind, state, reason in want.conditions:
                assert has(got["conditions"], kind, state, reason), (want.name, kind, state, reason, got["conditions"])


def listeners(gateway: str, *expected: ListenerExpectation) -> Listeners:
    return Listeners(gateway, expected)


@dataclass(frozen=True)
class AttachedRoutes:
    """attachedRoutes of every listener of the Gateway, in order."""

    gateway: str
    counts: tuple[int, ...]

    def __call__(self, doc: Doc) -> None:
        got = tuple(item["attachedRoutes"] for item in gateway_of(doc, self.gateway)["listeners"])
        assert got == self.counts, (self.gateway, got)


@dataclass(frozen=True)
class GatewayCondition:
    gateway: str
    type: str
    status: str
    reason: str = ""

    def __call__(self, doc: Doc) -> None:
        conditions = gateway_of(doc, self.gateway)["conditions"]
        assert has(conditions, self.type, self.status, self.reason), (self, conditions)


@dataclass(frozen=True)
class Generations:
    """The observedGeneration of every condition of an object (a Gateway, its listeners when `listeners`,
    an HTTPRoute's parent entries, a GatewayClass) is one of `generations`."""

    kind: str
    name: str
    generations: frozenset[int]
    listeners: bool = False

    def __call__(self, doc: Doc) -> None:
        if self.kind == "Gateway":
            status = gateway_of(doc, self.name)
            conditions = [c for item in status["listeners"] for c in item["conditions"]] if self.listeners \
                else status["conditions"]
        elif self.kind == "HTTPRoute":
            conditions = [c for parent in route_parents(doc, self.name) for c in parent["conditions"]]
        else:
            conditions = doc["gatewayClasses"][self.name]["conditions"]
        assert {c["observedGeneration"] for c in conditions} == set(self.generations), (self, conditions)


def generations(kind: str, name: str, *values: int, listeners: bool = False) -> Generations:
    return Generations(kind, name, frozenset(values), listeners)


@dataclass(frozen=True)
class ClassAccepted:
    """GatewayClass Accepted at its generation, with its supportedFeatures sorted and HTTPRoute among them."""

    name: str
    generation: int

    def __call__(self, doc: Doc) -> None:
        status = doc["gatewayClasses"].get(self.name)
        assert status is not None, f"no status for GatewayClass {self.name}"
        assert has(status["conditions"], "Accepted", "True", "Accepted"), status
        assert {c["observedGeneration"] for c in status["conditions"]} == {self.generation}, status
        features = [item["name"] for item in status["supportedFeatures"]]
        assert "HTTPRoute" in features and features == sorted(features), features


def policy_ancestors(doc: Doc, policy: str, namespace: str = INFRA) -> list[dict[str, Any]]:
    return list(doc.get("backendTLSPolicies", {}).get(f"{namespace}/{policy}") or ())


@dataclass(frozen=True)
class PolicyCondition:
    """BackendTLSPolicyMustHaveCondition: every ancestor entry carries the policy's latest generation
    (`generation`), and the entry for the Gateway has the condition ("" reason: any)."""

    policy: str
    gateway: str
    type: str
    status: str
    reason: str = ""
    generation: int = 1
    namespace: str = INFRA

    def __call__(self, doc: Doc) -> None:
        ancestors = policy_ancestors(doc, self.policy, self.namespace)
        for entry in ancestors:
            assert {c["observedGeneration"] for c in entry["conditions"]} == {self.generation}, (self, entry)
        assert any(has(entry["conditions"], self.type, self.status, self.reason) for entry in ancestors
                   if entry["ancestorRef"]["name"] == self.gateway
                   and entry["ancestorRef"].get("namespace", self.namespace) == self.namespace), (self, ancestors)


def policy_accepted(policy: str, gateway: str = "same-namespace", *,
                    generation: int = 1) -> tuple[PolicyCondition, ...]:
    """The policy Accepted (reason Accepted) and ResolvedRefs (reason ResolvedRefs) for the Gateway."""
    return (PolicyCondition(policy, gateway, "Accepted", "True", "Accepted", generation),
            PolicyCondition(policy, gateway, "ResolvedRefs", "True", "ResolvedRefs", generation))
