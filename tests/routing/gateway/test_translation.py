"""The Gateway front end beyond the conformance suite: sharing ports with Ingress, precedence, bad input,
port claims, the pieces (hostnames, durations, selectors, CORS) and the status as the writer reads it."""

from __future__ import annotations

from collections import Counter

import pytest

from proxy.routing.build import build
from proxy.routing.fields import Malformed
from proxy.routing.filters import Cors, compose
from proxy.routing.gateway.durations import parse_duration
from proxy.routing.gateway.hostnames import intersect, owner, route_hosts
from proxy.routing.gateway.selectors import parse_selector
from proxy.routing.model import ListenerConfig, host_pattern_for
from proxy.routing.table import RouteTable
from proxy.settings import Settings

from ..objects import ingress
from ..objects import path as ingress_path
from ..objects import rule as ingress_rule
from .conformance import gateway_status, has, listener_status, route_has
from .harness import FakeRequest, FakeResponse, build_config, send
from .objects import (
    INFRA,
    backend,
    base_objects,
    certificate_ref,
    endpoint_slice,
    gateway,
    gateway_class,
    header_filter,
    http_route,
    listener,
    match,
    parent,
    redirect,
    rewrite,
    rule,
    service,
    snapshot,
    tls_secret,
)

V1, V2, V3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"
GW = parent("edge")


def _edge(*listeners: dict, **fields) -> dict:
    return gateway("edge", *(listeners or (listener("http", 80, namespaces="All"),)), **fields)


def _build(*objects: dict, settings: Settings | None = None):
    return build_config([*base_objects(), *objects], settings=settings or Settings(gateways=(f"{INFRA}/edge",)))


def _ingress(name: str, host: str, *paths: dict, created: str = "2020-01-01T00:00:00Z") -> dict:
    return ingress(name, ingress_rule(host, *paths), namespace=INFRA, created=created)


# ---------------------------------------------------------------------- Ingress stays as it was


def test_without_a_gateway_of_ours_nothing_changes_for_ingress():
    ingresses = [_ingress("web", "a.test", ingress_path("/", V1, 8080)), *base_objects()[8:]]
    foreign = [
        gateway_class("other", controller="example.com/other"),
        gateway("theirs", listener("http", 80), class_name="other"),
        http_route("theirs", rule(backends=[backend(V1)]), parents=[parent("theirs")]),
    ]
    plain = build(snapshot(*ingresses), Settings())
    mixed = build(snapshot(*ingresses, *foreign), Settings())
    assert mixed.listeners == {} and mixed.gateway_status is None
    assert mixed.checksum == plain.checksum
    assert mixed.warnings == plain.warnings
    assert mixed.table.match("a.test", "/").ingress == "web"


def test_gateway_routes_compete_with_ingress_paths_on_the_ingress_port():
    config = _build(
        _edge(),
        _ingress("old", "a.test", ingress_path("/api", V1, 8080), ingress_path("/web", V1, 8080)),
        http_route(
            "canary",
            rule(match("/api", headers=[("x-canary", "yes")]), backends=[backend(V2)]),
            rule(match("/web"), backends=[backend(V2)]),
            rule(match("/new"), backends=[backend(V3)]),
            parents=[GW],
            hostnames=["a.test"],
            created="2024-01-01T00:00:00Z",
        ),
    )
    served = config.listeners[8080]
    assert served.ingress and served.port == 80
    cases = [
        ({"path": "/api"}, V1),
        ({"path": "/api", "headers": {"X-Canary": "yes"}}, V2),
        ({"path": "/web"}, V1),  # same slot, no conditions: the older object (the Ingress) wins
        ({"path": "/new"}, V3),
    ]
    for request, service_name in cases:
        assert send(config, host="a.test", **request).service == service_name, request
    # The Ingress table itself knows nothing of HTTPRoutes, and other Ingress hosts are the very same objects.
    assert config.table.match("a.test", "/new") is None
    assert {r.kind for r in config.table.routes()} == {"Ingress"}


