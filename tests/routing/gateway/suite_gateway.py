"""The upstream conformance suite's Gateway tests (conformance/tests/gateway-*.go and
gatewayclass-observed-generation-bump.go) as data (scenario.py): listener and Gateway status, and requests.

Client certificate validation, the Gateway's client certificate to backends (tls.backend, with
BackendTLSPolicy), infrastructure propagation and ListenerSets are out of scope and have no reproduction
here; the BackendTLSPolicy tests are in suite_backendtls.py.
"""

from __future__ import annotations

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
from .scenario import ConformanceTest, Step
from .status_checks import ClassAccepted, GatewayCondition, RouteCondition, accepted, generations, listeners
from .status_checks import ListenerExpectation as L

V1 = "infra-backend-v1"
TESTS: list[ConformanceTest] = []
_OK = (("Accepted", "True", ""), ("ResolvedRefs", "True", ""))


def _test(name: str, *steps: Step, **options: object) -> None:
    TESTS.append(ConformanceTest(name, steps, **options))  # type: ignore[arg-type]


def _listener_isolation() -> list[Step]:
    sections = ("empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com")

    def isolation_gateway(name: str) -> dict:
        return gateway(
            name,
            listener("empty-hostname", 80, namespaces="All"),
            listener("wildcard-example-com", 80, hostname="*.example.com", namespaces="All"),
            listener("wildcard-foo-example-com", 80, hostname="*.foo.example.com", namespaces="All"),
            listener("abc-foo-example-com", 80, hostname="abc.foo.example.com", namespaces="All"),
        )

    def routes(suffix: str, gateway_name: str, hostnames: list[str] | None) -> tuple[dict, ...]:
        return tuple(
            http_route(
                f"attaches-to-{section}{suffix}",
                rule(match(f"/{section}"), backends=[backend(V1)]),
                parents=[parent(gateway_name, INFRA, section=section)],
                hostnames=hostnames,
            )
            for section in sections
        )

    cases = (
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
    )
    steps = []
    # hostnames are configured only in listeners; intersecting hostnames in listeners and HTTPRoutes
    for name, suffix, hostnames in (
        ("http-listener-isolation", "", None),
        (
            "http-listener-isolation-with-hostname-intersection",
            "-with-hostname-intersection",
            ["bar.com", "*.example.com", "*.foo.example.com", "abc.foo.example.com"],
        ),
    ):
        attached = routes(suffix, name, hostnames)
        steps.append(Step(
            objects=(isolation_gateway(name), *attached),
            gateways=(name,),
            status_checks=(accepted(name, *(r["metadata"]["name"] for r in attached)),),
            cases=cases,
        ))
    return steps


_test("GatewayHTTPListenerIsolation", *_listener_isolation())

_test("GatewayListenerUnsupportedProtocol", Step(
    objects=(
        gateway(
            "gateway-only-unsupported-protocols",
            listener("invalid", 1111, "INVALID", namespaces=None),
            annotations={"gateway-api/skip-this-for-readiness": "true"},
        ),
        gateway(
            "gateway-supported-and-unsupported-protocols",
            listener("http", 80, namespaces=None),
            listener("invalid", 1111, "INVALID", namespaces=None),
        ),
    ),
    gateways=("gateway-only-unsupported-protocols", "gateway-supported-and-unsupported-protocols"),
    status_checks=(
        GatewayCondition("gateway-only-unsupported-protocols", "Accepted", "False", "ListenersNotValid"),
        listeners(
            "gateway-only-unsupported-protocols",
            L("invalid", kinds=(), conditions=(("Accepted", "False", "UnsupportedProtocol"),)),
        ),
        GatewayCondition("gateway-supported-and-unsupported-protocols", "Accepted", "True", "ListenersNotValid"),
        listeners(
            "gateway-supported-and-unsupported-protocols",
            L("http", conditions=(("Accepted", "True", "Accepted"),)),
            L("invalid", kinds=(), conditions=(("Accepted", "False", "UnsupportedProtocol"),)),
        ),
    ),
    ports=(80,),  # the HTTP listener serves; nothing opens port 1111
))

