"""GRPCRoute at the routing level: the upstream conformance suite's GRPCRoute tests (conformance/tests/grpcroute-*.go
and their manifests) played through the built tables, plus the spec's rules around them (apis/v1/grpcroute_types.go:
method match forms and CEL validation, filters, precedence against HTTPRoutes, status conditions).

A gRPC call is `POST /<service>/<method>` with content-type application/grpc; `call` sends one through the
harness. Where upstream expects UNIMPLEMENTED (no route), the table answers None (404): the gRPC error form of that
answer is the data plane's (issue 13, gRPC part).
"""

from __future__ import annotations

from typing import Any

from proxy.debug import describe_gateways
from proxy.routing.model import KIND_GRPC_ROUTE, Config
from proxy.routing.policies import HTTP2

from .conformance import conformance, has, listener_status, route_has
from .harness import Outcome, send
from .objects import (
    APP,
    INFRA,
    backend,
    base_objects,
    gateway,
    grpc_match,
    grpc_route,
    header_filter,
    http_route,
    listener,
    match,
    mirror,
    parent,
    reference_grant,
    rewrite,
    rule,
    service,
)

ECHO = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
V1, V2, V3 = "grpc-infra-backend-v1", "grpc-infra-backend-v2", "grpc-infra-backend-v3"
SAME = parent("same-namespace")
GRPC_BACKENDS = (service(V1), service(V2), service(V3))


def build(*objects: dict[str, Any], gateways: tuple[str, ...] = ("same-namespace",)) -> Config:
    return conformance(*GRPC_BACKENDS, *objects, gateways=gateways)


def call(config: Config, method: str, *, service_name: str = ECHO, host: str = "example.com",
         metadata: dict[str, str] | None = None, port: int = 80) -> Outcome:
    """One unary gRPC call as the routing sees it."""
    headers = {"content-type": "application/grpc", "te": "trailers", **(metadata or {})}
    return send(config, f"/{service_name}/{method}", method="POST", host=host, headers=headers, port=port)


def grpc_has(config: Config, route: str, kind: str, status: str, reason: str = "",
             gateway_name: str = "same-namespace") -> bool:
    assert config.gateway_status is not None
    found = config.gateway_status.grpc_routes[(INFRA, route)]
    return any(has(p.conditions, kind, status, reason) for p in found.parents if p.parent_ref.name == gateway_name)


def accepted(config: Config, route: str, gateway_name: str = "same-namespace") -> bool:
    return (grpc_has(config, route, "Accepted", "True", gateway_name=gateway_name)
            and grpc_has(config, route, "ResolvedRefs", "True", gateway_name=gateway_name))


# ---------------------------------------------------------------------- the upstream conformance tests

def test_GRPCExactMethodMatching():
    """grpcroute-exact-method-matching.go: Echo → v1, EchoTwo → v2, EchoThree → no route (UNIMPLEMENTED)."""
    config = build(grpc_route("exact-matching",
                              rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)]),
                              rule(grpc_match(ECHO, "EchoTwo"), backends=[backend(V2)]),
                              parents=[SAME]))
    assert accepted(config, "exact-matching")
    assert call(config, "Echo").service == V1
    assert call(config, "EchoTwo").service == V2
    assert call(config, "EchoThree").status == 404


def test_GRPCRouteHeaderMatching():
    """grpcroute-header-matching.go: every case of the upstream test, in its order."""
    config = build(grpc_route(
        "grpc-header-matching",
        rule(grpc_match(headers=[("version", "one")]), backends=[backend(V1)]),
        rule(grpc_match(headers=[("version", "two")]), backends=[backend(V2)]),
        rule(grpc_match(headers=[("version", "two"), ("color", "orange")]), backends=[backend(V1)]),
        rule(grpc_match(headers=[("color", "blue")]), grpc_match(headers=[("color", "green")]),
             backends=[backend(V1)]),
        rule(grpc_match(headers=[("color", "red")]), grpc_match(headers=[("color", "yellow")]),
             backends=[backend(V2)]),
        parents=[SAME]))
    assert accepted(config, "grpc-header-matching")
    cases: list[tuple[dict[str, str], str | None]] = [
        ({"Version": "one"}, V1),
        ({"Version": "two"}, V2),
        ({"Version": "two", "Color": "orange"}, V1),
        ({"Version": "two", "Color": "blue"}, V2),
        ({"Color": "orange"}, None),
        ({"Some-Other-Header": "one"}, None),
        ({"Color": "blue"}, V1),
        ({"Color": "green"}, V1),
        ({"Color": "red"}, V2),
        ({"Color": "yellow"}, V2),
        ({"Color": "purple"}, None),
    ]
    for metadata, wanted in cases:
        outcome = call(config, "Echo", metadata=metadata)
        if wanted is None:
            assert outcome.status == 404, metadata
        else:
            assert (outcome.status, outcome.service) == (200, wanted), metadata


