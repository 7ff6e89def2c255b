"""Helpers shared by the conformance reproductions: the upstream suite's checks, at the routing level.

`GatewayAndHTTPRoutesMustBeAccepted`, `HTTPRouteMustHaveCondition`, `GatewayStatusMustHaveListeners`
and the like become assertions on `Config.gateway_status`; requests go through `harness.send`.
"""

from __future__ import annotations

from typing import Any

from proxy.routing.gateway.status import Condition, GatewayStatus, ListenerStatus, RouteParentStatus
from proxy.routing.model import Config
from proxy.settings import Settings

from .harness import Outcome, build_config, send
from .objects import GROUP, INFRA, base_objects

HTTP_ROUTE_KIND = (GROUP, "HTTPRoute")


def conformance(*objects: dict[str, Any], gateways: tuple[str, ...] | None = None,
                settings: Settings | None = None) -> Config:
    """The base manifests plus a test's own, built for one or more Gateways ("name" in the infra namespace
    or "namespace/name"); all Gateways of the class when None."""
    wanted = tuple(g if "/" in g else f"{INFRA}/{g}" for g in gateways) if gateways is not None else ()
    if settings is not None:
        return build_config([*base_objects(), *objects], settings=settings)
    return build_config([*base_objects(), *objects], gateways=wanted)


def gateway_status(config: Config, name: str, namespace: str = INFRA) -> GatewayStatus:
    assert config.gateway_status is not None
    return config.gateway_status.gateways[(namespace, name)]


def listener_status(config: Config, gateway: str, listener: str, namespace: str = INFRA) -> ListenerStatus:
    found = gateway_status(config, gateway, namespace).listener(listener)
    assert found is not None, listener
    return found


def has(conditions: tuple[Condition, ...], kind: str, status: str, reason: str = "") -> bool:
    """The upstream findConditionInList: a condition of that type and status (and reason, when given)."""
    return any(c.type == kind and c.status == status and (not reason or c.reason == reason) for c in conditions)


def route_parents(config: Config, route: str, namespace: str = INFRA) -> tuple[RouteParentStatus, ...]:
    assert config.gateway_status is not None
    found = config.gateway_status.routes.get((namespace, route))
    return () if found is None else found.parents


def route_has(config: Config, route: str, gateway: str, kind: str, status: str, reason: str = "", *,
              namespace: str = INFRA, gateway_namespace: str = INFRA) -> bool:
    """The upstream HTTPRouteMustHaveCondition: some parent entry for the Gateway has the condition, and
    every entry carries the route's generation."""
    assert config.gateway_status is not None
    status_of = config.gateway_status.routes[(namespace, route)]
    for parent in status_of.parents:
        assert all(c.observed_generation >= 1 for c in parent.conditions)
    return any(has(p.conditions, kind, status, reason) for p in status_of.parents
               if p.parent_ref.name == gateway and p.parent_ref.namespace == gateway_namespace)


def must_be_accepted(config: Config, gateway: str, *routes: str, listeners: tuple[str, ...] = (),
                     namespace: str = INFRA, route_namespace: str | None = None, resolved: bool = True) -> None:
    """GatewayAndHTTPRoutesMustBeAccepted (+ HTTPRouteMustHaveResolvedRefsConditionsTrue when `resolved`):
    each route Accepted by the Gateway (one entry per listener named, else one for the Gateway), and the
    Gateway's listeners (those named, else all) Accepted, ResolvedRefs and Programmed."""
    for route in routes:
        parents = [p for p in route_parents(config, route, route_namespace or namespace)
                   if p.parent_ref.name == gateway and p.parent_ref.namespace == namespace]
        assert parents, f"{route} has no status entry for {gateway}"
        wanted = listeners or ("",)
        for section in wanted:
            entries = [p for p in parents if not section or p.parent_ref.section_name in (section, "")]
            assert any(has(p.conditions, "Accepted", "True", "Accepted") for p in entries), (route, section, parents)
            assert all(p.parent_ref.group == GROUP and p.parent_ref.kind == "Gateway" for p in entries)
        if resolved:
            assert route_has(config, route, gateway, "ResolvedRefs", "True", "ResolvedRefs",
                             namespace=route_namespace or namespace, gateway_namespace=namespace), route
    status = gateway_status(config, gateway, namespace)
    for item in status.listeners:
        if listeners and item.name not in listeners:
            continue
        for kind in ("ResolvedRefs", "Accepted", "Programmed"):
            assert has(item.conditions, kind, "True"), (gateway, item.name, kind, item.conditions)


def expect(config: Config, cases: list[tuple[dict[str, Any], dict[str, Any]]], **defaults: Any) -> None:
    """Table of (request, expected): request fields go to `send`; expected fields are Outcome attributes
    (`backend` = the Service, `status` defaults to 200 when a backend is expected)."""
    for request, expected in cases:
        outcome = send(config, **{**defaults, **request})
        _check(outcome, request, expected)


def _check(outcome: Outcome, request: dict[str, Any], expected: dict[str, Any]) -> None:
    wanted = dict(expected)
    backend = wanted.pop("backend", None)
    if backend is not None:
        wanted.setdefault("status", 200)
        assert (outcome.status, outcome.service) == (wanted["status"], backend), (request, outcome)
    namespace = wanted.pop("namespace", None)
    if namespace is not None:
        assert outcome.namespace == namespace, (request, outcome)
    request_headers = wanted.pop("request_headers", None)
    if request_headers is not None:
        for name, value in request_headers.items():
            assert outcome.request_headers.get(name) == value, (request, name, outcome.request_headers)
    absent = wanted.pop("absent", ())
    for name in absent:
        assert name.lower() not in {k.lower() for k in outcome.request_headers}, (request, name)
    response_headers = wanted.pop("response_headers", None)
    if response_headers is not None:
        got = {k.lower(): v for k, v in outcome.response_headers.items()}
        for name, value in response_headers.items():
            if isinstance(value, tuple):
                assert got.get(name.lower(), "").replace(" ", "") in {v.replace(" ", "") for v in value}, \
                    (request, name, got)
            else:
                assert got.get(name.lower()) == value, (request, name, got)
    absent_response = wanted.pop("absent_response", ())
    for name in absent_response:
        assert name.lower() not in {k.lower() for k in outcome.response_headers}, (request, name, outcome)
    for field, value in wanted.items():
        assert getattr(outcome, field) == value, (request, field, outcome)
