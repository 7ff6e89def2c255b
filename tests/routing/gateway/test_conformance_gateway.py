"""The upstream conformance suite's Gateway tests (conformance/tests/gateway-*.go and
gatewayclass-observed-generation-bump.go), at the routing level: listener and Gateway status as
data, and requests through the built tables. Client certificate validation, BackendTLSPolicy,
infrastructure propagation and ListenerSets are out of scope and have no reproduction here.
"""

from __future__ import annotations

import pytest

from .conformance import conformance, expect, gateway_status, has, must_be_accepted, route_has
from .objects import (
    INFRA,
    WEB,
    backend,
    certificate_ref,
    gateway,
    gateway_class,
    http_route,
    listener,
    match,
    parent,
    reference_grant,
    rule,
    tls_secret,
)

V1 = "infra-backend-v1"
HTTP_ROUTE = (("gateway.networking.k8s.io", "HTTPRoute"),)


def _listeners_match(config, gateway_name: str, expected: list[dict]) -> None:
    """GatewayStatusMustHaveListeners: the same listeners, each with the supportedKinds, attachedRoutes and
    (type, status, reason) conditions given ("" reason: any)."""
    status = gateway_status(config, gateway_name)
    assert len(status.listeners) == len(expected)
    for want in expected:
        got = status.listener(want["name"])
        assert got is not None, want["name"]
        assert got.supported_kinds == want.get("kinds", HTTP_ROUTE), (want["name"], got.supported_kinds)
        assert got.attached_routes == want.get("attached", 0), (want["name"], got.attached_routes)
        for kind, state, reason in want["conditions"]:
            assert has(got.conditions, kind, state, reason), (want["name"], kind, state, reason, got.conditions)


def _isolation_routes(suffix: str, gateway_name: str, hostnames: dict[str, list[str]] | None) -> list[dict]:
    sections = ("empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com")
    return [
        http_route(
            f"attaches-to-{section}{suffix}",
            rule(match(f"/{section}"), backends=[backend(V1)]),
            parents=[parent(gateway_name, INFRA, section=section)],
            hostnames=hostnames[section] if hostnames else None,
        )
        for section in sections
    ]


def test_GatewayHTTPListenerIsolation():
    def isolation_gateway(name: str) -> dict:
        return gateway(
            name,
            listener("empty-hostname", 80, namespaces="All"),
            listener("wildcard-example-com", 80, hostname="*.example.com", namespaces="All"),
            listener("wildcard-foo-example-com", 80, hostname="*.foo.example.com", namespaces="All"),
            listener("abc-foo-example-com", 80, hostname="abc.foo.example.com", namespaces="All"),
        )

    every = ["bar.com", "*.example.com", "*.foo.example.com", "abc.foo.example.com"]
    cases = [
        ({"host": "bar.com", "path": "/empty-hostname"}, {"backend": V1}),
        ({"host": "bar.com", "path": "/wildcard-example-com"}, {"status": 404}),
        ({"host": "bar.com", "path": "/wildcard-foo-example-com"}, {"status": 404}),
        ({"host": "bar.com", "path": "/abc-foo-example-com"}, {"status": 404}),
        ({"host": "bar.example.com", "path": "/empty-hostname"}, {"status": 404}),
        ({"host": "bar.example.com", "path": "/wildcard-example-com"}, {"backend": V1}),
        ({"host": "bar.example.com", "path": "/wildcard-foo-example-com"}, {"status": 404}),
        ({"host": "bar.example.com", "path": "/abc-foo-example-com"}, {"status": 404}),
        ({"host": "bar.foo.example.com", "path": "/empty-hostname"}, {"status": 404}),
        ({"host": "bar.foo.example.com", "path": "/wildcard-example-com"}, {"status": 404}),
        ({"host": "bar.foo.example.com", "path": "/wildcard-foo-example-com"}, {"backend": V1}),
        ({"host": "bar.foo.example.com", "path": "/abc-foo-example-com"}, {"status": 404}),
        ({"host": "abc.foo.example.com", "path": "/empty-hostname"}, {"status": 404}),
        ({"host": "abc.foo.example.com", "path": "/wildcard-example-com"}, {"status": 404}),
        ({"host": "abc.foo.example.com", "path": "/wildcard-foo-example-com"}, {"status": 404}),
        ({"host": "abc.foo.example.com", "path": "/abc-foo-example-com"}, {"backend": V1}),
    ]
    # hostnames are configured only in listeners
    routes = _isolation_routes("", "http-listener-isolation", None)
    config = conformance(isolation_gateway("http-listener-isolation"), *routes, gateways=("http-listener-isolation",))
    must_be_accepted(config, "http-listener-isolation", *(r["metadata"]["name"] for r in routes))
    expect(config, cases)
    # intersecting hostnames are configured in listeners and HTTPRoutes
    name = "http-listener-isolation-with-hostname-intersection"
    routes = _isolation_routes(
        "-with-hostname-intersection",
        name,
        dict.fromkeys(
            ("empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com"), every
        ),
    )
    config = conformance(isolation_gateway(name), *routes, gateways=(name,))
    must_be_accepted(config, name, *(r["metadata"]["name"] for r in routes))
    expect(config, cases)