def test_GRPCRouteListenerHostnameMatching():
    """grpcroute-listener-hostname-matching.go: four listeners on port 80 with their own hostnames, one route each
    (backend-v3 on two), requests by :authority."""
    config = build(
        gateway("grpcroute-listener-hostname-matching",
                listener("listener-1", 80, hostname="bar.com"),
                listener("listener-2", 80, hostname="foo.bar.com"),
                listener("listener-3", 80, hostname="*.bar.com"),
                listener("listener-4", 80, hostname="*.foo.com")),
        *(grpc_route(name, rule(backends=[backend(target)]),
                     parents=[parent("grpcroute-listener-hostname-matching", INFRA, section=section)
                              for section in sections])
          for name, target, sections in (("backend-v1", V1, ("listener-1",)), ("backend-v2", V2, ("listener-2",)),
                                         ("backend-v3", V3, ("listener-3", "listener-4")))),
        gateways=("grpcroute-listener-hostname-matching",))
    for name in ("backend-v1", "backend-v2", "backend-v3"):
        assert accepted(config, name, "grpcroute-listener-hostname-matching"), name
    for number in (1, 2, 3, 4):
        status = listener_status(config, "grpcroute-listener-hostname-matching", f"listener-{number}")
        assert status.attached_routes == 1
    for host, wanted in (("bar.com", V1), ("foo.bar.com", V2), ("baz.bar.com", V3), ("boo.bar.com", V3),
                         ("multiple.prefixes.bar.com", V3), ("multiple.prefixes.foo.com", V3),
                         ("foo.com", None), ("no.matching.host", None)):
        outcome = call(config, "Echo", host=host)
        assert (outcome.service or None) == wanted, host
        if wanted is None:
            assert outcome.status == 404


def test_GRPCRouteNamedRule():
    """grpcroute-named-rule.go: a named rule routes as any other and keeps its name."""
    config = build(grpc_route("grpc-named-rules",
                              rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)], name="named-rule"),
                              rule(grpc_match(ECHO, "EchoTwo"), backends=[backend(V2)]),
                              parents=[SAME]))
    assert accepted(config, "grpc-named-rules")
    first, second = call(config, "Echo"), call(config, "EchoTwo")
    assert (first.service, second.service) == (V1, V2)
    assert first.route is not None and first.route.rule_name == "named-rule" and first.route.kind == KIND_GRPC_ROUTE


