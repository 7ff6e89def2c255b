"""TLSRoutes on Gateway TLS listeners (mode Passthrough): SNI tables per local port, and their status.

Each case reproduces a Gateway API conformance test of the mirror (conformance/tests/tlsroute-*.go and
their YAML, TLSRoute at gateway.networking.k8s.io/v1): objects in, SNI table and conditions out.
"""

from __future__ import annotations

import pytest

from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.settings import Settings

from .objects import (
    INFRA,
    backend,
    gateway,
    gateway_class,
    listener,
    namespace,
    parent,
    reference_grant,
    service,
    snapshot,
    tls_route,
)

PASSTHROUGH = {"mode": "Passthrough"}
TLS_KIND = [{"kind": "TLSRoute"}]
PASSING = Settings(ssl_passthrough=True)
LOCAL = 443 + 8000  # the Gateway port as served here (--gateway-port-offset), the Ingress HTTPS port


def _world(*objects: dict) -> list[dict]:
    return [gateway_class(), namespace(INFRA), service("tcp-backend", 8443), service("tls-backend-2", 8443), *objects]


def _tls_gateway(name: str = "gateway-tlsroute", hostname: str | None = "*.example.com", **options) -> dict:
    return gateway(name, listener("https", 443, "TLS", hostname=hostname, kinds=TLS_KIND, tls=PASSTHROUGH, **options))


def _status(config, name: str):
    return config.gateway_status.tls_routes[(INFRA, name)]


def _condition(config, route: str, gateway_name: str, kind: str):
    found = [p for p in _status(config, route).parents if p.parent_ref.name == gateway_name]
    assert len(found) == 1
    found = found[0]
    return found.condition(kind)


def test_simple_same_namespace():
    """tlsroute-simple-same-namespace: abc.example.com on a *.example.com TLS listener reaches tcp-backend."""
    config = build(snapshot(*_world(_tls_gateway(), tls_route(
        "gateway-conformance-infra-test", backend("tcp-backend", 8443), parents=[parent("gateway-tlsroute")],
        hostnames=["abc.example.com"]))), PASSING)
    table = config.tls_routes[LOCAL]
    route = table.match("abc.example.com")
    assert route is not None and route.cluster == f"{INFRA}/tcp-backend:8443" and route.passthrough
    assert table.match("other.example.com") is None
    assert f"{INFRA}/tcp-backend:8443" in config.clusters
    for kind in ("Accepted", "ResolvedRefs"):
        assert _condition(config, "gateway-conformance-infra-test", "gateway-tlsroute", kind).status == "True"
    listener_status = config.gateway_status.gateways[(INFRA, "gateway-tlsroute")].listener("https")
    assert listener_status.attached_routes == 1
    assert listener_status.supported_kinds == (("gateway.networking.k8s.io", "TLSRoute"),)


def test_hostname_intersection_with_a_more_specific_wildcard_listener():
    """tlsroute-hostname-intersection: routes intersect with the listener's hostname; the rest is refused."""
    config = build(snapshot(*_world(
        _tls_gateway("gw", hostname="*.example.com"),
        tls_route("exact", backend("tcp-backend", 8443), parents=[parent("gw")], hostnames=["abc.example.com"]),
        tls_route("wide", backend("tls-backend-2", 8443), parents=[parent("gw")], hostnames=["*.com"]))), PASSING)
    table = config.tls_routes[LOCAL]
    assert table.match("abc.example.com").ingress == "exact"
    assert table.match("other.example.com").ingress == "wide"  # *.com ∩ *.example.com = *.example.com
    assert table.match("non.matching.com") is None


def test_no_matching_listener_hostname():
    """tlsroute-invalid-no-matching-listener-hostname: Accepted False, NoMatchingListenerHostname, 0 attached."""
    config = build(snapshot(*_world(_tls_gateway("gw", hostname="very.specific.com"), tls_route(
        "mismatch", backend("tcp-backend", 8443), parents=[parent("gw")], hostnames=["non.matching.com"]))),
        PASSING)
    accepted = _condition(config, "mismatch", "gw", "Accepted")
    assert (accepted.status, accepted.reason) == ("False", "NoMatchingListenerHostname")
    assert config.gateway_status.gateways[(INFRA, "gw")].listener("https").attached_routes == 0
    assert not config.tls_routes