def test_GatewayListenerUnsupportedProtocol():
    only = gateway(
        "gateway-only-unsupported-protocols",
        listener("invalid", 1111, "INVALID", namespaces=None),
        annotations={"gateway-api/skip-this-for-readiness": "true"},
    )
    mixed = gateway(
        "gateway-supported-and-unsupported-protocols",
        listener("http", 80, namespaces=None),
        listener("invalid", 1111, "INVALID", namespaces=None),
    )
    config = conformance(
        only, mixed, gateways=("gateway-only-unsupported-protocols", "gateway-supported-and-unsupported-protocols")
    )
    status = gateway_status(config, "gateway-only-unsupported-protocols")
    assert has(status.conditions, "Accepted", "False", "ListenersNotValid")
    _listeners_match(
        config,
        "gateway-only-unsupported-protocols",
        [{"name": "invalid", "kinds": (), "conditions": [("Accepted", "False", "UnsupportedProtocol")]}],
    )
    status = gateway_status(config, "gateway-supported-and-unsupported-protocols")
    assert has(status.conditions, "Accepted", "True", "ListenersNotValid")
    _listeners_match(
        config,
        "gateway-supported-and-unsupported-protocols",
        [
            {"name": "http", "conditions": [("Accepted", "True", "Accepted")]},
            {"name": "invalid", "kinds": (), "conditions": [("Accepted", "False", "UnsupportedProtocol")]},
        ],
    )
    assert list(config.listeners) == [8080]  # the HTTP listener serves; nothing opens port 1111


def test_GatewayInvalidRouteKind():
    only = gateway(
        "gateway-only-invalid-route-kind", listener("http", 80, namespaces="All", kinds=[{"kind": "InvalidRoute"}])
    )
    mixed = gateway(
        "gateway-supported-and-invalid-route-kind",
        listener("http", 80, namespaces="All", kinds=[{"kind": "InvalidRoute"}, {"kind": "HTTPRoute"}]),
    )
    config = conformance(
        only, mixed, gateways=("gateway-only-invalid-route-kind", "gateway-supported-and-invalid-route-kind")
    )
    _listeners_match(
        config,
        "gateway-only-invalid-route-kind",
        [{"name": "http", "kinds": (), "conditions": [("ResolvedRefs", "False", "InvalidRouteKinds")]}],
    )
    _listeners_match(
        config,
        "gateway-supported-and-invalid-route-kind",
        [{"name": "http", "conditions": [("ResolvedRefs", "False", "InvalidRouteKinds")]}],
    )