def test_GRPCRouteRequestHeaderModifier():
    """grpcroute-request-header-modifier.go: its manifest, with what the spec says the pod receives. Its three Echo
    rules have equal matches, so the first one (set) serves Echo (the spec: "first matching rule"; upstream checks
    only which backend answered); EchoTwo gets every operation of the fourth rule, header names compared without
    case."""
    config = build(grpc_route(
        "grpc-request-header-modifier",
        rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)],
             filters=[header_filter(set={"X-Header-Set": "set-overwrites-values"})]),
        rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)],
             filters=[header_filter(add={"X-Header-Add": "add-appends-values"})]),
        rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)], filters=[header_filter(remove=["X-Header-Remove"])]),
        rule(grpc_match(ECHO, "EchoTwo"), backends=[backend(V2)],
             filters=[header_filter(set={"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2"},
                                    add={"X-Header-Add-1": "header-add-1", "X-Header-Add-2": "header-add-2"},
                                    remove=["X-Header-Remove-1", "X-Header-Remove-2"])]),
        parents=[SAME]))
    assert accepted(config, "grpc-request-header-modifier")
    authority = ECHO  # upstream sends this :authority; the listener has no hostname
    outcome = call(config, "Echo", host=authority, metadata={"Some-Other-Header": "this-header-should-be-set",
                                                             "X-Header-Set": "this-value-should-be-overwritten"})
    assert outcome.service == V1
    assert outcome.request_headers["X-Header-Set"] == "set-overwrites-values"
    assert outcome.request_headers["Some-Other-Header"] == "this-header-should-be-set"
    assert outcome.route is not None and outcome.route.rule == 0
    outcome = call(config, "EchoTwo", host=authority, metadata={
        "X-Header-Set-2": "set-header-2", "X-Header-Add-2": "add-header-2", "X-Header-Remove-2": "should-be-removed-2",
        "Some-Other-Header": "another-header-val"})
    assert outcome.service == V2
    headers = outcome.request_headers
    assert headers["X-Header-Set-1"] == "header-set-1" and headers["X-Header-Set-2"] == "header-set-2"
    assert headers["X-Header-Add-1"] == "header-add-1"
    assert headers["X-Header-Add-2"] == "add-header-2,header-add-2"
    assert "X-Header-Remove-2" not in headers and headers["Some-Other-Header"] == "another-header-val"
    outcome = call(config, "EchoTwo", host=authority, metadata={
        "x-header-set-1": "original-set-1", "x-header-add-1": "existing-add-1", "x-header-remove-1": "gone"})
    assert outcome.request_headers["X-Header-Set-1"] == "header-set-1"
    assert outcome.request_headers["X-Header-Add-1"] == "existing-add-1,header-add-1"
    assert "X-Header-Remove-1" not in outcome.request_headers


def test_GRPCRouteWeight():
    """grpcroute-weight.go: 70/30/0 over three backends; weight 0 is never picked."""
    config = build(grpc_route("weighted-backends",
                              rule(backends=[backend(V1, weight=70), backend(V2, weight=30), backend(V3, weight=0)]),
                              parents=[SAME]))
    assert accepted(config, "weighted-backends")
    draws = 100
    seen: dict[str, int] = {}
    for index in range(draws):
        headers = {"content-type": "application/grpc"}
        outcome = send(config, f"/{ECHO}/Echo", method="POST", headers=headers, draw=index / draws)
        seen[outcome.service] = seen.get(outcome.service, 0) + 1
    assert seen == {V1: 70, V2: 30}


# ---------------------------------------------------------------------- the spec's method match forms

def _routed(config: Config, path: str, method: str = "POST") -> str | None:
    return send(config, path, method=method, headers={"content-type": "application/grpc"}).service or None


def test_method_match_forms_and_their_precedence():
    """GRPCMethodMatch: Exact service and method, service alone (any method of it), method alone (any service),
    RegularExpression on either part; no match at all takes every call. Exact paths win, then regexes, then the
    longest service; a service never catches a longer service that starts with its name."""
    config = build(grpc_route(
        "forms",
        rule(grpc_match("pkg.Svc", "Get"), backends=[backend(V1)]),
        rule(grpc_match("pkg.Svc"), backends=[backend(V2)]),
        rule(grpc_match(method="Health"), backends=[backend(V3)]),
        rule(grpc_match("pkg\\.Re.*", "List|Watch", type="RegularExpression"), backends=[backend(V1)]),
        rule(grpc_match(service="other\\..*", type="RegularExpression"), backends=[backend(V2)]),
        rule(backends=[backend(V3)]),
        parents=[SAME]))
    assert accepted(config, "forms")
    assert _routed(config, "/pkg.Svc/Get") == V1
    assert _routed(config, "/pkg.Svc/Put") == V2
    assert _routed(config, "/pkg.Svcs/Put") == V3  # not pkg.Svc: the catch-all rule
    assert _routed(config, "/any.Thing/Health") == V3
    assert _routed(config, "/pkg.Remote/List") == V1 and _routed(config, "/pkg.Remote/Watch") == V1
    assert _routed(config, "/pkg.Remote/Listing") == V3  # regexes match the whole method
    assert _routed(config, "/other.Svc/Anything") == V2
    assert _routed(config, "/pkg.Svc/Get", method="GET") is None  # gRPC is POST only