_test("GatewayInvalidRouteKind", Step(
    objects=(
        gateway(
            "gateway-only-invalid-route-kind",
            listener("http", 80, namespaces="All", kinds=[{"kind": "InvalidRoute"}]),
        ),
        gateway(
            "gateway-supported-and-invalid-route-kind",
            listener("http", 80, namespaces="All", kinds=[{"kind": "InvalidRoute"}, {"kind": "HTTPRoute"}]),
        ),
    ),
    gateways=("gateway-only-invalid-route-kind", "gateway-supported-and-invalid-route-kind"),
    status_checks=(
        listeners(
            "gateway-only-invalid-route-kind",
            L("http", kinds=(), conditions=(("ResolvedRefs", "False", "InvalidRouteKinds"),)),
        ),
        listeners(
            "gateway-supported-and-invalid-route-kind",
            L("http", conditions=(("ResolvedRefs", "False", "InvalidRouteKinds"),)),
        ),
    ),
))


def _invalid_tls_configuration() -> list[Step]:
    """One step per upstream sub-test: a listener whose certificateRef cannot be used gets InvalidCertificateRef
    and nothing is served."""
    malformed = tls_secret("malformed-certificate", crt=b"Hello world\n", key=b"Hello world\n")
    refs = (
        ("gateway-certificate-nonexistent-secret", certificate_ref("nonexistent-certificate")),
        (
            "gateway-certificate-unsupported-group",
            certificate_ref("tls-validity-checks-certificate", group="wrong.group.company.io"),
        ),
        ("gateway-certificate-unsupported-kind", certificate_ref("tls-validity-checks-certificate", kind="WrongKind")),
        ("gateway-certificate-malformed-secret", certificate_ref("malformed-certificate")),
    )
    return [
        Step(
            objects=(malformed, gateway(name, listener("https", 443, "HTTPS", namespaces="All", certificates=[ref]))),
            gateways=(name,),
            status_checks=(
                listeners(name, L("https", conditions=(("ResolvedRefs", "False", "InvalidCertificateRef"),))),
            ),
            ports=(),  # no certificate: nothing served
        )
        for name, ref in refs
    ]


_test("GatewayInvalidTLSConfiguration", *_invalid_tls_configuration())


def _secret_gateway(name: str) -> dict:
    return gateway(
        name, listener("https", 443, "HTTPS", namespaces="All", certificates=[certificate_ref("certificate", WEB)])
    )


_CERTIFICATE = tls_secret("certificate", WEB)
_GROUP = "gateway.networking.k8s.io"


def _secret_invalid_reference_grant() -> Step:
    name = "gateway-secret-invalid-reference-grant"

    def grant(grant_name: str, namespace: str, froms: tuple[str, str, str], tos: tuple[str, ...]) -> dict:
        return reference_grant(grant_name, namespace, froms=[froms], tos=[tos])  # type: ignore[list-item]

    gateway_ref = (_GROUP, "Gateway", INFRA)
    grants = (
        grant("reference-grant-wrong-namespace", "gateway-conformance-app-backend", gateway_ref,
              ("", "Secret", "certificate")),
        grant("reference-grant-wrong-from-group", WEB, ("not-the-group-youre-looking-for", "Gateway", INFRA),
              ("", "Secret", "certificate")),
        grant("reference-grant-wrong-from-kind", WEB, (_GROUP, "HTTPRoute", INFRA), ("", "Secret", "certificate")),
        grant("reference-grant-wrong-from-namespace", WEB, (_GROUP, "Gateway", "not-the-namespace-youre-looking-for"),
              ("", "Secret", "certificate")),
        grant("reference-grant-wrong-to-group", WEB, gateway_ref,
              ("not-the-group-youre-looking-for", "Secret", "not-the-certificate-youre-looking-for")),
        grant("reference-grant-wrong-to-kind", WEB, gateway_ref, ("", "Service", "certificate")),
        grant("reference-grant-wrong-to-name", WEB, gateway_ref,
              ("", "Secret", "not-the-certificate-youre-looking-for")),
    )
    return Step(
        objects=(_CERTIFICATE, _secret_gateway(name), *grants),
        gateways=(name,),
        status_checks=(listeners(name, L("https", conditions=(("ResolvedRefs", "False", "RefNotPermitted"),))),),
    )