@pytest.mark.parametrize(
    "name,ref",
    [
        ("gateway-certificate-nonexistent-secret", certificate_ref("nonexistent-certificate")),
        (
            "gateway-certificate-unsupported-group",
            certificate_ref("tls-validity-checks-certificate", group="wrong.group.company.io"),
        ),
        ("gateway-certificate-unsupported-kind", certificate_ref("tls-validity-checks-certificate", kind="WrongKind")),
        ("gateway-certificate-malformed-secret", certificate_ref("malformed-certificate")),
    ],
)
def test_GatewayInvalidTLSConfiguration(name, ref):
    malformed = tls_secret("malformed-certificate", crt=b"Hello world\n", key=b"Hello world\n")
    config = conformance(
        malformed,
        gateway(name, listener("https", 443, "HTTPS", namespaces="All", certificates=[ref])),
        gateways=(name,),
    )
    _listeners_match(
        config, name, [{"name": "https", "conditions": [("ResolvedRefs", "False", "InvalidCertificateRef")]}]
    )
    assert config.listeners == {}  # no certificate: nothing served


def _secret_gateway(name: str) -> dict:
    return gateway(
        name, listener("https", 443, "HTTPS", namespaces="All", certificates=[certificate_ref("certificate", WEB)])
    )


_CERTIFICATE = tls_secret("certificate", WEB)


def test_GatewaySecretInvalidReferenceGrant():
    name = "gateway-secret-invalid-reference-grant"
    group = "gateway.networking.k8s.io"
    grants = [
        reference_grant(
            "reference-grant-wrong-namespace",
            "gateway-conformance-app-backend",
            froms=[(group, "Gateway", INFRA)],
            tos=[("", "Secret", "certificate")],
        ),
        reference_grant(
            "reference-grant-wrong-from-group",
            WEB,
            froms=[("not-the-group-youre-looking-for", "Gateway", INFRA)],
            tos=[("", "Secret", "certificate")],
        ),
        reference_grant(
            "reference-grant-wrong-from-kind",
            WEB,
            froms=[(group, "HTTPRoute", INFRA)],
            tos=[("", "Secret", "certificate")],
        ),
        reference_grant(
            "reference-grant-wrong-from-namespace",
            WEB,
            froms=[(group, "Gateway", "not-the-namespace-youre-looking-for")],
            tos=[("", "Secret", "certificate")],
        ),
        reference_grant(
            "reference-grant-wrong-to-group",
            WEB,
            froms=[(group, "Gateway", INFRA)],
            tos=[("not-the-group-youre-looking-for", "Secret", "not-the-certificate-youre-looking-for")],
        ),
        reference_grant(
            "reference-grant-wrong-to-kind",
            WEB,
            froms=[(group, "Gateway", INFRA)],
            tos=[("", "Service", "certificate")],
        ),
        reference_grant(
            "reference-grant-wrong-to-name",
            WEB,
            froms=[(group, "Gateway", INFRA)],
            tos=[("", "Secret", "not-the-certificate-youre-looking-for")],
        ),
    ]
    config = conformance(_CERTIFICATE, _secret_gateway(name), *grants, gateways=(name,))
    _listeners_match(config, name, [{"name": "https", "conditions": [("ResolvedRefs", "False", "RefNotPermitted")]}])


def test_GatewaySecretMissingReferenceGrant():
    name = "gateway-secret-missing-reference-grant"
    config = conformance(_CERTIFICATE, _secret_gateway(name), gateways=(name,))
    _listeners_match(config, name, [{"name": "https", "conditions": [("ResolvedRefs", "False", "RefNotPermitted")]}])


def test_GatewaySecretReferenceGrantAllInNamespace():
    name = "gateway-secret-reference-grant-all-in-namespace"
    grant = reference_grant(
        "reference-grant-all-in-namespace",
        WEB,
        froms=[("gateway.networking.k8s.io", "Gateway", INFRA)],
        tos=[("", "Secret")],
    )
    config = conformance(_CERTIFICATE, _secret_gateway(name), grant, gateways=(name,))
    _listeners_match(
        config,
        name,
        [{"name": "https", "conditions": [("Programmed", "True", "Programmed"), ("ResolvedRefs", "True", "")]}],
    )
    assert config.listeners[8443].certificates == {"": (WEB, "certificate")}