def test_precedence_across_match_forms_follows_the_spec():
    """apis/v1/grpcroute_types.go, GRPCRouteRule.matches: ties between matches are broken by the characters of a
    matching service, then of a matching method, then the number of header matches, then the oldest route, then
    namespace/name. So a service-only match wins over a method-only one (the table's own order, regexes before
    Prefixes, would say the reverse), and a RegularExpression counts the characters of its pattern."""
    older = grpc_route(
        "older",
        rule(grpc_match(method="Get"), backends=[backend(V3)]),  # (0, 3)
        rule(grpc_match("pkg.Svc"), backends=[backend(V2)]),  # (7, 0)
        rule(grpc_match("pkg\\..*", "Put|Post", type="RegularExpression"), backends=[backend(V1)]),  # (7, 8)
        rule(grpc_match(service="pg+\\.Svc|abc", type="RegularExpression"), backends=[backend(V3)]),  # (12, 0)
        rule(grpc_match(headers=[("x-tier", "gold")]), backends=[backend(V1)]),  # (0, 0), one header
        parents=[SAME])
    newer = grpc_route(
        "newer",
        rule(grpc_match(method="Get", headers=[("x-tier", "gold")]), backends=[backend(V1)]),  # (0, 3), one header
        rule(grpc_match(method="Get"), backends=[backend(V2)]),  # (0, 3): ties with older's, which is older
        rule(grpc_match("pkg.Svc", headers=[("x-tier", "gold")]), backends=[backend(V1)]),  # (7, 0), one header
        parents=[SAME], created="2024-02-01T00:00:00Z")
    config = build(older, newer)
    assert accepted(config, "older") and accepted(config, "newer")
    assert _routed(config, "/pkg.Svc/Get") == V2  # service (7) over method (3)
    assert _routed(config, "/other.Svc/Get") == V3  # method only: the older route's
    assert call(config, "Get", service_name="other.Svc", metadata={"x-tier": "gold"}).service == V1  # more headers
    assert call(config, "Get", service_name="pkg.Svc", metadata={"x-tier": "gold"}).service == V1  # (7, 0) + header
    assert _routed(config, "/pkg.Svc/Put") == V1  # (7, 8) over (7, 0)
    assert _routed(config, "/pkg.Other/Put") == V1
    assert _routed(config, "/pkg.Other/Get") == V3  # no service match: the method one
    assert _routed(config, "/pgg.Svc/Delete") == V3  # the 12-character service pattern
    assert call(config, "Delete", service_name="x.Y", metadata={"x-tier": "gold"}).service == V1  # catch-all last
    assert _routed(config, "/x.Y/Delete") is None


def test_service_only_match_stays_a_prefix_without_grpc_regexes():
    """The ranking is made at build time and only where needed: a host whose gRPC matches include no regex keeps
    a service-only match as the Prefix slot (no regex walk for its calls); with one, it becomes a ranked regex."""
    plain = build(grpc_route("plain", rule(grpc_match("pkg.Svc"), backends=[backend(V2)]),
                             rule(grpc_match("pkg.Svc", "Get"), backends=[backend(V1)]), parents=[SAME]))
    host = plain.listeners[8080].table.host_routes("example.com")
    assert host is not None and "/pkg.Svc" in host.prefix and not host.regex
    assert _routed(plain, "/pkg.Svc/Put") == V2 and _routed(plain, "/pkg.Svc/Get") == V1
    mixed = build(grpc_route("mixed", rule(grpc_match("pkg.Svc"), backends=[backend(V2)]),
                             rule(grpc_match(method="Put"), backends=[backend(V3)]), parents=[SAME]))
    host = mixed.listeners[8080].table.host_routes("example.com")
    assert host is not None and "/pkg.Svc" not in host.prefix
    assert [pattern.pattern for pattern, _ in host.regex] == ["/pkg\\.Svc/[^/]+", "/[^/]+/Put"]
    assert _routed(mixed, "/pkg.Svc/Put") == V2 and _routed(mixed, "/pkg.Other/Put") == V3


def test_invalid_method_matches_drop_their_rule():
    """The CRD's CEL rules (service and method names, one of them given) and bad regexes: the rule is dropped with
    Accepted True + PartiallyInvalid (the route's other rules serve), and a warning names the route."""
    config = build(grpc_route(
        "bad",
        rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)]),
        rule(grpc_match("bad/service", "Echo"), backends=[backend(V2)]),
        rule(grpc_match(type="Exact"), backends=[backend(V2)]),
        rule(grpc_match(ECHO, "(", type="RegularExpression"), backends=[backend(V2)]),
        rule(grpc_match(ECHO, "Echo", type="Prefix"), backends=[backend(V2)]),
        parents=[SAME]))
    assert grpc_has(config, "bad", "Accepted", "True")
    assert grpc_has(config, "bad", "PartiallyInvalid", "True", "UnsupportedValue")
    assert call(config, "Echo").service == V1
    messages = [w.message for w in config.warnings if (w.kind, w.name) == ("GRPCRoute", "bad")]
    assert len([m for m in messages if "dropped" in m]) == 4, messages