def test_gateway_wildcards_match_any_depth_ingress_wildcards_one_label():
    config = _build(
        _edge(),
        _ingress("wild", "*.c.test", ingress_path("/i", V1, 8080)),
        http_route("wild", rule(match("/g"), backends=[backend(V2)]), parents=[GW], hostnames=["*.c.test"]),
    )
    assert send(config, "/i", host="x.c.test").service == V1
    assert send(config, "/g", host="x.c.test").service == V2  # one label: Ingress and Gateway routes together
    assert send(config, "/g", host="a.b.c.test").service == V2  # deeper: the Gateway wildcard only
    assert send(config, "/i", host="a.b.c.test").status == 404


def test_a_listener_on_another_port_holds_gateway_routes_only():
    config = _build(
        _edge(listener("http", 9000, namespaces="All")),
        _ingress("web", "a.test", ingress_path("/", V1, 8080)),
        http_route("r", rule(backends=[backend(V2)]), parents=[GW]),
    )
    served = config.listeners[17000]
    assert (served.port, served.ingress) == (9000, False)
    assert send(config, host="a.test", port=9000).service == V2
    assert config.table_for(8080) is config.table and config.table_for(17000) is served.table


# ---------------------------------------------------------------------- precedence across routes


def test_precedence_across_routes_oldest_then_namespace_and_name_then_rule_order():
    def route(name: str, created: str, service_name: str) -> dict:
        return http_route(
            name,
            rule(match("/p"), backends=[backend(service_name)]),
            rule(match("/p"), backends=[backend(V3)]),
            parents=[GW],
            created=created,
        )

    older = route("zzz", "2020-01-01T00:00:00Z", V1)
    younger = route("aaa", "2021-01-01T00:00:00Z", V2)
    config = _build(_edge(), older, younger)
    assert send(config, "/p").route.ingress == "zzz" and send(config, "/p").route.rule == 0
    tie = route("aaa", "2020-01-01T00:00:00Z", V2)
    config = _build(_edge(), older, tie)
    assert send(config, "/p").route.ingress == "aaa"  # same age: namespace/name order


def test_method_then_headers_then_query_decide_within_a_slot():
    config = _build(
        _edge(),
        http_route(
            "r",
            rule(match("/", query=[("a", "1"), ("b", "2")]), backends=[backend(V1)]),
            rule(match("/", headers=[("h", "1")]), backends=[backend(V2)]),
            rule(match("/", method="GET"), backends=[backend(V3)]),
            parents=[GW],
        ),
    )
    assert send(config, "/?a=1&b=2", headers={"H": "1"}, method="GET").service == V3
    assert send(config, "/?a=1&b=2", headers={"H": "1"}, method="PUT").service == V2
    assert send(config, "/?a=1&b=2", method="PUT").service == V1
    assert send(config, "/", method="PUT").status == 404


def test_regular_expression_paths_match_the_whole_path():
    config = _build(
        _edge(),
        http_route("r", rule(match(r"/v[0-9]+/items", type="RegularExpression"), backends=[backend(V1)]), parents=[GW]),
    )
    assert send(config, "/v2/items").service == V1
    assert send(config, "/v2/items/x").status == 404
    assert send(config, "/v2/items").route.path_type == "RegularExpression"


# ---------------------------------------------------------------------- rules and backends


def test_fast_path_single_backend_and_weighted_backends():
    config = _build(
        _edge(),
        http_route(
            "r",
            rule(match("/one"), backends=[backend(V1), backend(V2, weight=0)]),
            rule(match("/filtered"), backends=[backend(V1, filters=[header_filter(set={"x": "1"})])]),
            rule(match("/half"), backends=[backend(V1), backend("missing")]),
            parents=[GW],
        ),
    )
    one = send(config, "/one").route
    assert (one.cluster, one.backends) == (f"{INFRA}/{V1}:8080", None)
    filtered = send(config, "/filtered").route
    assert filtered.cluster == "" and filtered.backends is not None
    assert send(config, "/filtered").request_headers["X"] == "1"
    outcomes = Counter(send(config, "/half", draw=step / 10).status for step in range(10))
    assert outcomes == {200: 5, 500: 5}  # the missing Service's share gets 500
    assert route_has(config, "r", "edge", "ResolvedRefs", "False", "BackendNotFound")