_test("GatewaySecretInvalidReferenceGrant", _secret_invalid_reference_grant())

_test("GatewaySecretMissingReferenceGrant", Step(
    objects=(_CERTIFICATE, _secret_gateway("gateway-secret-missing-reference-grant")),
    gateways=("gateway-secret-missing-reference-grant",),
    status_checks=(
        listeners(
            "gateway-secret-missing-reference-grant",
            L("https", conditions=(("ResolvedRefs", "False", "RefNotPermitted"),)),
        ),
    ),
))


def _secret_reference_grant(name: str, grant_name: str, *to: str) -> Step:
    """GatewaySecretReferenceGrantAllInNamespace / ...Specific: the listener is Programmed with the
    certificate of another namespace, and serves it."""

    def served(config, previous) -> None:  # type: ignore[no-untyped-def]
        assert config.listeners[8443].certificates == {"": (WEB, "certificate")}

    grant = reference_grant(grant_name, WEB, froms=[(_GROUP, "Gateway", INFRA)], tos=[("", "Secret", *to)])
    return Step(
        objects=(_CERTIFICATE, _secret_gateway(name), grant),
        gateways=(name,),
        status_checks=(
            listeners(
                name, L("https", conditions=(("Programmed", "True", "Programmed"), ("ResolvedRefs", "True", "")))
            ),
        ),
        ports=(443,),
        routing=served,
    )


_test("GatewaySecretReferenceGrantAllInNamespace", _secret_reference_grant(
    "gateway-secret-reference-grant-all-in-namespace", "reference-grant-all-in-namespace"))
_test("GatewaySecretReferenceGrantSpecific", _secret_reference_grant(
    "gateway-secret-reference-grant-specific", "reference-grant-specific", "certificate"))

_INFRA_ONLY = {"matchLabels": {"kubernetes.io/metadata.name": INFRA}}


def _with_attached_routes() -> Step:
    one = gateway(
        "gateway-with-one-attached-route",
        listener("http", 80, kinds=[{"kind": "HTTPRoute"}], namespaces="Selector", selector=_INFRA_ONLY),
    )
    two = gateway(
        "gateway-with-two-attached-routes",
        listener(
            "http", 80, hostname="foo.example.com", kinds=[{"kind": "HTTPRoute"}], namespaces="Selector",
            selector=_INFRA_ONLY,
        ),
    )
    unresolved = gateway(
        "unresolved-gateway-with-one-attached-unresolved-route",
        listener(
            "tls", 443, "HTTPS", kinds=[{"kind": "HTTPRoute"}], namespaces="Selector", selector=_INFRA_ONLY,
            tls={"certificateRefs": [certificate_ref("does-not-exist")], "mode": "Terminate"},
        ),
    )

    def ref(name: str, **options: str) -> list[dict]:
        return [parent(name, INFRA, kind="Gateway", **options)]

    routes = (
        http_route("http-route-1", rule(backends=[backend(V1)]), parents=ref("gateway-with-one-attached-route")),
        http_route("http-route-2", rule(backends=[backend(V1)]), parents=ref("gateway-with-two-attached-routes")),
        http_route("http-route-3", rule(backends=[backend(V1)]), parents=ref("gateway-with-two-attached-routes")),
        http_route(
            "http-route-not-accepted",
            rule(backends=[backend(V1)]),
            hostnames=["not-accepted.test.com"],
            parents=ref("gateway-with-two-attached-routes"),
        ),
        http_route(
            "http-route-4",
            rule(backends=[backend("does-not-exist")]),
            parents=ref("unresolved-gateway-with-one-attached-unresolved-route", section="tls"),
        ),
    )
    return Step(
        objects=(one, two, unresolved, *routes),
        gateways=(
            "gateway-with-one-attached-route",
            "gateway-with-two-attached-routes",
            "unresolved-gateway-with-one-attached-unresolved-route",
        ),
        status_checks=(
            listeners("gateway-with-one-attached-route", L("http", attached=1, conditions=_OK)),
            listeners("gateway-with-two-attached-routes", L("http", attached=2, conditions=_OK)),
            RouteCondition(
                "http-route-not-accepted", "gateway-with-two-attached-routes", "Accepted", "False",
                "NoMatchingListenerHostname",
            ),
            listeners(
                "unresolved-gateway-with-one-attached-unresolved-route",
                L("tls", attached=1, conditions=(("Programmed", "False", ""), ("ResolvedRefs", "False", ""))),
            ),
            RouteCondition("http-route-4", "unresolved-gateway-with-one-attached-unresolved-route", "ResolvedRefs",
                           "False"),
        ),
    )