def test_header_regular_expression_and_first_of_equivalent_names():
    """GRPCHeaderMatch: RegularExpression matches the whole value; of equivalent names only the first counts."""
    config = build(grpc_route("headers",
                              rule(grpc_match(headers=[("x-tier", "gold|silver", "RegularExpression"),
                                                       ("X-Tier", "bronze")]), backends=[backend(V1)]),
                              parents=[SAME]))
    assert call(config, "Echo", metadata={"x-tier": "silver"}).service == V1
    assert call(config, "Echo", metadata={"x-tier": "bronze"}).status == 404
    assert call(config, "Echo", metadata={"x-tier": "golden"}).status == 404


# ---------------------------------------------------------------------- filters and backends

def test_response_header_modifier_and_mirror():
    """GRPCRouteFilter: ResponseHeaderModifier edits the answer, RequestMirror copies the call (its backend is
    spoken h2c too)."""
    config = build(grpc_route("filters",
                              rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)],
                                   filters=[header_filter("ResponseHeaderModifier", set={"x-served-by": "grpc"}),
                                            mirror(V2)]),
                              parents=[SAME]))
    outcome = call(config, "Echo")
    assert outcome.service == V1 and outcome.response_headers["X-Served-By"] == "grpc"
    assert outcome.mirrors == [(V2, 100.0)]
    assert outcome.route is not None and outcome.route.filters is not None
    assert outcome.route.filters.mirrors[0].cluster.endswith("~h2c")


def test_http_only_filters_drop_the_rule():
    """URLRewrite (and the other HTTPRoute-only filters) are not GRPCRouteFilter types: the rule is dropped."""
    config = build(grpc_route("rewrite", rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)],
                                               filters=[rewrite(hostname="x.example")]),
                              parents=[SAME]))
    assert grpc_has(config, "rewrite", "Accepted", "False", "UnsupportedValue")
    assert call(config, "Echo").status == 404


def test_backends_are_spoken_h2c_whatever_the_port_says():
    """A GRPCRoute backend's cluster is HTTP/2 cleartext (Cluster.protocol HTTP2), even on a port whose
    appProtocol is kubernetes.io/h2c (which an HTTPRoute cannot use yet); an HTTPRoute to the same Service port
    keeps its own plain cluster."""
    config = build(
        grpc_route("h2c-port", rule(backends=[backend("infra-backend-v1", 8081)]), parents=[SAME],
                   hostnames=["grpc.example"]),
        http_route("plain", rule(match("/"), backends=[backend(V1)]), parents=[SAME], hostnames=["web.example"]),
        grpc_route("same-port", rule(backends=[backend(V1)]), parents=[SAME], hostnames=["grpc.example"]))
    assert accepted(config, "h2c-port")
    outcome = call(config, "Echo", host="grpc.example")
    assert outcome.service == "infra-backend-v1"
    assert outcome.route is not None
    assert config.clusters[outcome.route.cluster].protocol == HTTP2
    web = send(config, "/", host="web.example")
    assert web.route is not None and config.clusters[web.route.cluster].protocol == ""
    protocols = {key: cluster.protocol for key, cluster in config.clusters.items() if cluster.service == V1}
    assert sorted(protocols.values()) == ["", HTTP2], protocols


def test_unresolved_references():
    """ResolvedRefs for GRPCRoute backendRefs as for HTTPRoute's: a missing Service (BackendNotFound, its share 500),
    another namespace's Service without a ReferenceGrant from GRPCRoutes (RefNotPermitted), with one (resolved)."""
    missing = build(grpc_route("missing", rule(backends=[backend("nowhere")]), parents=[SAME]))
    assert grpc_has(missing, "missing", "Accepted", "True")
    assert grpc_has(missing, "missing", "ResolvedRefs", "False", "BackendNotFound")
    assert call(missing, "Echo").status == 500
    across = grpc_route("across", rule(backends=[backend("app-backend-v1", namespace=APP)]), parents=[SAME])
    denied = build(across, reference_grant("http-only", APP, froms=[("gateway.networking.k8s.io", "HTTPRoute", INFRA)],
                                           tos=[("", "Service")]))
    assert grpc_has(denied, "across", "ResolvedRefs", "False", "RefNotPermitted")
    granted = build(across, reference_grant("grpc", APP, froms=[("gateway.networking.k8s.io", "GRPCRoute", INFRA)],
                                            tos=[("", "Service")]))
    assert accepted(granted, "across")
    assert call(granted, "Echo").service == "app-backend-v1"