def test_a_backend_port_the_service_lacks_is_not_found():
    config = _build(_edge(), http_route("r", rule(backends=[backend(V2, 9999)]), parents=[GW]))
    assert route_has(config, "r", "edge", "ResolvedRefs", "False", "BackendNotFound")
    assert send(config).status == 500


def test_extension_ref_filters_answer_500_and_say_why():
    config = _build(
        _edge(),
        http_route(
            "r",
            rule(
                match("/ext"),
                filters=[{"type": "ExtensionRef", "extensionRef": {"group": "x.io", "kind": "Auth", "name": "a"}}],
                backends=[backend(V1)],
            ),
            rule(match("/ok"), backends=[backend(V1)]),
            parents=[GW],
        ),
    )
    assert send(config, "/ext").status == 500
    assert send(config, "/ok").status == 200
    assert route_has(config, "r", "edge", "ResolvedRefs", "False", "InvalidKind")
    assert route_has(config, "r", "edge", "Accepted", "True", "Accepted")


@pytest.mark.parametrize(
    "bad,reason",
    [
        (rule(match("/x(", type="RegularExpression"), backends=[backend(V1)]), "UnsupportedValue"),
        (rule(match("/x"), filters=[{"type": "Teleport"}], backends=[backend(V1)]), "UnsupportedValue"),
        (rule(match("/x"), filters=[redirect(hostname="a.test"), rewrite(hostname="b.test")]), "IncompatibleFilters"),
        (
            rule(
                match("/x", type="Exact"), filters=[rewrite(path=("ReplacePrefixMatch", "/y"))], backends=[backend(V1)]
            ),
            "UnsupportedValue",
        ),
        (rule(match("/x", method="BREW"), backends=[backend(V1)]), "UnsupportedValue"),
        (rule(match("/x"), filters=[redirect(status=418)]), "UnsupportedValue"),
        (
            rule(match("/x"), backends=[backend(V1)], timeouts={"request": "1s", "backendRequest": "2s"}),
            "UnsupportedValue",
        ),
        (rule(match("/x"), backends=[backend(V1)], timeouts={"request": "soon"}), "UnsupportedValue"),
        (rule(match("x"), backends=[backend(V1)]), "UnsupportedValue"),
    ],
)
def test_invalid_rules_are_dropped_with_the_spec_reason(bad, reason):
    good = rule(match("/good"), backends=[backend(V1)])
    config = _build(_edge(), http_route("mixed", good, bad, parents=[GW]), http_route("bad", bad, parents=[GW]))
    assert route_has(config, "mixed", "edge", "Accepted", "True", "Accepted")
    parent_status = config.gateway_status.routes[(INFRA, "mixed")].parents[0]
    partial = parent_status.condition("PartiallyInvalid")
    assert partial is not None and partial.status == "True" and partial.message.startswith("Dropped Rule")
    assert route_has(config, "bad", "edge", "Accepted", "False", reason)
    assert send(config, "/good").service == V1 and send(config, "/x").status == 404
    assert [w for w in config.warnings if w.kind == "HTTPRoute" and w.name == "bad"]
    assert listener_status(config, "edge", "http").attached_routes == 1  # "bad" is not Accepted


def test_unreadable_objects_of_ours_become_warnings_and_status():
    config = _build(
        _edge(),
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "junk", "namespace": INFRA, "generation": 3},
            "spec": {"parentRefs": [{"name": "edge"}], "rules": "everything"},
        },
        gateway("broken", {"name": "http", "port": "eighty", "protocol": "HTTP"}),
        settings=Settings(gateways=(f"{INFRA}/edge", f"{INFRA}/broken")),
    )
    assert route_has(config, "junk", "edge", "Accepted", "False", "UnsupportedValue")
    status = gateway_status(config, "broken")
    assert has(status.conditions, "Accepted", "False", "ListenersNotValid")
    assert {(w.kind, w.name) for w in config.warnings} >= {("HTTPRoute", "junk"), ("Gateway", "broken")}