_test("GatewayWithAttachedRoutes", _with_attached_routes())

_test("GatewayWithAttachedRoutesWithPort8080", Step(
    objects=(
        gateway(
            "gateway-with-two-listeners-and-one-attached-route",
            listener("http-unattached", 8080, kinds=[{"kind": "HTTPRoute"}], namespaces="All"),
            listener("http", 80, kinds=[{"kind": "HTTPRoute"}], namespaces="All"),
        ),
        http_route(
            "http-route-4-port-8080",
            rule(backends=[backend(V1)]),
            parents=[
                parent("gateway-with-two-listeners-and-one-attached-route", INFRA, kind="Gateway", section="http")
            ],
        ),
    ),
    gateways=("gateway-with-two-listeners-and-one-attached-route",),
    status_checks=(
        listeners(
            "gateway-with-two-listeners-and-one-attached-route",
            L("http-unattached", attached=0, conditions=_OK),
            L("http", attached=1, conditions=_OK),
        ),
    ),
    ports=(80, 8080),
))


def _modify_listeners() -> list[Step]:
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
    added = gateway(
        "gateway-add-listener", secure, listener("http", 80, hostname="data.test.com", namespaces="All"), generation=2
    )
    return [
        # should be able to add a listener that then becomes available for routing traffic
        Step(objects=(gateway("gateway-add-listener", secure), route_1), gateways=("gateway-add-listener",),
             ports=(443,)),
        Step(
            objects=(added, route_1),
            gateways=("gateway-add-listener",),
            status_checks=(
                listeners(
                    "gateway-add-listener",
                    L("https", attached=1, conditions=_OK),
                    L("http", attached=1, conditions=_OK),
                ),
                generations("Gateway", "gateway-add-listener", 2),
            ),
            cases=(({"host": "data.test.com", "port": 80}, {"backend": V1}),),
        ),
        # should be able to remove listeners, which would then stop routing the relevant traffic
        Step(
            objects=(gateway("gateway-remove-listener", secure, listener("http", 80, namespaces="All")), route_2),
            gateways=("gateway-remove-listener",),
            cases=(({"host": "secure.test.com", "port": 443}, {"backend": V1}),),
        ),
        Step(
            objects=(gateway("gateway-remove-listener", listener("http", 80, namespaces="All"), generation=2), route_2),
            gateways=("gateway-remove-listener",),
            status_checks=(listeners("gateway-remove-listener", L("http", attached=1, conditions=_OK)),),
            ports=(80,),
            cases=(({"host": "secure.test.com", "port": 443}, {"status": 0}),),  # nothing listens on 443 any more
        ),
    ]


_test("GatewayModifyListeners", *_modify_listeners())