@pytest.mark.parametrize(("gateway_obj", "ref", "reason"), [
    (gateway("http-only", listener("http", 80)), parent("http-only"), "NotAllowedByListeners"),
    (gateway("https-only", listener("https", 443, "HTTPS", certificates=[])), parent("https-only"),
     "NotAllowedByListeners"),
    (_tls_gateway("tls-only"), parent("tls-only", section="wrong"), "NoMatchingParent"),
])
def test_no_matching_listener(gateway_obj, ref, reason):
    """tlsroute-invalid-no-matching-listener: HTTP and HTTPS listeners do not take TLSRoutes; a wrong sectionName."""
    config = build(snapshot(*_world(gateway_obj, tls_route("route", backend("tcp-backend", 8443), parents=[ref],
                                                           hostnames=["abc.example.com"]))), PASSING)
    accepted = _condition(config, "route", ref["name"], "Accepted")
    assert (accepted.status, accepted.reason) == ("False", reason)


@pytest.mark.parametrize(("ref", "reason"), [
    (backend("nonexistent", 8443), "BackendNotFound"),  # tlsroute-invalid-backendref-nonexistent
    (backend("tcp-backend", 8443, kind="Unknown", group="unknown.example"), "InvalidKind"),  # ...-unknown-kind
    (backend("tcp-backend", 8443, namespace="elsewhere"), "RefNotPermitted"),  # tlsroute-invalid-reference-grant
])
def test_unresolved_backend_is_accepted_with_resolved_refs_false_and_rejects_connections(ref, reason):
    config = build(snapshot(*_world(_tls_gateway(), service("tcp-backend", 8443, namespace="elsewhere"), tls_route(
        "route", ref, parents=[parent("gateway-tlsroute")], hostnames=["abc.example.com"]))), PASSING)
    assert _condition(config, "route", "gateway-tlsroute", "Accepted").status == "True"
    resolved = _condition(config, "route", "gateway-tlsroute", "ResolvedRefs")
    assert (resolved.status, resolved.reason) == ("False", reason)
    route = config.tls_routes[LOCAL].match("abc.example.com")
    picked = route.backends.pick()
    assert route.cluster == "" and (picked is None or picked.cluster == "")  # the data plane closes the connection


def test_reference_grant_lets_a_tlsroute_use_another_namespace():
    config = build(snapshot(*_world(
        _tls_gateway(), service("tcp-backend", 8443, namespace="elsewhere"),
        reference_grant("allow", "elsewhere", froms=[("gateway.networking.k8s.io", "TLSRoute", INFRA)],
                        tos=[("", "Service")]),
        tls_route("route", backend("tcp-backend", 8443, namespace="elsewhere"), parents=[parent("gateway-tlsroute")],
                  hostnames=["abc.example.com"]))), PASSING)
    assert config.tls_routes[LOCAL].match("abc.example.com").cluster == "elsewhere/tcp-backend:8443"


def test_supported_kinds_of_a_passthrough_listener():
    """tlsroute-listener-passthrough-supported-kinds: TCPRoute listed → ResolvedRefs False InvalidRouteKinds,
    TLSRoute kept in supportedKinds."""
    config = build(snapshot(*_world(gateway("gw", listener(
        "tls-passthrough", 443, "TLS", kinds=[{"kind": "TLSRoute"}, {"kind": "TCPRoute"}], tls=PASSTHROUGH)))),
        PASSING)
    status = config.gateway_status.gateways[(INFRA, "gw")].listener("tls-passthrough")
    assert status.supported_kinds == (("gateway.networking.k8s.io", "TLSRoute"),)
    resolved = next(c for c in status.conditions if c.type == "ResolvedRefs")
    assert (resolved.status, resolved.reason) == ("False", "InvalidRouteKinds")