# ---------------------------------------------------------------------- listeners and ports


def test_conflicted_listeners_are_all_refused():
    config = _build(
        _edge(
            listener("a", 80, hostname="x.test", namespaces="All"),
            listener("b", 80, hostname="x.test", namespaces="All"),
            listener("c", 9000, namespaces="All"),
            listener("d", 9000, "HTTPS", certificates=[certificate_ref("tls-validity-checks-certificate")]),
            listener("e", 80, hostname="y.test", namespaces="All"),
        )
    )
    for name, reason in (
        ("a", "HostnameConflict"),
        ("b", "HostnameConflict"),
        ("c", "ProtocolConflict"),
        ("d", "ProtocolConflict"),
    ):
        item = listener_status(config, "edge", name)
        assert has(item.conditions, "Conflicted", "True", reason) and has(item.conditions, "Accepted", "False")
    assert has(listener_status(config, "edge", "e").conditions, "Conflicted", "False", "NoConflicts")
    assert has(gateway_status(config, "edge").conditions, "Accepted", "True", "ListenersNotValid")
    assert list(config.listeners) == [8080]


def test_port_claims_ingress_ports_and_older_gateways_win():
    config = _build(
        gateway(
            "edge",
            listener("tls-on-80", 80, "HTTPS", certificates=[certificate_ref("tls-validity-checks-certificate")]),
            listener("big", 60000, namespaces="All"),
            created="2021-01-01T00:00:00Z",
        ),
        gateway("older", listener("h", 9000, namespaces="All"), created="2020-01-01T00:00:00Z"),
        gateway(
            "younger",
            listener("s", 9000, "HTTPS", certificates=[certificate_ref("tls-validity-checks-certificate")]),
            created="2022-01-01T00:00:00Z",
        ),
        settings=Settings(gateways=(f"{INFRA}/edge", f"{INFRA}/older", f"{INFRA}/younger")),
    )
    assert has(listener_status(config, "edge", "tls-on-80").conditions, "Accepted", "False", "PortUnavailable")
    assert has(listener_status(config, "edge", "big").conditions, "Accepted", "False", "PortUnavailable")
    assert has(listener_status(config, "older", "h").conditions, "Accepted", "True")
    assert has(listener_status(config, "younger", "s").conditions, "Accepted", "False", "PortUnavailable")
    assert sorted(config.listeners) == [17000]


def test_https_listeners_carry_their_certificates_for_sni():
    config = _build(
        tls_secret("a-cert"),
        tls_secret("w-cert"),
        _edge(
            listener("a", 443, "HTTPS", hostname="a.test", namespaces="All", certificates=[certificate_ref("a-cert")]),
            listener(
                "w", 443, "HTTPS", hostname="*.w.test", namespaces="All", certificates=[certificate_ref("w-cert")]
            ),
            listener(
                "any",
                443,
                "HTTPS",
                namespaces="All",
                certificates=[certificate_ref("missing"), certificate_ref("tls-validity-checks-certificate")],
            ),
        ),
    )
    served = config.listeners[8443]
    assert dict(served.certificates) == {
        "": (INFRA, "tls-validity-checks-certificate"),
        "*.w.test": (INFRA, "w-cert"),
        "a.test": (INFRA, "a-cert"),
    }
    assert (
        served.host_pattern_for("a.test"),
        served.host_pattern_for("b.c.w.test"),
        served.host_pattern_for("other.test"),
    ) == ("a.test", "*.w.test", "")
    # One missing certificate of two: ResolvedRefs says so, the listener serves with the other.
    item = listener_status(config, "edge", "any")
    assert has(item.conditions, "ResolvedRefs", "False", "InvalidCertificateRef")
    assert has(item.conditions, "Programmed", "True")
    assert has(listener_status(config, "edge", "a").conditions, "OverlappingTLSConfig", "True") is False


def test_host_pattern_for():
    patterns = ("x.test", "*.test", "*.b.test")
    assert host_pattern_for(patterns, "x.test") == "x.test"
    assert host_pattern_for(patterns, "a.b.test") == "*.b.test"
    assert host_pattern_for(patterns, "a.c.test") == "*.test"
    assert host_pattern_for(patterns, "test") is None
    assert host_pattern_for(("", "a.test"), "b.test") == ""
    assert ListenerConfig(443, "HTTPS", RouteTable()).host_pattern_for("a") is None


