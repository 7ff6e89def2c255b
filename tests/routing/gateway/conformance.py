"""The routing-level runner of the conformance tests (scenario.py): each step's manifests built into a Config,
its status checks on the status the build computed, its cases played through the tables by `harness.send`.

Also the helpers other routing tests use on `Config.gateway_status` (`route_has`, `listener_status`, ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from proxy.debug import describe_gateways
from proxy.routing.gateway.status import Condition, GatewayStatus, ListenerStatus
from proxy.routing.model import Config
from proxy.settings import Settings

from .harness import Outcome, build_config, send
from .objects import INFRA, base_objects, ca_pem
from .scenario import Case, ConformanceTest, Distribution, Step


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


def run(test: ConformanceTest) -> None:
    """Every step of one conformance test, at the routing level."""
    previous: Config | None = None
    for step in test.steps:
        previous = run_step(step, previous)


def run_step(step: Step, previous: Config | None = None) -> Config:
    config = conformance(*step.objects, gateways=step.gateways)
    doc = describe_gateways(config)
    for check in step.status_checks:
        check(doc)
    if step.ports is not None:
        assert sorted(config.listeners) == sorted(port + 8000 for port in step.ports), sorted(config.listeners)
    expect(config, step.cases)
    if step.distribution is not None:
        distribute(config, step.distribution)
    if step.routing is not None:
        step.routing(config, previous)
    return config


def distribute(config: Config, distribution: Distribution) -> None:
    """Draws i/draws for every i: each backend gets exactly its weight's share (weight 0: none)."""
    seen: Counter[str] = Counter()
    for step in range(distribution.draws):
        outcome = send(config, **as_http({**distribution.request, "draw": step / distribution.draws}))
        assert outcome.status == 200, outcome
        if distribution.header:
            assert outcome.request_headers[distribution.header] == outcome.service  # names the pod's backend
        seen[outcome.service] += 1
    wanted = {name: round(weight * distribution.draws) for name, weight in distribution.weights.items() if weight}
    assert seen == wanted, seen


def expect(config: Config, cases: list[Case] | tuple[Case, ...], **defaults: Any) -> None:
    """Table of (request, expected) (see scenario.py): request fields go to `send`; expected fields are
    Outcome attributes (`backend` = the Service, `status` defaults to 200 when a backend is expected)."""
    for request, expected in cases:
        request = {**defaults, **request}
        if "sni" in request:
            _misdirected(config, request, expected)
            continue
        if "grpc" in request:
            expected = _grpc_expected(expected)
        outcome = send(config, **as_http({k: v for k, v in request.items() if k not in ("websocket", "h2c", "h2")}))
        _check(outcome, request, expected)


GRPC_ECHO = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"  # the upstream echo service (suite_grpcroute)
GRPC_UNIMPLEMENTED = 12


def as_http(request: dict[str, Any]) -> dict[str, Any]:
    """`send`'s arguments for a case's request; a gRPC call (`grpc`: the echo service's method, `metadata`) as the
    routing sees it: POST /<service>/<method>, content-type application/grpc, the metadata as header fields."""
    if "grpc" not in request:
        return request
    found = {k: v for k, v in request.items() if k not in ("grpc", "metadata")}
    found.update(path=f"/{GRPC_ECHO}/{request['grpc']}", method="POST",
                 headers={"content-type": "application/grpc", "te": "trailers", **(request.get("metadata") or {})})
    return found


def _grpc_expected(expected: dict[str, Any]) -> dict[str, Any]:
    """A gRPC case's expectation at the routing level: UNIMPLEMENTED is the proxy's answer to a call no rule
    takes (a 404 here); any other failure needs the data plane (`routed_to` says where the call goes)."""
    wanted = dict(expected)
    code = wanted.pop("grpc_status", 0)
    if code == GRPC_UNIMPLEMENTED:
        wanted["status"] = 404
    else:  # another failure is the data plane's (a TLS handshake failing): here, where the call goes
        assert code == 0 or "routed_to" in wanted, f"gRPC status {code} is the data plane's"
    return wanted


def _misdirected(config: Config, request: dict[str, Any], expected: dict[str, Any]) -> None:
    """SNI and Host choosing different hostname patterns of the HTTPS listener: 421 (the data plane's answer
    to a Host served by another listener's certificate); otherwise the request as usual."""
    served = config.listeners[request.get("port", 80) + 8000]
    host = request.get("host", "example.com")
    if served.host_pattern_for(request["sni"]) != served.host_pattern_for(host):
        assert expected.get("status") == 421, (request, expected)
        return
    outcome = send(config, **{k: v for k, v in request.items() if k not in ("sni", "h2")})
    _check(outcome, request, expected)


def _check(outcome: Outcome, request: dict[str, Any], expected: dict[str, Any]) -> None:
    wanted = dict(expected)
    wanted.pop("websocket_echo", None)  # end to end only
    wanted.pop("proto", None)  # end to end only (the protocol the backend was spoken to in)
    wanted.pop("pod", None)
    wanted.pop("backend_sni", None)  # end to end: the SNI the backend saw (here: backend_tls's)
    backend_tls = wanted.pop("backend_tls", None)
    if backend_tls is not None:
        _check_tls(outcome, request, backend_tls)
    routed_to = wanted.pop("routed_to", None)
    if routed_to is not None:  # the client's status is the backend's (too slow: 504); here: it is forwarded
        wanted.pop("status", None)
        wanted["backend"] = routed_to
    status = wanted.pop("status", None)
    backend = wanted.pop("backend", None)
    if status is None and backend:
        status = 200
    if status is not None:
        allowed = status if isinstance(status, tuple) else (status,)
        assert outcome.status in allowed, (request, outcome)
    if backend is not None:
        assert outcome.service == backend, (request, outcome)
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


def _check_tls(outcome: Outcome, request: dict[str, Any], wanted: dict[str, Any]) -> None:
    """The backend's TLS as the upstream dials it: `sni`, `names` (the SANs verified; none: the SNI name), `ca`
    (the ConfigMap whose bundle verifies; "": none resolved, connections fail), or None: plain HTTP."""
    tls = outcome.tls
    assert tls is not None, (request, "no TLS to the backend")
    assert tls.sni == wanted["sni"], (request, tls)
    assert tls.subject_alt_names == tuple(wanted.get("names", ())), (request, tls)
    ca = wanted["ca"]
    assert tls.verify and tls.ca == (ca_pem(ca).encode() if ca else b""), (request, ca, tls.ca[:80])


def routing_tests(tests: list[ConformanceTest]) -> dict[str, Callable[[], None]]:
    """A test function per conformance test, named `test_<upstream name>` (for a test module's globals)."""
    found: dict[str, Callable[[], None]] = {}
    for test in tests:
        def check(test: ConformanceTest = test) -> None:
            run(test)

        check.__name__ = check.__qualname__ = f"test_{test.name}"
        check.__doc__ = f"Upstream conformance test {test.name}, at the routing level."
        if test.xfail:
            check = pytest.mark.xfail(strict=True, reason=test.xfail)(check)
        found[f"test_{test.name}"] = check
    return found