def test_terminate_mode_is_not_supported_on_tls_listeners():
    """tlsroute-listener-terminate-not-supported: a TLS listener in Terminate mode is not accepted."""
    config = build(snapshot(*_world(gateway("gw", listener("tls", 443, "TLS", kinds=TLS_KIND,
                                                           tls={"mode": "Terminate"})))), PASSING)
    accepted = next(c for c in config.gateway_status.gateways[(INFRA, "gw")].listener("tls").conditions
                    if c.type == "Accepted")
    assert accepted.status == "False"


def test_weights_and_the_oldest_route_wins_a_hostname():
    older = tls_route("older", backend("tcp-backend", 8443, weight=3), backend("tls-backend-2", 8443, weight=1),
                      parents=[parent("gateway-tlsroute")], hostnames=["abc.example.com"],
                      created="2023-01-01T00:00:00Z")
    newer = tls_route("newer", backend("tcp-backend", 8443), parents=[parent("gateway-tlsroute")],
                      hostnames=["abc.example.com"])
    config = build(snapshot(*_world(_tls_gateway(), older, newer)), PASSING)
    route = config.tls_routes[LOCAL].match("abc.example.com")
    assert route.ingress == "older"
    assert [(b.cluster, b.weight) for b in route.backends.backends] == [
        (f"{INFRA}/tcp-backend:8443", 3), (f"{INFRA}/tls-backend-2:8443", 1)]
    assert route.backends.pick(0.9).cluster == f"{INFRA}/tls-backend-2:8443"
    assert any(w.kind == "TLSRoute" and w.name == "newer" and "older" in w.message for w in config.warnings)


def test_tls_listener_shares_the_https_port_and_other_ports_get_a_tls_listener():
    config = build(snapshot(*_world(
        gateway("gw", listener("tls", 443, "TLS", hostname="*.example.com", kinds=TLS_KIND, tls=PASSTHROUGH),
                listener("tls-9443", 9443, "TLS", kinds=TLS_KIND, tls=PASSTHROUGH)),
        tls_route("route", backend("tcp-backend", 8443), parents=[parent("gw")], hostnames=["abc.example.com"]))),
        PASSING)
    assert config.listeners[LOCAL].ingress  # the Ingress HTTPS listener serves it (no PortUnavailable)
    assert config.listeners[9443 + 8000].protocol == "TLS"
    assert config.tls_routes[9443 + 8000].match("abc.example.com") is not None
    assert config.tls_routes[LOCAL].match("abc.example.com") is not None


def test_without_the_flag_tls_listeners_are_not_accepted():
    config = build(snapshot(*_world(_tls_gateway(), tls_route("route", backend("tcp-backend", 8443),
                                                             parents=[parent("gateway-tlsroute")],
                                                             hostnames=["abc.example.com"]))), Settings())
    listener_status = config.gateway_status.gateways[(INFRA, "gateway-tlsroute")].listener("https")
    accepted = next(c for c in listener_status.conditions if c.type == "Accepted")
    assert (accepted.status, accepted.reason) == ("False", "UnsupportedProtocol")
    assert "--enable-ssl-passthrough" in accepted.message
    assert not config.tls_routes and not config.listeners


def test_incremental_builder_agrees_and_follows_a_backend_change():
    first = snapshot(*_world(_tls_gateway(), tls_route("route", backend("tcp-backend", 8443),
                                                       parents=[parent("gateway-tlsroute")],
                                                       hostnames=["abc.example.com"])))
    second = snapshot(*_world(_tls_gateway(), tls_route("route", backend("tls-backend-2", 8443),
                                                        parents=[parent("gateway-tlsroute")],
                                                        hostnames=["abc.example.com"])))
    builder = Builder()
    one = builder.build(first, PASSING)
    assert one.checksum == build(first, PASSING).checksum
    two = builder.build(second, PASSING)
    assert two.checksum == build(second, PASSING).checksum != one.checksum
    assert two.tls_routes[LOCAL].match("abc.example.com").cluster == f"{INFRA}/tls-backend-2:8443"
    assert f"{INFRA}/tls-backend-2:8443" in two.clusters