def test_namespace_selectors_and_allowed_kinds():
    objects = [
        service("s", namespace="team"),
        endpoint_slice("s", "10.9.0.1", namespace="team"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"tier": "web"}}},
        _edge(
            listener(
                "sel",
                80,
                namespaces="Selector",
                selector={"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]},
            ),
            listener("none", 9000, namespaces="None"),
        ),
        http_route("r", rule(backends=[backend("s")]), parents=[parent("edge", INFRA)], namespace="team"),
    ]
    config = _build(*objects)
    assert route_has(config, "r", "edge", "Accepted", "True", namespace="team")
    assert listener_status(config, "edge", "sel").attached_routes == 1
    assert listener_status(config, "edge", "none").attached_routes == 0
    assert send(config).service == "s" and send(config, port=9000).status == 404


# ---------------------------------------------------------------------- classes, status, pieces


def test_gateway_classes_with_parameters_are_not_accepted_nor_their_gateways_served():
    config = build_config(
        [
            gateway_class("pyngress", parametersRef={"group": "x.io", "kind": "P", "name": "p"}),
            gateway("edge", listener("http", 80)),
        ],
        gateways=(),
    )
    status = config.gateway_status
    assert has(status.classes["pyngress"].conditions, "Accepted", "False", "InvalidParameters")
    assert has(status.gateways[(INFRA, "edge")].conditions, "Accepted", "False", "Invalid")
    assert config.listeners == {}


def test_status_as_the_writer_publishes_it():
    config = _build(
        _edge(), http_route("r", rule(backends=[backend(V1)]), parents=[parent("edge", section="http")], generation=4)
    )
    route = config.gateway_status.routes[(INFRA, "r")].to_json()
    assert route == [
        {
            "parentRef": {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "namespace": INFRA,
                "name": "edge",
                "sectionName": "http",
            },
            "controllerName": "pyngress.dev/gateway-controller",
            "conditions": [
                {
                    "type": "Accepted",
                    "status": "True",
                    "reason": "Accepted",
                    "message": "attached to listener(s) 'http'",
                    "observedGeneration": 4,
                },
                {
                    "type": "ResolvedRefs",
                    "status": "True",
                    "reason": "ResolvedRefs",
                    "message": "all references resolved",
                    "observedGeneration": 4,
                },
            ],
        }
    ]
    gw = config.gateway_status.gateways[(INFRA, "edge")].to_json()
    assert gw["listeners"][0]["attachedRoutes"] == 1
    assert gw["listeners"][0]["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
                                                    {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}]
    assert [c["type"] for c in gw["conditions"]] == ["Accepted", "Programmed"]
    features = config.gateway_status.classes["pyngress"].to_json()["supportedFeatures"]
    assert {"name": "HTTPRoute"} in features


@pytest.mark.parametrize(
    "listener_host,route_host,meet",
    [
        ("", "a.test", "a.test"),
        ("a.test", "", "a.test"),
        ("a.test", "a.test", "a.test"),
        ("a.test", "b.test", None),
        ("*.test", "a.b.test", "a.b.test"),
        ("*.test", "test", None),
        ("a.b.test", "*.test", "a.b.test"),
        ("*.test", "*.b.test", "*.b.test"),
        ("*.b.test", "*.test", "*.b.test"),
        ("*.a.test", "*.b.test", None),
    ],
)
def test_hostname_intersection(listener_host, route_host, meet):
    assert intersect(listener_host, route_host) == meet


def test_route_hosts_and_listener_isolation_owner():
    assert route_hosts("*.test", None) == ("*.test",)
    assert route_hosts("*.test", ("a.test", "other.example", "a.test")) == ("a.test",)
    patterns = {"", "*.example.com", "*.foo.example.com", "abc.foo.example.com"}
    assert owner(patterns, "bar.com") == ""
    assert owner(patterns, "*.example.com") == "*.example.com"
    assert owner(patterns, "x.foo.example.com") == "*.foo.example.com"
    assert owner(patterns, "*.bar.foo.example.com") == "*.foo.example.com"
    assert owner(patterns, "abc.foo.example.com") == "abc.foo.example.com"