def test_GatewaySecretReferenceGrantSpecific():
    name = "gateway-secret-reference-grant-specific"
    grant = reference_grant(
        "reference-grant-specific",
        WEB,
        froms=[("gateway.networking.k8s.io", "Gateway", INFRA)],
        tos=[("", "Secret", "certificate")],
    )
    config = conformance(_CERTIFICATE, _secret_gateway(name), grant, gateways=(name,))
    _listeners_match(
        config,
        name,
        [{"name": "https", "conditions": [("Programmed", "True", "Programmed"), ("ResolvedRefs", "True", "")]}],
    )


def _selected(name: str, *listeners: dict) -> dict:
    return gateway(name, *listeners)


_INFRA_ONLY = {"matchLabels": {"kubernetes.io/metadata.name": INFRA}}


def test_GatewayWithAttachedRoutes():
    one = gateway(
        "gateway-with-one-attached-route",
        listener("http", 80, kinds=[{"kind": "HTTPRoute"}], namespaces="Selector", selector=_INFRA_ONLY),
    )
    two = gateway(
        "gateway-with-two-attached-routes",
        listener(
            "http",
            80,
            hostname="foo.example.com",
            kinds=[{"kind": "HTTPRoute"}],
            namespaces="Selector",
            selector=_INFRA_ONLY,
        ),
    )
    unresolved = gateway(
        "unresolved-gateway-with-one-attached-unresolved-route",
        listener(
            "tls",
            443,
            "HTTPS",
            kinds=[{"kind": "HTTPRoute"}],
            namespaces="Selector",
            selector=_INFRA_ONLY,
            tls={"certificateRefs": [certificate_ref("does-not-exist")], "mode": "Terminate"},
        ),
    )
    routes = [
        http_route(
            "http-route-1",
            rule(backends=[backend(V1)]),
            parents=[parent("gateway-with-one-attached-route", INFRA, kind="Gateway")],
        ),
        http_route(
            "http-route-2",
            rule(backends=[backend(V1)]),
            parents=[parent("gateway-with-two-attached-routes", INFRA, kind="Gateway")],
        ),
        http_route(
            "http-route-3",
            rule(backends=[backend(V1)]),
            parents=[parent("gateway-with-two-attached-routes", INFRA, kind="Gateway")],
        ),
        http_route(
            "http-route-not-accepted",
            rule(backends=[backend(V1)]),
            hostnames=["not-accepted.test.com"],
            parents=[parent("gateway-with-two-attached-routes", INFRA, kind="Gateway")],
        ),
        http_route(
            "http-route-4",
            rule(backends=[backend("does-not-exist")]),
            parents=[
                parent("unresolved-gateway-with-one-attached-unresolved-route", INFRA, kind="Gateway", section="tls")
            ],
        ),
    ]
    config = conformance(
        one,
        two,
        unresolved,
        *routes,
        gateways=(
            "gateway-with-one-attached-route",
            "gateway-with-two-attached-routes",
            "unresolved-gateway-with-one-attached-unresolved-route",
        ),
    )
    ok = [("Accepted", "True", ""), ("ResolvedRefs", "True", "")]
    _listeners_match(config, "gateway-with-one-attached-route", [{"name": "http", "attached": 1, "conditions": ok}])
    _listeners_match(config, "gateway-with-two-attached-routes", [{"name": "http", "attached": 2, "conditions": ok}])
    assert route_has(
        config,
        "http-route-not-accepted",
        "gateway-with-two-attached-routes",
        "Accepted",
        "False",
        "NoMatchingListenerHostname",
    )
    _listeners_match(
        config,
        "unresolved-gateway-with-one-attached-unresolved-route",
        [{"name": "tls", "attached": 1, "conditions": [("Programmed", "False", ""), ("ResolvedRefs", "False", "")]}],
    )
    assert route_has(
        config, "http-route-4", "unresolved-gateway-with-one-attached-unresolved-route", "ResolvedRefs", "False"
    )