def _gateway_observed_generation_bump() -> list[Step]:
    name = "gateway-observed-generation-bump"
    first = listener("http", 80, hostname="bar.com", namespaces="All")
    bumped = gateway(name, first, listener("alternate", 80, hostname="foo.com", namespaces="All"), generation=2)

    def changed(config, previous) -> None:  # type: ignore[no-untyped-def]
        assert previous is not None and config.checksum != previous.checksum

    return [
        Step(objects=(gateway(name, first),), gateways=(name,), status_checks=(generations("Gateway", name, 1),)),
        Step(
            objects=(bumped,),
            gateways=(name,),
            status_checks=(generations("Gateway", name, 2), generations("Gateway", name, 2, listeners=True)),
            routing=changed,
        ),
    ]


_test("GatewayObservedGenerationBump", *_gateway_observed_generation_bump())

_MAXIMUM = "gateway-name-maximum-length-" + "a" * (253 - len("gateway-name-maximum-length-"))
_test("GatewayNameMaximumLength", Step(
    objects=(
        gateway(
            _MAXIMUM, listener("http", 80, namespaces=None), annotations={"gateway-api/skip-this-for-readiness": "true"}
        ),
    ),
    gateways=(_MAXIMUM,),
    status_checks=(
        GatewayCondition(_MAXIMUM, "Accepted", "True"),
        GatewayCondition(_MAXIMUM, "Programmed", "True"),
        generations("Gateway", _MAXIMUM, 1),
    ),
))

_test("GatewayInvalidParametersRef", Step(
    objects=(
        gateway(
            "gateway-invalid-parameters-ref",
            listener("http", 80, namespaces=None),
            infrastructure={"parametersRef": {"group": "invalid.io", "kind": "InvalidParameters", "name": "invalid"}},
        ),
    ),
    gateways=("gateway-invalid-parameters-ref",),
    status_checks=(GatewayCondition("gateway-invalid-parameters-ref", "Accepted", "False", "InvalidParameters"),),
    ports=(),
))

_test("GatewayOptionalAddressValue", Step(
    objects=(
        gateway(
            "gateway-without-address-value", listener("http", 8080, namespaces=None), addresses=[{"type": "IPAddress"}]
        ),
    ),
    gateways=("gateway-without-address-value",),
    status_checks=(
        GatewayCondition("gateway-without-address-value", "Accepted", "True"),
        GatewayCondition("gateway-without-address-value", "Programmed", "True"),
    ),
    ports=(8080,),
))


def _static_addresses() -> list[Step]:
    def gw(*addresses: dict) -> dict:
        return gateway("gateway-static-addresses", listener("http", 8080, namespaces=None), addresses=list(addresses))

    invalid = {"type": "test/fake-invalid-type", "value": "fake address teehee!"}
    unusable = {"value": "192.0.2.1"}
    usable = {"value": "10.0.0.10"}
    selected = ("gateway-static-addresses",)
    return [
        Step(
            objects=(gw(invalid, unusable, usable),),
            gateways=selected,
            status_checks=(GatewayCondition("gateway-static-addresses", "Accepted", "False", "UnsupportedAddress"),),
        ),
        Step(
            objects=(gw(unusable, usable),),
            gateways=selected,
            status_checks=(
                GatewayCondition("gateway-static-addresses", "Accepted", "True", "Accepted"),
                GatewayCondition("gateway-static-addresses", "Programmed", "False", "AddressNotUsable"),
            ),
        ),
        Step(
            objects=(gw(usable),),
            gateways=selected,
            status_checks=(GatewayCondition("gateway-static-addresses", "Programmed", "True"),),
        ),
    ]


_test(
    "GatewayStaticAddresses",
    *_static_addresses(),
    xfail="static addresses are not assigned: the proxy is reached at its Service's addresses (Programmed stays "
    "False with AddressNotUsable)",
)

_CLASS = "gatewayclass-observed-generation-bump"
_test("GatewayClassObservedGenerationBump", *(
    Step(
        objects=(gateway_class(_CLASS, generation=generation, description=description),),
        gateways=None,
        status_checks=(ClassAccepted(_CLASS, generation),),
    )
    for generation, description in ((1, "old"), (2, "new"))
))