@pytest.mark.parametrize(
    "text,seconds", [("1h", 3600.0), ("500ms", 0.5), ("1h2m3s4ms", 3723.004), ("0s", 0.0), ("10m", 600.0)]
)
def test_durations(text, seconds):
    assert parse_duration(text, "t") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "1d", "1.5s", "123456s", "1h1h1h1h1h", "-1s", 10])
def test_bad_durations(text):
    with pytest.raises(Malformed):
        parse_duration(text, "t")


def test_label_selectors():
    selector = parse_selector(
        {
            "matchLabels": {"a": "1"},
            "matchExpressions": [
                {"key": "b", "operator": "NotIn", "values": ["x"]},
                {"key": "c", "operator": "DoesNotExist"},
            ],
        },
        "s",
    )
    assert selector.matches({"a": "1"}) and selector.matches({"a": "1", "b": "y"})
    assert not selector.matches({"a": "1", "b": "x"}) and not selector.matches({"a": "1", "c": ""})
    assert parse_selector({}, "s").matches({})
    with pytest.raises(Malformed):
        parse_selector({"matchExpressions": [{"key": "b", "operator": "Near"}]}, "s")


def test_cors_runs_in_both_phases():
    policy = Cors(origins=(("https", "*.a.test", 443),), credentials=True, methods="GET", max_age=60)
    filters = compose([policy])
    assert filters is not None and filters.request == (policy,) and filters.response == (policy,)
    preflight = FakeRequest(
        method="OPTIONS",
        scheme="https",
        path="/",
        query="",
        host="a.test",
        port=443,
        headers={"Origin": "https://x.y.a.test", "Access-Control-Request-Method": "GET"},
    )
    answer = policy.on_request(preflight)
    assert answer is not None and answer.status == 204
    response = FakeResponse(204)
    policy.on_response(preflight, response)
    assert response.as_dict()["Access-Control-Allow-Origin"] == "https://x.y.a.test"
    assert response.as_dict()["Access-Control-Max-Age"] == "60"
    other = FakeRequest(
        method="GET",
        scheme="https",
        path="/",
        query="",
        host="a.test",
        port=443,
        headers={"Origin": "https://a.test:8443"},
    )
    response = FakeResponse(200)
    policy.on_response(other, response)
    assert "Access-Control-Allow-Origin" not in response.as_dict()


def test_backend_level_mirrors_have_their_cluster_resolved():
    config = _build(
        _edge(),
        http_route(
            "r",
            rule(
                backends=[
                    backend(
                        V1,
                        filters=[
                            {
                                "type": "RequestMirror",
                                "requestMirror": {"backendRef": {"name": V3, "port": 8080}, "percent": 10},
                            }
                        ],
                    )
                ]
            ),
            parents=[GW],
        ),
    )
    outcome = send(config)
    assert outcome.mirrors == [(V3, 10.0)]
    assert f"{INFRA}/{V3}:8080" in config.clusters


def test_an_ingress_path_shadowed_by_an_older_http_route_is_reported():
    config = _build(
        _edge(),
        _ingress("young", "a.test", ingress_path("/p", V1, 8080), created="2025-01-01T00:00:00Z"),
        http_route(
            "old",
            rule(match("/p"), backends=[backend(V2)]),
            parents=[GW],
            hostnames=["a.test"],
            created="2020-01-01T00:00:00Z",
        ),
    )
    assert send(config, "/p", host="a.test").service == V2
    assert config.table.match("a.test", "/p").ingress == "young"  # the Ingress listeners' own table is untouched
    assert [w.message for w in config.warnings if w.kind == "Ingress"] == [
        (
            "path '/p' (Prefix) for host a.test loses to HTTPRoute gateway-conformance-infra/old (rule 0) on the "
            "listener they share (the older object wins)"
        )
    ]