def test_GatewayWithAttachedRoutesWithPort8080():
    gw = gateway(
        "gateway-with-two-listeners-and-one-attached-route",
        listener("http-unattached", 8080, kinds=[{"kind": "HTTPRoute"}], namespaces="All"),
        listener("http", 80, kinds=[{"kind": "HTTPRoute"}], namespaces="All"),
    )
    route = http_route(
        "http-route-4-port-8080",
        rule(backends=[backend(V1)]),
        parents=[parent("gateway-with-two-listeners-and-one-attached-route", INFRA, kind="Gateway", section="http")],
    )
    config = conformance(gw, route, gateways=("gateway-with-two-listeners-and-one-attached-route",))
    ok = [("Accepted", "True", ""), ("ResolvedRefs", "True", "")]
    _listeners_match(
        config,
        "gateway-with-two-listeners-and-one-attached-route",
        [
            {"name": "http-unattached", "attached": 0, "conditions": ok},
            {"name": "http", "attached": 1, "conditions": ok},
        ],
    )
    assert sorted(config.listeners) == [8080, 16080]


def test_GatewayModifyListeners():
    secure = listener(
        "https",
        443,
        "HTTPS",
        hostname="secure.test.com",
        namespaces="All",
        certificates=[certificate_ref("tls-validity-checks-certificate", INFRA)],
    )
    route_1 = http_route(
        "http-route-1", rule(backends=[backend(V1)]), parents=[parent("gateway-add-listener", INFRA, kind="Gateway")]
    )
    route_2 = http_route(
        "http-route-2", rule(backends=[backend(V1)]), parents=[parent("gateway-remove-listener", INFRA, kind="Gateway")]
    )
    ok = [("Accepted", "True", ""), ("ResolvedRefs", "True", "")]
    # should be able to add a listener that then becomes available for routing traffic
    before = conformance(gateway("gateway-add-listener", secure), route_1, gateways=("gateway-add-listener",))
    assert list(before.listeners) == [8443]
    added = gateway(
        "gateway-add-listener", secure, listener("http", 80, hostname="data.test.com", namespaces="All"), generation=2
    )
    config = conformance(added, route_1, gateways=("gateway-add-listener",))
    _listeners_match(
        config,
        "gateway-add-listener",
        [{"name": "https", "attached": 1, "conditions": ok}, {"name": "http", "attached": 1, "conditions": ok}],
    )
    assert {c.observed_generation for c in gateway_status(config, "gateway-add-listener").conditions} == {2}
    expect(config, [({"host": "data.test.com"}, {"backend": V1})], port=80)
    # should be able to remove listeners, which would then stop routing the relevant traffic
    both = gateway("gateway-remove-listener", secure, listener("http", 80, namespaces="All"))
    config = conformance(both, route_2, gateways=("gateway-remove-listener",))
    expect(config, [({"host": "secure.test.com"}, {"backend": V1})], port=443)
    removed = gateway("gateway-remove-listener", listener("http", 80, namespaces="All"), generation=2)
    config = conformance(removed, route_2, gateways=("gateway-remove-listener",))
    _listeners_match(config, "gateway-remove-listener", [{"name": "http", "attached": 1, "conditions": ok}])
    assert list(config.listeners) == [8080]
    expect(config, [({"host": "secure.test.com"}, {"status": 0})], port=443)  # nothing listens on 443 any more