# ---------------------------------------------------------------------- listeners, parentRefs, HTTPRoutes

def test_listener_kinds():
    """supportedKinds of HTTP listeners list GRPCRoute beside HTTPRoute; a listener whose allowedRoutes.kinds names
    only HTTPRoute refuses GRPCRoutes (NotAllowedByListeners); GRPCRoute alone is a valid kinds list."""
    config = build(
        gateway("kinds", listener("http-only", 80, hostname="a.example",
                                  kinds=[{"kind": "HTTPRoute"}]),
                listener("grpc-only", 80, hostname="b.example", kinds=[{"kind": "GRPCRoute"}])),
        grpc_route("to-http-only", rule(backends=[backend(V1)]), parents=[parent("kinds", section="http-only")]),
        grpc_route("to-grpc-only", rule(backends=[backend(V2)]), parents=[parent("kinds", section="grpc-only")]),
        gateways=("kinds", "same-namespace"))
    kinds = listener_status(config, "same-namespace", "http").supported_kinds
    assert ("gateway.networking.k8s.io", "GRPCRoute") in kinds and ("gateway.networking.k8s.io", "HTTPRoute") in kinds
    grpc_only = listener_status(config, "kinds", "grpc-only")
    assert grpc_only.supported_kinds == (("gateway.networking.k8s.io", "GRPCRoute"),)
    assert has(grpc_only.conditions, "ResolvedRefs", "True")
    assert grpc_has(config, "to-http-only", "Accepted", "False", "NotAllowedByListeners", "kinds")
    assert accepted(config, "to-grpc-only", "kinds")
    assert call(config, "Echo", host="b.example").service == V2
    assert call(config, "Echo", host="a.example").status == 404


def test_parent_refs_section_and_port():
    """parentRefs sectionName and port select listeners as for HTTPRoutes (NoMatchingParent when none)."""
    config = build(
        grpc_route("by-port", rule(backends=[backend(V1)]), parents=[parent("same-namespace", port=80)]),
        grpc_route("wrong-port", rule(backends=[backend(V1)]), parents=[parent("same-namespace", port=8080)]),
        grpc_route("wrong-section", rule(backends=[backend(V1)]), parents=[parent("same-namespace", section="x")]),
    )
    assert accepted(config, "by-port")
    assert grpc_has(config, "wrong-port", "Accepted", "False", "NoMatchingParent")
    assert grpc_has(config, "wrong-section", "Accepted", "False", "NoMatchingParent")


def test_hostnames_intersect_with_the_listener():
    """Hostnames: only those matching the listener's count; none matching → Accepted False
    NoMatchingListenerHostname."""
    config = build(
        gateway("wild", listener("http", 80, hostname="*.example.com")),
        grpc_route("some", rule(backends=[backend(V1)]), parents=[parent("wild")],
                   hostnames=["api.example.com", "api.example.net"]),
        grpc_route("none", rule(backends=[backend(V2)]), parents=[parent("wild")], hostnames=["api.example.net"]),
        gateways=("wild",))
    assert accepted(config, "some", "wild")
    assert grpc_has(config, "none", "Accepted", "False", "NoMatchingListenerHostname", "wild")
    assert call(config, "Echo", host="api.example.com").service == V1
    assert call(config, "Echo", host="other.example.com").status == 404