def test_GatewayObservedGenerationBump():
    first = listener("http", 80, hostname="bar.com", namespaces="All")
    config = conformance(
        gateway("gateway-observed-generation-bump", first), gateways=("gateway-observed-generation-bump",)
    )
    status = gateway_status(config, "gateway-observed-generation-bump")
    assert {c.observed_generation for c in status.conditions} == {1}
    bumped = gateway(
        "gateway-observed-generation-bump",
        first,
        listener("alternate", 80, hostname="foo.com", namespaces="All"),
        generation=2,
    )
    after = conformance(bumped, gateways=("gateway-observed-generation-bump",))
    status = gateway_status(after, "gateway-observed-generation-bump")
    assert {c.observed_generation for c in status.conditions} == {2}
    assert {c.observed_generation for item in status.listeners for c in item.conditions} == {2}
    assert after.checksum != config.checksum


def test_GatewayNameMaximumLength():
    name = "gateway-name-maximum-length-" + "a" * (253 - len("gateway-name-maximum-length-"))
    config = conformance(
        gateway(
            name, listener("http", 80, namespaces=None), annotations={"gateway-api/skip-this-for-readiness": "true"}
        ),
        gateways=(name,),
    )
    status = gateway_status(config, name)
    assert has(status.conditions, "Accepted", "True") and has(status.conditions, "Programmed", "True")
    assert all(c.observed_generation == 1 for c in status.conditions)


def test_GatewayInvalidParametersRef():
    gw = gateway(
        "gateway-invalid-parameters-ref",
        listener("http", 80, namespaces=None),
        infrastructure={"parametersRef": {"group": "invalid.io", "kind": "InvalidParameters", "name": "invalid"}},
    )
    config = conformance(gw, gateways=("gateway-invalid-parameters-ref",))
    status = gateway_status(config, "gateway-invalid-parameters-ref")
    assert has(status.conditions, "Accepted", "False", "InvalidParameters")
    assert config.listeners == {}


def test_GatewayOptionalAddressValue():
    gw = gateway(
        "gateway-without-address-value", listener("http", 8080, namespaces=None), addresses=[{"type": "IPAddress"}]
    )
    config = conformance(gw, gateways=("gateway-without-address-value",))
    status = gateway_status(config, "gateway-without-address-value")
    assert has(status.conditions, "Accepted", "True") and has(status.conditions, "Programmed", "True")
    assert list(config.listeners) == [16080]


@pytest.mark.xfail(
    strict=True,
    reason="static addresses are not assigned: the proxy is reached at its Service's "
    "addresses (Programmed stays False with AddressNotUsable)",
)
def test_GatewayStaticAddresses():
    def gw(*addresses: dict) -> dict:
        return gateway("gateway-static-addresses", listener("http", 8080, namespaces=None), addresses=list(addresses))

    invalid = {"type": "test/fake-invalid-type", "value": "fake address teehee!"}
    unusable = {"value": "192.0.2.1"}
    usable = {"value": "10.0.0.10"}
    config = conformance(gw(invalid, unusable, usable), gateways=("gateway-static-addresses",))
    assert has(gateway_status(config, "gateway-static-addresses").conditions, "Accepted", "False", "UnsupportedAddress")
    config = conformance(gw(unusable, usable), gateways=("gateway-static-addresses",))
    status = gateway_status(config, "gateway-static-addresses")
    assert has(status.conditions, "Accepted", "True", "Accepted")
    assert has(status.conditions, "Programmed", "False", "AddressNotUsable")
    config = conformance(gw(usable), gateways=("gateway-static-addresses",))
    assert has(gateway_status(config, "gateway-static-addresses").conditions, "Programmed", "True")


def test_GatewayClassObservedGenerationBump():
    name = "gatewayclass-observed-generation-bump"
    for generation, description in ((1, "old"), (2, "new")):
        config = conformance(gateway_class(name, generation=generation, description=description), gateways=())
        status = config.gateway_status.classes[name]
        assert has(status.conditions, "Accepted", "True", "Accepted")
        assert {c.observed_generation for c in status.conditions} == {generation}
        assert "HTTPRoute" in status.supported_features
        assert list(status.supported_features) == sorted(status.supported_features)