def test_httproute_and_grpcroute_never_share_a_hostname_on_a_listener():
    """GRPCRouteSpec.hostnames: a Route of the other type with intersecting hostnames on the same listener: exactly
    one is accepted, the oldest (then the first by namespace/name); the other gets Accepted False. Disjoint
    hostnames: both serve."""
    older = "2023-01-01T00:00:00Z"
    config = build(
        http_route("web", rule(match("/"), backends=[backend("infra-backend-v1")]), parents=[SAME],
                   hostnames=["shared.example"], created=older),
        grpc_route("calls", rule(backends=[backend(V1)]), parents=[SAME], hostnames=["*.example"]),
        grpc_route("apart", rule(backends=[backend(V2)]), parents=[SAME], hostnames=["grpc.other"]))
    assert route_has(config, "web", "same-namespace", "Accepted", "True")
    assert grpc_has(config, "calls", "Accepted", "False", "NotAllowedByListeners")
    assert accepted(config, "apart")
    assert send(config, "/x", host="shared.example").service == "infra-backend-v1"
    assert call(config, "Echo", host="any.example").status == 404  # the GRPCRoute is not served at all
    assert call(config, "Echo", host="grpc.other").service == V2
    assert listener_status(config, "same-namespace", "http").attached_routes == 2
    # The GRPCRoute older: it wins, the HTTPRoute is refused.
    config = build(
        http_route("web", rule(match("/"), backends=[backend("infra-backend-v1")]), parents=[SAME],
                   hostnames=["shared.example"]),
        grpc_route("calls", rule(backends=[backend(V1)]), parents=[SAME], hostnames=["*.example"], created=older))
    assert accepted(config, "calls")
    assert route_has(config, "web", "same-namespace", "Accepted", "False", "NotAllowedByListeners")
    assert call(config, "Echo", host="shared.example").service == V1
    assert any(w.kind == "HTTPRoute" and w.name == "web" and "GRPCRoute" in w.message for w in config.warnings)


def test_status_shown_in_the_debug_dump():
    """/debug/routes: GRPCRoute status entries beside the HTTPRoutes'."""
    config = build(grpc_route("shown", rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)]), parents=[SAME]))
    described = describe_gateways(config)
    (entry,) = described["grpcRoutes"][f"{INFRA}/shown"]
    assert {c["type"]: c["status"] for c in entry["conditions"]} == {"Accepted": "True", "ResolvedRefs": "True"}


def test_service_policies_reach_grpc_backends():
    """A BackendTrafficPolicy and a BackendTLSPolicy on a Service a GRPCRoute sends to apply to its HTTP/2 cluster
    (they were Accepted but never applied: the "~h2c" cluster key was taken for one already under a policy), the
    TLS one making it h2 over TLS with the policy's name and CA; the policy's status names the Gateway (GEP-713, as
    backendtlspolicy-grpcroute.go waits for). The incremental builder agrees with the full build."""
    from proxy.routing.build import build as full_build
    from proxy.routing.incremental import Builder
    from proxy.routing.policies import LEAST_REQUEST
    from proxy.settings import Settings

    from ..policy.objects import config_map, target, tls_policy, traffic_policy
    from .harness import snapshot

    objects = [*base_objects(), *GRPC_BACKENDS,
               grpc_route("tls", rule(grpc_match(ECHO, "Echo"), backends=[backend(V1)]), parents=[SAME]),
               grpc_route("balanced", rule(grpc_match(ECHO, "EchoTwo"), backends=[backend(V2)]), parents=[SAME]),
               config_map("ca", namespace=INFRA),
               tls_policy("tls", V1, hostname="v1.internal", namespace=INFRA, ca=["ca"]),
               traffic_policy("lb", target("Service", V2), namespace=INFRA, loadBalancer={"type": "LeastRequest"})]
    settings = Settings(gateways=(f"{INFRA}/same-namespace",))
    config = full_build(snapshot(*objects), settings)
    secured = config.clusters[call(config, "Echo").route.cluster]  # type: ignore[union-attr]
    assert secured.protocol == HTTP2 and secured.policy is not None and secured.policy.tls is not None
    assert (secured.policy.tls.sni, secured.policy.tls.verify) == ("v1.internal", True)
    balanced = config.clusters[call(config, "EchoTwo").route.cluster]  # type: ignore[union-attr]
    assert balanced.protocol == HTTP2 and balanced.policy is not None
    assert balanced.policy.load_balancer.kind == LEAST_REQUEST and balanced.policy.tls is None
    assert config.tls_policy_status is not None
    (entry,) = config.tls_policy_status.policies[(INFRA, "tls")].ancestors
    assert (entry.ref.kind, entry.ref.name) == ("Gateway", "same-namespace")
    assert Builder().build(snapshot(*objects), settings).checksum == config.checksum
