"""The upstream conformance suite's HTTPRoute tests (conformance/tests/httproute-*.go) as data (scenario.py).

Each test is named after its upstream test and carries that test's manifests (same shapes and names, on
the base manifests), the requests it makes with the answers it expects (which backend, what the filters
make of the request: redirect Location, rewritten path and host, edited headers; mirrors, timeouts), and
the status conditions it waits for.
"""

from __future__ import annotations

from proxy.routing.model import Config, Timeouts
from proxy.routing.policies import HTTP2

from .objects import (
    APP,
    INFRA,
    WEB,
    backend,
    cors,
    endpoint_slice,
    gateway,
    header_filter,
    http_route,
    listener,
    match,
    mirror,
    parent,
    pod_addresses,
    redirect,
    reference_grant,
    rewrite,
    rule,
    service,
)
from .scenario import ConformanceTest, Distribution, Step, at
from .status_checks import (
    AttachedRoutes,
    NotAttached,
    RouteCondition,
    accepted,
    generations,
    listeners,
)
from .status_checks import ListenerExpectation as L

V1, V2, V3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"
SAME = parent("same-namespace")
TESTS: list[ConformanceTest] = []


def _v(name: str) -> list:
    return [backend(name, 8080)]


def _test(name: str, *steps: Step, **options: object) -> None:
    TESTS.append(ConformanceTest(name, steps, **options))  # type: ignore[arg-type]


def _same(route: dict, cases: tuple | list, *more: dict, resolved: bool = True) -> Step:
    """The common shape: routes on the same-namespace Gateway, all Accepted, and requests to port 80."""
    routes = (route, *more)
    return Step(
        objects=routes,
        status_checks=(accepted("same-namespace", *(r["metadata"]["name"] for r in routes), resolved=resolved),),
        cases=tuple(cases),
    )


# ---------------------------------------------------------------------- matching

_test("HTTPRouteSimpleSameNamespace", _same(
    http_route("gateway-conformance-infra-test", rule(backends=_v(V1)), parents=[SAME]),
    [({"path": "/"}, {"backend": V1, "namespace": INFRA})],
))

_test("HTTPRouteExactPathMatching", _same(
    http_route(
        "exact-matching",
        rule(match("/one", type="Exact"), backends=_v(V1)),
        rule(match("/two", type="Exact"), backends=_v(V2)),
        parents=[SAME],
    ),
    [
        ({"path": "/one"}, {"backend": V1}),
        ({"path": "/two"}, {"backend": V2}),
        ({"path": "/"}, {"status": 404}),
        ({"path": "/one/example"}, {"status": 404}),
        ({"path": "/two/"}, {"status": 404}),
        ({"path": "/Two"}, {"status": 404}),
    ],
))

_test("HTTPRouteHeaderMatching", _same(
    http_route(
        "header-matching",
        rule(match(headers=[("version", "one")]), backends=_v(V1)),
        rule(match(headers=[("version", "two")]), backends=_v(V2)),
        rule(match(headers=[("version", "two"), ("color", "orange")]), backends=_v(V1)),
        rule(match(headers=[("color", "blue")]), match(headers=[("color", "green")]), backends=_v(V1)),
        rule(match(headers=[("color", "red")]), match(headers=[("color", "yellow")]), backends=_v(V2)),
        parents=[SAME],
    ),
    [
        ({"headers": {"Version": "one"}}, {"backend": V1}),
        ({"headers": {"Version": "two"}}, {"backend": V2}),
        ({"headers": {"Version": "two", "Color": "orange"}}, {"backend": V1}),
        ({"headers": {"Version": "two", "Color": "blue"}}, {"backend": V2}),
        ({"headers": {"Color": "orange"}}, {"status": 404}),
        ({"headers": {"Some-Other-Header": "one"}}, {"status": 404}),
        ({"headers": {"Color": "blue"}}, {"backend": V1}),
        ({"headers": {"Color": "green"}}, {"backend": V1}),
        ({"headers": {"Color": "red"}}, {"backend": V2}),
        ({"headers": {"Color": "yellow"}}, {"backend": V2}),
        ({"headers": {"Color": "purple"}}, {"status": 404}),
    ],
))


def _hostname_intersection() -> list[Step]:
    intersection = gateway(
        "httproute-hostname-intersection",
        listener("listener-1", 80, hostname="very.specific.com"),
        listener("listener-2", 80, hostname="*.wildcard.io"),
        listener("listener-3", 80, hostname="*.anotherwildcard.io"),
    )
    everything = gateway("httproute-hostname-intersection-all", listener("listener-1", 80))
    ref = parent("httproute-hostname-intersection", INFRA)
    routes = (
        http_route(
            "specific-host-matches-listener-specific-host",
            rule(match("/s1"), backends=_v(V1)),
            parents=[ref],
            hostnames=["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"],
        ),
        http_route(
            "specific-host-matches-listener-wildcard-host",
            rule(match("/s2"), backends=_v(V2)),
            parents=[ref],
            hostnames=["non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"],
        ),
        http_route(
            "wildcard-host-matches-listener-specific-host",
            rule(match("/s3"), backends=_v(V3)),
            parents=[ref],
            hostnames=["non.matching.com", "*.specific.com"],
        ),
        http_route(
            "wildcard-host-matches-listener-wildcard-host",
            rule(match("/s4"), backends=_v(V1)),
            parents=[ref],
            hostnames=["*.anotherwildcard.io"],
        ),
        http_route(
            "no-intersecting-hosts",
            rule(match("/s5"), backends=_v(V2)),
            parents=[ref],
            hostnames=["specific.but.wrong.com", "wildcard.io"],
        ),
        http_route(
            "httproute-hostname-intersection-all",
            rule(backends=_v(V2)),
            parents=[parent("httproute-hostname-intersection-all", INFRA)],
            hostnames=["first.com", "sub.first.com", "second.com", "sub.second.com"],
        ),
    )
    objects = (intersection, everything, *routes)
    # HTTPRoutes that do intersect with listener hostnames; HTTPRoutes that do not; HTTPRoutes have to be
    # counted in AttachedRoutes only if they are Accepted.
    intersecting = Step(
        objects=objects,
        gateways=("httproute-hostname-intersection",),
        status_checks=(
            accepted(
                "httproute-hostname-intersection",
                "specific-host-matches-listener-specific-host",
                "specific-host-matches-listener-wildcard-host",
                "wildcard-host-matches-listener-specific-host",
                "wildcard-host-matches-listener-wildcard-host",
            ),
            RouteCondition(
                "no-intersecting-hosts", "httproute-hostname-intersection", "Accepted", "False",
                "NoMatchingListenerHostname",
            ),
            listeners(
                "httproute-hostname-intersection",
                L("listener-1", attached=2),
                L("listener-2", attached=1),
                L("listener-3", attached=1),
            ),
        ),
        cases=(
            ({"host": "very.specific.com", "path": "/s1"}, {"backend": V1}),
            ({"host": "very.specific.com:1234", "path": "/s1"}, {"backend": V1}),
            ({"host": "non.matching.com", "path": "/s1"}, {"status": 404}),
            ({"host": "foo.nonmatchingwildcard.io", "path": "/s1"}, {"status": 404}),
            ({"host": "foo.wildcard.io", "path": "/s1"}, {"status": 404}),
            ({"host": "very.specific.com", "path": "/non-matching-prefix"}, {"status": 404}),
            ({"host": "foo.wildcard.io", "path": "/s2"}, {"backend": V2}),
            ({"host": "bar.wildcard.io", "path": "/s2"}, {"backend": V2}),
            ({"host": "foo.bar.wildcard.io", "path": "/s2"}, {"backend": V2}),
            ({"host": "non.matching.com", "path": "/s2"}, {"status": 404}),
            ({"host": "wildcard.io", "path": "/s2"}, {"status": 404}),
            ({"host": "very.specific.com", "path": "/s2"}, {"status": 404}),
            ({"host": "foo.wildcard.io", "path": "/non-matching-prefix"}, {"status": 404}),
            ({"host": "very.specific.com", "path": "/s3"}, {"backend": V3}),
            ({"host": "non.matching.com", "path": "/s3"}, {"status": 404}),
            ({"host": "foo.specific.com", "path": "/s3"}, {"status": 404}),
            ({"host": "foo.wildcard.io", "path": "/s3"}, {"status": 404}),
            ({"host": "very.specific.com", "path": "/non-matching-prefix"}, {"status": 404}),
            ({"host": "foo.anotherwildcard.io", "path": "/s4"}, {"backend": V1}),
            ({"host": "bar.anotherwildcard.io", "path": "/s4"}, {"backend": V1}),
            ({"host": "foo.bar.anotherwildcard.io", "path": "/s4"}, {"backend": V1}),
            ({"host": "anotherwildcard.io", "path": "/s4"}, {"status": 404}),
            ({"host": "foo.wildcard.io", "path": "/s4"}, {"status": 404}),
            ({"host": "very.specific.com", "path": "/s4"}, {"status": 404}),
            ({"host": "foo.anotherwildcard.io", "path": "/non-matching-prefix"}, {"status": 404}),
            ({"host": "specific.but.wrong.com", "path": "/s5"}, {"status": 404}),
            ({"host": "wildcard.io", "path": "/s5"}, {"status": 404}),
        ),
    )
    # HTTPRoutes intersects with an unspecified hostname listener
    unspecified = Step(
        objects=objects,
        gateways=("httproute-hostname-intersection-all",),
        status_checks=(accepted("httproute-hostname-intersection-all", "httproute-hostname-intersection-all"),),
        cases=(
            ({"host": "first.com"}, {"backend": V2}),
            ({"host": "sub.first.com"}, {"backend": V2}),
            ({"host": "second.com"}, {"backend": V2}),
            ({"host": "sub.second.com"}, {"backend": V2}),
            ({"host": "third.com"}, {"status": 404}),
            ({"host": "sub.third.com"}, {"status": 404}),
        ),
    )
    return [intersecting, unspecified]


_test("HTTPRouteHostnameIntersection", *_hostname_intersection())


def _listener_hostname_matching() -> Step:
    def ref(section: str) -> dict:
        return parent("httproute-listener-hostname-matching", INFRA, section=section)

    gw = "httproute-listener-hostname-matching"
    return Step(
        objects=(
            gateway(
                gw,
                listener("listener-1", 80, hostname="bar.com"),
                listener("listener-2", 80, hostname="foo.bar.com"),
                listener("listener-3", 80, hostname="*.bar.com"),
                listener("listener-4", 80, hostname="*.foo.com"),
            ),
            http_route("backend-v1", rule(backends=_v(V1)), parents=[ref("listener-1")]),
            http_route("backend-v2", rule(backends=_v(V2)), parents=[ref("listener-2")]),
            http_route("backend-v3", rule(backends=_v(V3)), parents=[ref("listener-3"), ref("listener-4")]),
        ),
        gateways=(gw,),
        status_checks=(
            accepted(gw, "backend-v1", listeners=("listener-1",)),
            accepted(gw, "backend-v2", listeners=("listener-2",)),
            accepted(gw, "backend-v3", listeners=("listener-3", "listener-4")),
        ),
        cases=(
            ({"host": "bar.com"}, {"backend": V1}),
            ({"host": "foo.bar.com"}, {"backend": V2}),
            ({"host": "baz.bar.com"}, {"backend": V3}),
            ({"host": "boo.bar.com"}, {"backend": V3}),
            ({"host": "multiple.prefixes.bar.com"}, {"backend": V3}),
            ({"host": "multiple.prefixes.foo.com"}, {"backend": V3}),
            ({"host": "foo.com"}, {"status": 404}),
            ({"host": "no.matching.host"}, {"status": 404}),
        ),
    )


_test("HTTPRouteListenerHostnameMatching", _listener_hostname_matching())

_test("HTTPRouteMatchingAcrossRoutes", _same(
    http_route(
        "matching-part1",
        rule(match("/"), match(headers=[("version", "one")]), backends=_v(V1)),
        parents=[SAME],
        hostnames=["example.com", "example.net"],
    ),
    [
        ({"host": "example.com", "path": "/"}, {"backend": V1}),
        ({"host": "example.com", "path": "/example"}, {"backend": V1}),
        ({"host": "example.net", "path": "/example"}, {"backend": V1}),
        ({"host": "example.com", "path": "/example", "headers": {"Version": "one"}}, {"backend": V1}),
        ({"host": "example.com", "path": "/v2"}, {"backend": V2}),
        ({"host": "example.net", "path": "/v2"}, {"backend": V1}),
        ({"host": "example.com", "path": "/v2/example"}, {"backend": V2}),
        ({"host": "example.com", "path": "/", "headers": {"Version": "two"}}, {"backend": V2}),
    ],
    http_route(
        "matching-part2",
        rule(match("/v2"), match(headers=[("version", "two")]), backends=_v(V2)),
        parents=[SAME],
        hostnames=["example.com"],
    ),
))

_test("HTTPRouteMatching", _same(
    http_route(
        "matching",
        rule(match("/"), match(headers=[("version", "one")]), backends=_v(V1)),
        rule(match("/v2"), match(headers=[("version", "two")]), backends=_v(V2)),
        parents=[SAME],
    ),
    [
        ({"path": "/"}, {"backend": V1}),
        ({"path": "/example"}, {"backend": V1}),
        ({"path": "/", "headers": {"Version": "one"}}, {"backend": V1}),
        ({"path": "/v2"}, {"backend": V2}),
        ({"path": "/v2/example"}, {"backend": V2}),
        ({"path": "/", "headers": {"Version": "two"}}, {"backend": V2}),
        ({"path": "/v2/"}, {"backend": V2}),
        ({"path": "/v2example"}, {"backend": V1}),
        ({"path": "/foo/v2/example"}, {"backend": V1}),
    ],
))

_test("HTTPRouteMethodMatching", _same(
    http_route(
        "method-matching",
        rule(match(method="POST"), backends=_v(V1)),
        rule(match(method="GET"), backends=_v(V2)),
        rule(match("/path1", method="GET"), backends=_v(V1)),
        rule(match(headers=[("version", "one")], method="PUT"), backends=_v(V2)),
        rule(match("/path2", headers=[("version", "two")], method="POST"), backends=_v(V3)),
        rule(
            match("/path3", method="PATCH"),
            match("/path4", headers=[("version", "three")], method="DELETE"),
            backends=_v(V1),
        ),
        rule(match("/path5"), backends=_v(V1)),
        rule(match(method="PATCH"), backends=_v(V2)),
        rule(match(headers=[("version", "four")]), backends=_v(V3)),
        parents=[SAME],
    ),
    [
        ({"method": "POST"}, {"backend": V1}),
        ({"method": "GET"}, {"backend": V2}),
        ({"method": "HEAD"}, {"status": 404}),
        ({"path": "/path1", "method": "GET"}, {"backend": V1}),
        ({"headers": {"version": "one"}, "method": "PUT"}, {"backend": V2}),
        ({"headers": {"version": "two"}, "path": "/path2", "method": "POST"}, {"backend": V3}),
        ({"path": "/path3", "method": "PATCH"}, {"backend": V1}),
        ({"headers": {"version": "three"}, "path": "/path4", "method": "DELETE"}, {"backend": V1}),
        ({"method": "PUT"}, {"status": 404}),
        ({"path": "/path4", "method": "DELETE"}, {"status": 404}),
        ({"path": "/path5", "method": "PATCH"}, {"backend": V1}),
        ({"headers": {"version": "four"}, "method": "PATCH"}, {"backend": V2}),
    ],
))

_test("HTTPRouteQueryParamMatching", _same(
    http_route(
        "query-param-matching",
        rule(match(query=[("animal", "whale")]), backends=_v(V1)),
        rule(match(query=[("animal", "dolphin")]), backends=_v(V2)),
        rule(
            match(query=[("animal", "dolphin"), ("color", "blue")]),
            match(query=[("ANIMAL", "Whale")]),
            backends=_v(V3),
        ),
        rule(match("/path1", query=[("animal", "whale")]), backends=_v(V1)),
        rule(match(headers=[("version", "one")], query=[("animal", "whale")]), backends=_v(V2)),
        rule(match("/path2", headers=[("version", "two")], query=[("animal", "whale")]), backends=_v(V3)),
        rule(
            match("/path3", query=[("animal", "shark")]),
            match("/path4", headers=[("version", "three")], query=[("animal", "kraken")]),
            backends=_v(V1),
        ),
        rule(match("/path5"), backends=_v(V1)),
        rule(match(query=[("animal", "hydra")]), backends=_v(V2)),
        rule(match(headers=[("version", "four")]), backends=_v(V3)),
        parents=[SAME],
    ),
    [
        ({"path": "/?animal=whale"}, {"backend": V1}),
        ({"path": "/?animal=dolphin"}, {"backend": V2}),
        ({"path": "/?animal=dolphin&color=blue"}, {"backend": V3}),
        ({"path": "/?ANIMAL=Whale"}, {"backend": V3}),
        ({"path": "/?animal=whale&otherparam=irrelevant"}, {"backend": V1}),
        ({"path": "/?animal=dolphin&color=yellow"}, {"backend": V2}),
        ({"path": "/?color=blue"}, {"status": 404}),
        ({"path": "/?animal=dog"}, {"status": 404}),
        ({"path": "/?animal=whaledolphin"}, {"status": 404}),
        ({"path": "/"}, {"status": 404}),
        ({"path": "/path1?animal=whale"}, {"backend": V1}),
        ({"headers": {"version": "one"}, "path": "/?animal=whale"}, {"backend": V2}),
        ({"headers": {"version": "two"}, "path": "/path2?animal=whale"}, {"backend": V3}),
        ({"path": "/path3?animal=shark"}, {"backend": V1}),
        ({"headers": {"version": "three"}, "path": "/path4?animal=kraken"}, {"backend": V1}),
        ({"path": "/?animal=shark"}, {"status": 404}),
        ({"path": "/path4?animal=kraken"}, {"status": 404}),
        ({"path": "/path5?animal=hydra"}, {"backend": V1}),
        ({"headers": {"version": "four"}, "path": "/?animal=hydra"}, {"backend": V3}),
    ],
))

_test("HTTPRoutePathMatchOrder", _same(
    http_route(
        "path-matching-order",
        rule(match("/match", type="Exact"), backends=_v(V1)),
        rule(match("/match/exact", type="Exact"), backends=_v(V2)),
        rule(match("/match/exact/one", type="Exact"), backends=_v(V3)),
        rule(match("/match/"), backends=_v(V3)),
        rule(match("/match/prefix/"), backends=_v(V1)),
        rule(match("/match/prefix/one"), backends=_v(V2)),
        parents=[SAME],
    ),
    [
        ({"path": "/match/exact/one"}, {"backend": V3}),
        ({"path": "/match/exact"}, {"backend": V2}),
        ({"path": "/match"}, {"backend": V1}),
        ({"path": "/match/prefix/one/any"}, {"backend": V2}),
        ({"path": "/match/prefix/any"}, {"backend": V1}),
        ({"path": "/match/any"}, {"backend": V3}),
    ],
))


# ---------------------------------------------------------------------- redirects


def _redirect_route(name: str, *rules: dict) -> dict:
    return http_route(name, *rules, parents=[SAME])


def _redirect_with(code: int, name: str, path: str) -> Step:
    """HTTPRoute303Redirect, HTTPRoute307Redirect, HTTPRoute308Redirect: one shape, three manifests."""
    return _same(
        _redirect_route(name, rule(match(path), filters=[redirect(status=code)])),
        [({"path": path, "method": "POST"}, {"status": code, "location": f"http://example.com{path}"})],
    )


_test("HTTPRoute303Redirect", _redirect_with(303, "303-redirect", "/see-other"))
_test("HTTPRoute307Redirect", _redirect_with(307, "307-redirect", "/temporary"))
_test("HTTPRoute308Redirect", _redirect_with(308, "308-redirect", "/permanent"))

_test("HTTPRouteRedirectHostAndStatus", _same(
    _redirect_route(
        "redirect-host-and-status",
        rule(match("/hostname-redirect"), filters=[redirect(hostname="example.org")]),
        rule(match("/host-and-status"), filters=[redirect(status=301, hostname="example.org")]),
    ),
    [
        ({"path": "/hostname-redirect"}, {"status": 302, "location": "http://example.org/hostname-redirect"}),
        ({"path": "/host-and-status"}, {"status": 301, "location": "http://example.org/host-and-status"}),
    ],
))

_test("HTTPRouteRedirectPath", _same(
    _redirect_route(
        "redirect-path",
        rule(match("/original-prefix"), filters=[redirect(path=("ReplacePrefixMatch", "/replacement-prefix"))]),
        rule(match("/full"), filters=[redirect(path=("ReplaceFullPath", "/full-path-replacement"))]),
        rule(
            match("/path-and-host"),
            filters=[redirect(hostname="example.org", path=("ReplacePrefixMatch", "/replacement-prefix"))],
        ),
        rule(
            match("/path-and-status"),
            filters=[redirect(status=301, path=("ReplacePrefixMatch", "/replacement-prefix"))],
        ),
        rule(
            match("/full-path-and-host"),
            filters=[redirect(hostname="example.org", path=("ReplaceFullPath", "/replacement-full"))],
        ),
        rule(
            match("/full-path-and-status"),
            filters=[redirect(status=301, path=("ReplaceFullPath", "/replacement-full"))],
        ),
    ),
    [
        ({"path": "/original-prefix/lemon"}, {"status": 302, "location": "http://example.com/replacement-prefix/lemon"}),
        ({"path": "/full/path/original"}, {"status": 302, "location": "http://example.com/full-path-replacement"}),
        ({"path": "/path-and-host"}, {"status": 302, "location": "http://example.org/replacement-prefix"}),
        ({"path": "/path-and-status"}, {"status": 301, "location": "http://example.com/replacement-prefix"}),
        ({"path": "/full-path-and-host"}, {"status": 302, "location": "http://example.org/replacement-full"}),
        ({"path": "/full-path-and-status"}, {"status": 301, "location": "http://example.com/replacement-full"}),
    ],
))

_test("HTTPRouteRedirectPort", _same(
    _redirect_route(
        "redirect-port",
        rule(match("/port"), filters=[redirect(port=8083)]),
        rule(match("/port-and-host"), filters=[redirect(hostname="example.org", port=8083)]),
        rule(match("/port-and-status"), filters=[redirect(port=8083, status=301)]),
        rule(match("/port-and-host-and-status"), filters=[redirect(port=8083, hostname="example.org", status=302)]),
    ),
    [
        ({"path": "/port"}, {"status": 302, "location": "http://example.com:8083/port"}),
        ({"path": "/port-and-host"}, {"status": 302, "location": "http://example.org:8083/port-and-host"}),
        ({"path": "/port-and-status"}, {"status": 301, "location": "http://example.com:8083/port-and-status"}),
        (
            {"path": "/port-and-host-and-status"},
            {"status": 302, "location": "http://example.org:8083/port-and-host-and-status"},
        ),
    ],
))

_test("HTTPRouteRedirectScheme", _same(
    _redirect_route(
        "redirect-scheme",
        rule(match("/scheme"), filters=[redirect(scheme="https")]),
        rule(match("/scheme-and-host"), filters=[redirect(hostname="example.org", scheme="https")]),
        rule(match("/scheme-and-status"), filters=[redirect(scheme="https", status=301)]),
        rule(
            match("/scheme-and-host-and-status"),
            filters=[redirect(scheme="https", status=302, hostname="example.org")],
        ),
    ),
    [
        ({"path": "/scheme"}, {"status": 302, "location": "https://example.com/scheme"}),
        ({"path": "/scheme-and-host"}, {"status": 302, "location": "https://example.org/scheme-and-host"}),
        ({"path": "/scheme-and-status"}, {"status": 301, "location": "https://example.com/scheme-and-status"}),
        (
            {"path": "/scheme-and-host-and-status"},
            {"status": 302, "location": "https://example.org/scheme-and-host-and-status"},
        ),
    ],
))


def _redirect_port_and_scheme() -> Step:
    on_8080 = gateway("same-namespace-with-http-listener-on-8080", listener("http", 8080))

    def rules(*pairs: tuple[str, dict]) -> list[dict]:
        return [rule(match(path), filters=[redirect(hostname="example.org", **fields)]) for path, fields in pairs]

    def moved(path: str, location: str) -> tuple[dict, dict]:
        return ({"path": path}, {"status": 302, "location": location})

    routes = (
        http_route(
            "http-route-for-listener-on-port-80",
            *rules(
                ("/scheme-nil-and-port-nil", {}),
                ("/scheme-nil-and-port-80", {"port": 80}),
                ("/scheme-nil-and-port-8080", {"port": 8080}),
                ("/scheme-https-and-port-nil", {"scheme": "https"}),
                ("/scheme-https-and-port-443", {"scheme": "https", "port": 443}),
                ("/scheme-https-and-port-8443", {"scheme": "https", "port": 8443}),
            ),
            parents=[SAME],
        ),
        http_route(
            "http-route-for-listener-on-port-8080",
            *rules(
                ("/scheme-nil-and-port-nil", {}),
                ("/scheme-nil-and-port-80", {"port": 80}),
                ("/scheme-https-and-port-nil", {"scheme": "https"}),
            ),
            parents=[parent("same-namespace-with-http-listener-on-8080")],
        ),
        http_route(
            "http-route-for-listener-on-port-443",
            *rules(
                ("/scheme-nil-and-port-nil", {}),
                ("/scheme-nil-and-port-443", {"port": 443}),
                ("/scheme-nil-and-port-8443", {"port": 8443}),
                ("/scheme-http-and-port-nil", {"scheme": "http"}),
                ("/scheme-http-and-port-80", {"scheme": "http", "port": 80}),
                ("/scheme-http-and-port-8080", {"scheme": "http", "port": 8080}),
            ),
            parents=[parent("same-namespace-with-https-listener")],
        ),
    )
    return Step(
        objects=(on_8080, *routes),
        gateways=("same-namespace", "same-namespace-with-http-listener-on-8080", "same-namespace-with-https-listener"),
        status_checks=(
            accepted("same-namespace", "http-route-for-listener-on-port-80"),
            accepted("same-namespace-with-http-listener-on-8080", "http-route-for-listener-on-port-8080"),
            accepted("same-namespace-with-https-listener", "http-route-for-listener-on-port-443"),
        ),
        cases=(
            *at([
                moved("/scheme-nil-and-port-nil", "http://example.org/scheme-nil-and-port-nil"),
                moved("/scheme-nil-and-port-80", "http://example.org/scheme-nil-and-port-80"),
                moved("/scheme-nil-and-port-8080", "http://example.org:8080/scheme-nil-and-port-8080"),
                moved("/scheme-https-and-port-nil", "https://example.org/scheme-https-and-port-nil"),
                moved("/scheme-https-and-port-443", "https://example.org/scheme-https-and-port-443"),
                moved("/scheme-https-and-port-8443", "https://example.org:8443/scheme-https-and-port-8443"),
            ], port=80),
            *at([
                moved("/scheme-nil-and-port-nil", "http://example.org:8080/scheme-nil-and-port-nil"),
                moved("/scheme-nil-and-port-80", "http://example.org/scheme-nil-and-port-80"),
                moved("/scheme-https-and-port-nil", "https://example.org/scheme-https-and-port-nil"),
            ], port=8080),
            *at([
                moved("/scheme-nil-and-port-nil", "https://example.org/scheme-nil-and-port-nil"),
                moved("/scheme-nil-and-port-443", "https://example.org/scheme-nil-and-port-443"),
                moved("/scheme-nil-and-port-8443", "https://example.org:8443/scheme-nil-and-port-8443"),
                moved("/scheme-http-and-port-nil", "http://example.org/scheme-http-and-port-nil"),
                moved("/scheme-http-and-port-80", "http://example.org/scheme-http-and-port-80"),
                moved("/scheme-http-and-port-8080", "http://example.org:8080/scheme-http-and-port-8080"),
            ], port=443, host="example.org"),
        ),
    )


_test("HTTPRouteRedirectPortAndScheme", _redirect_port_and_scheme())

_test("HTTPRouteBackendRequestRedirect", _same(
    http_route(
        "backend-request-redirect",
        rule(
            match("/full"),
            backends=[backend(V1, 8080, filters=[redirect(path=("ReplaceFullPath", "/redirected-full"))])],
        ),
        rule(
            match("/prefix"),
            backends=[backend(V1, 8080, filters=[redirect(path=("ReplacePrefixMatch", "/redirected-prefix"))])],
        ),
        parents=[SAME],
    ),
    [
        ({"path": "/full/original"}, {"status": 302, "location": "http://example.com/redirected-full"}),
        ({"path": "/prefix/original"}, {"status": 302, "location": "http://example.com/redirected-prefix/original"}),
    ],
))


# ---------------------------------------------------------------------- rewrites and headers

_MODIFY = header_filter(
    set={"X-Header-Set": "set-overwrites-values"},
    add={"X-Header-Add": "header-val-1", "X-Header-Add-Append": "header-val-2"},
    remove=["X-Header-Remove"],
)
_MODIFIED = {
    "X-Header-Add": "header-val-1",
    "X-Header-Add-Append": "append-val-1,header-val-2",
    "X-Header-Set": "set-overwrites-values",
}
_SENT = {"X-Header-Remove": "remove-val", "X-Header-Add-Append": "append-val-1"}

_test("HTTPRouteRewriteHost", _same(
    http_route(
        "rewrite-host",
        rule(match("/one"), filters=[rewrite(hostname="one.example.org")], backends=_v(V1)),
        rule(filters=[rewrite(hostname="example.org")], backends=_v(V2)),
        rule(
            match("/rewrite-host-and-modify-headers"),
            filters=[rewrite(hostname="test.example.org"), _MODIFY],
            backends=_v(V2),
        ),
        parents=[SAME],
        hostnames=["rewrite.example"],
    ),
    at([
        ({"path": "/one"}, {"backend": V1, "path": "/one", "host": "one.example.org"}),
        ({"path": "/two"}, {"backend": V2, "path": "/two", "host": "example.org"}),
        (
            {"path": "/rewrite-host-and-modify-headers", "headers": _SENT},
            {
                "backend": V2,
                "path": "/rewrite-host-and-modify-headers",
                "host": "test.example.org",
                "request_headers": _MODIFIED,
                "absent": ["X-Header-Remove"],
            },
        ),
    ], host="rewrite.example"),
))

_SENT_WITH_SET = {**_SENT, "X-Header-Set": "set-val"}

_test("HTTPRouteRewritePath", _same(
    http_route(
        "rewrite-path",
        rule(match("/prefix/one"), filters=[rewrite(path=("ReplacePrefixMatch", "/one"))], backends=_v(V1)),
        rule(match("/strip-prefix"), filters=[rewrite(path=("ReplacePrefixMatch", "/"))], backends=_v(V1)),
        rule(match("/full/one"), filters=[rewrite(path=("ReplaceFullPath", "/one"))], backends=_v(V1)),
        rule(
            match("/full/rewrite-path-and-modify-headers"),
            filters=[rewrite(path=("ReplaceFullPath", "/test")), _MODIFY],
            backends=_v(V1),
        ),
        rule(
            match("/prefix/rewrite-path-and-modify-headers"),
            filters=[rewrite(path=("ReplacePrefixMatch", "/prefix")), _MODIFY],
            backends=_v(V1),
        ),
        parents=[SAME],
    ),
    [
        ({"path": "/prefix/one/two"}, {"backend": V1, "path": "/one/two"}),
        ({"path": "/strip-prefix/three"}, {"backend": V1, "path": "/three"}),
        ({"path": "/strip-prefix"}, {"backend": V1, "path": "/"}),
        ({"path": "/full/one/two"}, {"backend": V1, "path": "/one"}),
        (
            {"path": "/full/rewrite-path-and-modify-headers/test", "headers": _SENT_WITH_SET},
            {"backend": V1, "path": "/test", "request_headers": _MODIFIED, "absent": ["X-Header-Remove"]},
        ),
        (
            {"path": "/prefix/rewrite-path-and-modify-headers/one", "headers": _SENT_WITH_SET},
            {"backend": V1, "path": "/prefix/one", "request_headers": _MODIFIED, "absent": ["X-Header-Remove"]},
        ),
    ],
))

_test("HTTPRouteBackendURLRewrite", _same(
    http_route(
        "backend-url-rewrite",
        rule(
            match("/full"),
            backends=[backend(V1, 8080, filters=[rewrite(path=("ReplaceFullPath", "/rewritten-full"))])],
        ),
        rule(
            match("/prefix"),
            backends=[backend(V1, 8080, filters=[rewrite(path=("ReplacePrefixMatch", "/rewritten-prefix"))])],
        ),
        parents=[SAME],
    ),
    [
        ({"path": "/full/original"}, {"backend": V1, "path": "/rewritten-full"}),
        ({"path": "/prefix/original"}, {"backend": V1, "path": "/rewritten-prefix/original"}),
    ],
))

_MULTIPLE = {
    "set": {"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2"},
    "add": {"X-Header-Add-1": "header-add-1", "X-Header-Add-2": "header-add-2", "X-Header-Add-3": "header-add-3"},
    "remove": ["X-Header-Remove-1", "X-Header-Remove-2"],
}
_REQUEST_CASES = [
    (
        {"path": "/set", "headers": {"Some-Other-Header": "val"}},
        {"backend": V1, "request_headers": {"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}},
    ),
    (
        {"path": "/set", "headers": {"Some-Other-Header": "val", "X-Header-Set": "some-other-value"}},
        {"backend": V1, "request_headers": {"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}},
    ),
    (
        {"path": "/add", "headers": {"Some-Other-Header": "val"}},
        {"backend": V1, "request_headers": {"Some-Other-Header": "val", "X-Header-Add": "add-appends-values"}},
    ),
    (
        {"path": "/add", "headers": {"Some-Other-Header": "val", "X-Header-Add": "some-other-value"}},
        {
            "backend": V1,
            "request_headers": {"Some-Other-Header": "val", "X-Header-Add": "some-other-value,add-appends-values"},
        },
    ),
    ({"path": "/remove", "headers": {"X-Header-Remove": "val"}}, {"backend": V1, "absent": ["X-Header-Remove"]}),
    (
        {
            "path": "/multiple",
            "headers": {
                "X-Header-Set-2": "set-val-2",
                "X-Header-Add-2": "add-val-2",
                "X-Header-Remove-2": "remove-val-2",
                "Another-Header": "another-header-val",
            },
        },
        {
            "backend": V1,
            "request_headers": {
                "X-Header-Set-1": "header-set-1",
                "X-Header-Set-2": "header-set-2",
                "X-Header-Add-1": "header-add-1",
                "X-Header-Add-2": "add-val-2,header-add-2",
                "X-Header-Add-3": "header-add-3",
                "Another-Header": "another-header-val",
            },
            "absent": ["X-Header-Remove-1", "X-Header-Remove-2"],
        },
    ),
    (
        {
            "path": "/case-insensitivity",
            "headers": {
                "x-header-set": "original-val-set",
                "x-header-add": "original-val-add",
                "x-header-remove": "original-val-remove",
                "Another-Header": "another-header-val",
            },
        },
        {
            "backend": V1,
            "request_headers": {
                "X-Header-Set": "header-set",
                "X-Header-Add": "original-val-add,header-add",
                "Another-Header": "another-header-val",
            },
            "absent": ["x-header-remove", "X-Header-Remove"],
        },
    ),
]


def _header_rules(kind: str, *, backend_level: bool) -> list[dict]:
    bodies = [
        ("/set", {"set": {"X-Header-Set": "set-overwrites-values"}}),
        ("/add", {"add": {"X-Header-Add": "add-appends-values"}}),
        ("/remove", {"remove": ["X-Header-Remove"]}),
        ("/multiple", _MULTIPLE),
        (
            "/case-insensitivity",
            {
                "set": {"X-Header-Set": "header-set"},
                "add": {"X-Header-Add": "header-add"},
                "remove": ["X-Header-Remove"],
            },
        ),
    ]
    found = []
    for path, body in bodies:
        modifier = header_filter(kind, **body)
        if backend_level:
            found.append(rule(match(path), backends=[backend(V1, 8080, filters=[modifier])]))
        else:
            found.append(rule(match(path), filters=[modifier], backends=_v(V1)))
    return found


_test("HTTPRouteRequestHeaderModifier", _same(
    http_route("request-header-modifier", *_header_rules("RequestHeaderModifier", backend_level=False), parents=[SAME]),
    _REQUEST_CASES,
))

_test("HTTPRouteBackendRequestHeaderModifier", _same(
    http_route("request-header-modifier", *_header_rules("RequestHeaderModifier", backend_level=True), parents=[SAME]),
    _REQUEST_CASES,
))


def _response_header_modifier() -> Step:
    case_insensitive = header_filter(
        "ResponseHeaderModifier",
        set={"X-Header-Set": "header-set"},
        add={
            "X-Header-Add": "header-add",
            "x-lowercase-add": "lowercase-add",
            "x-Mixedcase-ADD-1": "mixedcase-add-1",
            "X-mixeDcase-add-2": "mixedcase-add-2",
            "X-UPPERCASE-ADD": "uppercase-add",
        },
        remove=["X-Header-Remove"],
    )
    both = [
        header_filter(
            "ResponseHeaderModifier",
            set={"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2"},
            add={"X-Header-Add-1": "header-add-1", "X-Header-Add-2": "header-add-2"},
            remove=["X-Header-Remove-1", "X-Header-Remove-2"],
        ),
        _MODIFY,
    ]
    rules = _header_rules("ResponseHeaderModifier", backend_level=False)
    rules[-1] = rule(match("/case-insensitivity"), filters=[case_insensitive], backends=_v(V1))
    rules.append(rule(match("/response-and-request-header-modifiers"), filters=both, backends=_v(V1)))
    return _same(http_route("response-header-modifier", *rules, parents=[SAME]), [
        (
            {"path": "/set", "upstream_headers": {"Some-Other-Header": "val"}},
            {"backend": V1, "response_headers": {"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}},
        ),
        (
            {"path": "/set", "upstream_headers": {"Some-Other-Header": "val", "X-Header-Set": "some-other-value"}},
            {"backend": V1, "response_headers": {"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}},
        ),
        (
            {"path": "/add", "upstream_headers": {"Some-Other-Header": "val"}},
            {"backend": V1, "response_headers": {"Some-Other-Header": "val", "X-Header-Add": "add-appends-values"}},
        ),
        (
            {"path": "/add", "upstream_headers": {"Some-Other-Header": "val", "X-Header-Add": "some-other-value"}},
            {"backend": V1, "response_headers": {"X-Header-Add": "some-other-value,add-appends-values"}},
        ),
        (
            {"path": "/remove", "upstream_headers": {"X-Header-Remove": "val"}},
            {"backend": V1, "absent_response": ["X-Header-Remove"]},
        ),
        (
            {
                "path": "/multiple",
                "upstream_headers": {
                    "X-Header-Set-2": "set-val-2",
                    "X-Header-Add-2": "add-val-2",
                    "X-Header-Remove-2": "remove-val-2",
                    "Another-Header": "another-header-val",
                    "X-Header-Remove-1": "val",
                },
            },
            {
                "backend": V1,
                "response_headers": {
                    "X-Header-Set-1": "header-set-1",
                    "X-Header-Set-2": "header-set-2",
                    "X-Header-Add-1": "header-add-1",
                    "X-Header-Add-2": "add-val-2,header-add-2",
                    "X-Header-Add-3": "header-add-3",
                    "Another-Header": "another-header-val",
                },
                "absent_response": ["X-Header-Remove-1", "X-Header-Remove-2"],
            },
        ),
        (
            {
                "path": "/case-insensitivity",
                "upstream_headers": {
                    "x-header-set": "original-val-set",
                    "x-header-add": "original-val-add",
                    "x-header-remove": "original-val-remove",
                    "Another-Header": "another-header-val",
                },
            },
            {
                "backend": V1,
                "response_headers": {
                    "X-Header-Set": "header-set",
                    "X-Header-Add": "original-val-add,header-add",
                    "X-Lowercase-Add": "lowercase-add",
                    "X-Mixedcase-Add-1": "mixedcase-add-1",
                    "X-Mixedcase-Add-2": "mixedcase-add-2",
                    "X-Uppercase-Add": "uppercase-add",
                    "Another-Header": "another-header-val",
                },
                "absent_response": ["X-Header-Remove"],
            },
        ),
        (
            {
                "path": "/response-and-request-header-modifiers",
                "headers": {**_SENT, "X-Header-Echo": "echo"},
                "upstream_headers": {
                    "X-Header-Set-2": "set-val-2",
                    "X-Header-Add-2": "add-val-2",
                    "X-Header-Remove-2": "remove-val-2",
                    "Another-Header": "another-header-val",
                    "X-Header-Remove-1": "remove-val-1",
                    "X-Header-Echo": "echo",
                },
            },
            {
                "backend": V1,
                "request_headers": {**_MODIFIED, "X-Header-Echo": "echo"},
                "absent": ["X-Header-Remove"],
                "response_headers": {
                    "X-Header-Set-1": "header-set-1",
                    "X-Header-Set-2": "header-set-2",
                    "X-Header-Add-1": "header-add-1",
                    "X-Header-Add-2": "add-val-2,header-add-2",
                    "Another-Header": "another-header-val",
                    "X-Header-Echo": "echo",
                },
                "absent_response": ["X-Header-Remove-1", "X-Header-Remove-2"],
            },
        ),
    ])


_test("HTTPRouteResponseHeaderModifier", _response_header_modifier())


# ---------------------------------------------------------------------- weights

_test("HTTPRouteRequestHeaderModifierBackendWeights", Step(
    objects=(
        http_route(
            "request-header-modifier-backend-weights",
            rule(
                backends=[
                    backend(V1, 8080, weight=10, filters=[header_filter(set={"Backend": V1})]),
                    backend(V2, 8080, weight=10, filters=[header_filter(set={"Backend": V2})]),
                ]
            ),
            parents=[SAME],
        ),
    ),
    status_checks=(accepted("same-namespace", "request-header-modifier-backend-weights"),),
    cases=(({"path": "/"}, {"status": 200, "namespace": INFRA}),),
    distribution=Distribution({V1: 0.5, V2: 0.5}, draws=100, requests=100, header="Backend"),
))

_test("HTTPRouteWeight", Step(
    objects=(
        http_route(
            "weighted-backends",
            rule(backends=[backend(V1, 8080, weight=70), backend(V2, 8080, weight=30), backend(V3, 8080, weight=0)]),
            parents=[SAME],
        ),
    ),
    status_checks=(accepted("same-namespace", "weighted-backends"),),
    cases=(({"path": "/"}, {"status": 200, "namespace": INFRA}),),
    # infra-backend-v3 (weight 0) never gets one
    distribution=Distribution({V1: 0.7, V2: 0.3, V3: 0.0}, draws=1000, requests=500, tolerance=0.05),
))


# ---------------------------------------------------------------------- mirrors

_test("HTTPRouteRequestMirror", _same(
    http_route(
        "request-mirror",
        rule(match("/mirror"), filters=[mirror(V2, namespace=INFRA)], backends=[backend(V1, 8080, namespace=INFRA)]),
        rule(
            match("/mirror-and-modify-headers"),
            filters=[_MODIFY, mirror(V2, namespace=INFRA)],
            backends=[backend(V1, 8080, namespace=INFRA)],
        ),
        parents=[SAME],
    ),
    [
        ({"path": "/mirror"}, {"backend": V1, "path": "/mirror", "mirrors": [(V2, 100.0)]}),
        (
            {"path": "/mirror-and-modify-headers", "headers": _SENT},
            {"backend": V1, "request_headers": _MODIFIED, "absent": ["X-Header-Remove"], "mirrors": [(V2, 100.0)]},
        ),
    ],
    resolved=False,
))

_test("HTTPRouteRequestMultipleMirrors", _same(
    http_route(
        "request-multiple-mirrors",
        rule(
            match("/multi-mirror"),
            filters=[mirror(V2, namespace=INFRA), mirror(V3, namespace=INFRA)],
            backends=[backend(V1, 8080, namespace=INFRA)],
        ),
        rule(
            match("/multi-mirror-and-modify-request-headers"),
            filters=[_MODIFY, mirror(V2, namespace=INFRA), mirror(V3, namespace=INFRA)],
            backends=[backend(V1, 8080, namespace=INFRA)],
        ),
        parents=[SAME],
    ),
    [
        ({"path": "/multi-mirror"}, {"backend": V1, "mirrors": [(V2, 100.0), (V3, 100.0)]}),
        (
            {"path": "/multi-mirror-and-modify-request-headers", "headers": _SENT},
            {
                "backend": V1,
                "request_headers": _MODIFIED,
                "absent": ["X-Header-Remove"],
                "mirrors": [(V2, 100.0), (V3, 100.0)],
            },
        ),
    ],
    resolved=False,
))

_test("HTTPRouteRequestPercentageMirror", _same(
    http_route(
        "request-percentage-mirror",
        rule(
            match("/percent-mirror"),
            filters=[mirror(V2, namespace=INFRA, percent=20)],
            backends=[backend(V1, 8080, namespace=INFRA)],
        ),
        rule(
            match("/percent-mirror-fraction"),
            filters=[mirror(V2, namespace=INFRA, fraction=(25, 50))],
            backends=[backend(V1, 8080, namespace=INFRA)],
        ),
        rule(
            match("/percent-mirror-and-modify-headers"),
            filters=[_MODIFY, mirror(V2, namespace=INFRA, percent=35)],
            backends=[backend(V1, 8080, namespace=INFRA)],
        ),
        parents=[SAME],
    ),
    [
        ({"path": "/percent-mirror"}, {"backend": V1, "path": "/percent-mirror", "mirrors": [(V2, 20.0)]}),
        ({"path": "/percent-mirror-fraction"}, {"backend": V1, "mirrors": [(V2, 50.0)]}),
        (
            {"path": "/percent-mirror-and-modify-headers", "headers": _SENT},
            {"backend": V1, "request_headers": _MODIFIED, "absent": ["X-Header-Remove"], "mirrors": [(V2, 35.0)]},
        ),
    ],
))


# ---------------------------------------------------------------------- timeouts, named rules, backends

_test("HTTPRouteTimeoutRequest", _same(
    http_route(
        "request-timeout",
        rule(match("/request-timeout"), backends=_v(V1), timeouts={"request": "500ms"}),
        rule(match("/disable-request-timeout"), backends=_v(V1), timeouts={"request": "0s"}),
        parents=[SAME],
    ),
    [
        ({"path": "/request-timeout"}, {"backend": V1, "timeouts": Timeouts(request=0.5)}),
        ({"path": "/request-timeout?delay=1s"}, {"status": 504, "routed_to": V1, "timeouts": Timeouts(request=0.5)}),
        ({"path": "/disable-request-timeout?delay=1s"}, {"backend": V1, "timeouts": Timeouts(request=0.0)}),
    ],
))

_test("HTTPRouteTimeoutBackendRequest", _same(
    http_route(
        "backend-request-timeout",
        rule(match("/backend-timeout"), backends=_v(V1), timeouts={"backendRequest": "500ms"}),
        rule(match("/disable-backend-timeout"), backends=_v(V1), timeouts={"backendRequest": "0s"}),
        parents=[SAME],
    ),
    [
        ({"path": "/backend-timeout"}, {"backend": V1, "timeouts": Timeouts(backend_request=0.5)}),
        (
            {"path": "/backend-timeout?delay=1s"},
            {"status": 504, "routed_to": V1, "timeouts": Timeouts(backend_request=0.5)},
        ),
        ({"path": "/disable-backend-timeout?delay=1s"}, {"backend": V1, "timeouts": Timeouts(backend_request=0.0)}),
    ],
))


def _named_rules(config: Config, previous: Config | None) -> None:
    from .harness import send

    assert send(config, "/named").route.rule_name == "named-rule"
    assert send(config, "/unnamed").route.rule_name == ""


_test("HTTPRouteNamedRule", Step(
    objects=(
        http_route(
            "http-named-rules",
            rule(match("/named"), backends=_v(V1), name="named-rule"),
            rule(match("/unnamed"), backends=_v(V2)),
            parents=[SAME],
        ),
    ),
    status_checks=(accepted("same-namespace", "http-named-rules"),),
    cases=(
        ({"path": "/named"}, {"status": 200, "namespace": INFRA}),
        ({"path": "/unnamed"}, {"status": 200, "namespace": INFRA}),
    ),
    routing=_named_rules,
))

_test("HTTPRouteNoBackendRefs", _same(
    http_route(
        "omitted-backendrefs",
        rule(match("/omitted-no-forward", type="Exact")),
        rule(match("/empty-no-forward", type="Exact"), backends=[]),
        rule(match("/"), backends=_v(V1)),
        parents=[SAME],
    ),
    [
        ({"path": "/forward"}, {"backend": V1}),
        ({"path": "/omitted-no-forward"}, {"status": 500}),
        ({"path": "/empty-no-forward"}, {"status": 500}),
    ],
))


def _service_types() -> Step:
    objects: list[dict] = [
        service("manual-endpointslices", {"name": "first-port", "protocol": "TCP", "port": 8080, "targetPort": 3000}),
        service("headless", {"name": "first-port", "protocol": "TCP", "port": 8080, "targetPort": 3000}, headless=True),
        service(
            "headless-manual-endpointslices",
            {"name": "first-port", "protocol": "TCP", "port": 8080, "targetPort": 3000},
            headless=True,
        ),
    ]
    # The test points the slices at the infra-backend-v1 pods, one slice per address family.
    for name in ("manual-endpointslices", "headless-manual-endpointslices", "headless"):
        objects.append(endpoint_slice(name, *pod_addresses(V1), port_name="first-port", suffix="ip4"))
        objects.append(endpoint_slice(name, *pod_addresses(V1, family="IPv6"), port_name="first-port", suffix="ip6",
                                      address_type="IPv6"))
    objects.append(
        http_route(
            "service-types",
            rule(match("/manual-endpointslices", type="Exact"), backends=_v("manual-endpointslices")),
            rule(match("/headless", type="Exact"), backends=_v("headless")),
            rule(match("/headless-manual-endpointslices", type="Exact"), backends=_v("headless-manual-endpointslices")),
            parents=[SAME],
        )
    )
    paths = ("/manual-endpointslices", "/headless-manual-endpointslices", "/headless")

    def both_families(config: Config, previous: Config | None) -> None:
        from .harness import send

        for path in paths:
            outcome = send(config, path)
            endpoints = config.clusters[outcome.route.cluster].endpoints
            # the infra-backend-v1 pods, both families
            assert {e.address for e in endpoints} == {*pod_addresses(V1), *pod_addresses(V1, family="IPv6")}

    return Step(
        objects=tuple(objects),
        status_checks=(accepted("same-namespace", "service-types"),),
        cases=tuple(({"path": path}, {"backend": path[1:], "pod": V1, "namespace": INFRA}) for path in paths),
        routing=both_families,
    )


_test("HTTPRouteServiceTypes", _service_types())


def _websocket_port(config: Config, previous: Config | None) -> None:
    from .harness import send

    assert send(config, "/ws").route.cluster == f"{INFRA}/{V1}:8082"  # the kubernetes.io/ws port


_test("HTTPRouteBackendProtocolWebSocket", Step(
    objects=(http_route("backend-protocol-ws", rule(backends=[backend(V1, 8082)]), parents=[SAME]),),
    status_checks=(accepted("same-namespace", "backend-protocol-ws"),),
    cases=((
        {"path": "/ws", "headers": {"Connection": "Upgrade", "Upgrade": "websocket"}, "websocket": True},
        {"backend": V1, "websocket_echo": True},
    ),),
    routing=_websocket_port,
))


def _h2c_port(config: Config, previous: Config | None) -> None:
    from .harness import send

    cluster = send(config, "/").route.cluster
    assert cluster == f"{INFRA}/{V1}:8081" and config.clusters[cluster].protocol == HTTP2  # kubernetes.io/h2c


# httproute-backend-protocol-h2c.go: a request in h2c with prior knowledge reaches infra-backend-v1 through its
# Service port with appProtocol kubernetes.io/h2c (spoken to in HTTP/2 cleartext: the echo's h2c port).
_test("HTTPRouteBackendProtocolH2C", Step(
    objects=(http_route("backend-protocol-h2c", rule(backends=[backend(V1, 8081)]), parents=[SAME]),),
    status_checks=(accepted("same-namespace", "backend-protocol-h2c"),),
    cases=(({"path": "/", "h2c": True}, {"backend": V1, "namespace": INFRA, "proto": "HTTP/2.0"}),),
    routing=_h2c_port,
))


# ---------------------------------------------------------------------- attachment and references

_test("HTTPRouteCrossNamespace", Step(
    objects=(
        http_route(
            "cross-namespace",
            rule(backends=[backend("web-backend", 8080)]),
            parents=[parent("backend-namespaces", INFRA)],
            namespace=WEB,
        ),
    ),
    gateways=("backend-namespaces",),
    status_checks=(accepted("backend-namespaces", "cross-namespace", route_namespace=WEB),),
    cases=(({"path": "/"}, {"backend": "web-backend", "namespace": WEB}),),
))

_test("HTTPRouteDisallowedKind", Step(
    objects=(
        gateway(
            "tlsroutes-only", listener("tls", 443, "TLS", tls={"mode": "Passthrough"}, kinds=[{"kind": "TLSRoute"}])
        ),
        http_route("disallowed-kind", rule(backends=_v(V1)), parents=[parent("tlsroutes-only", INFRA)]),
    ),
    gateways=("tlsroutes-only",),
    status_checks=(
        RouteCondition("disallowed-kind", "tlsroutes-only", "ResolvedRefs", "True", "ResolvedRefs"),
        RouteCondition("disallowed-kind", "tlsroutes-only", "Accepted", "False", "NotAllowedByListeners"),
        AttachedRoutes("tlsroutes-only", (0,)),
    ),
    ports=(),  # the TLS passthrough listener is served only with --enable-ssl-passthrough
))

_test("HTTPRouteInvalidBackendRefUnknownKind", Step(
    objects=(
        http_route(
            "invalid-backend-ref-unknown-kind",
            rule(backends=[backend(V1, 8080, group="unknownkind.example.com", kind="NonExistent")]),
            parents=[SAME],
        ),
    ),
    status_checks=(
        accepted("same-namespace", "invalid-backend-ref-unknown-kind", resolved=False),
        RouteCondition("invalid-backend-ref-unknown-kind", "same-namespace", "ResolvedRefs", "False", "InvalidKind"),
    ),
    cases=(({"path": "/v2"}, {"status": 500}),),
))

_test("HTTPRouteInvalidCrossNamespaceBackendRef", Step(
    objects=(
        http_route(
            "invalid-cross-namespace-backend-ref",
            rule(backends=[backend("web-backend", 8080, namespace=WEB)]),
            parents=[SAME],
        ),
    ),
    status_checks=(
        accepted("same-namespace", "invalid-cross-namespace-backend-ref", resolved=False),
        RouteCondition(
            "invalid-cross-namespace-backend-ref", "same-namespace", "ResolvedRefs", "False", "RefNotPermitted"
        ),
    ),
    cases=(({"path": "/"}, {"status": 500}),),
))

_test("HTTPRouteInvalidCrossNamespaceParentRef", Step(
    objects=(
        http_route(
            "invalid-cross-namespace-parent-ref",
            rule(backends=_v("web-backend")),
            parents=[parent("same-namespace", INFRA)],
            namespace=WEB,
        ),
    ),
    status_checks=(
        RouteCondition("invalid-cross-namespace-parent-ref", "same-namespace", "ResolvedRefs", "True", namespace=WEB),
        RouteCondition(
            "invalid-cross-namespace-parent-ref", "same-namespace", "Accepted", "False", "NotAllowedByListeners",
            namespace=WEB,
        ),
        AttachedRoutes("same-namespace", (0,)),
    ),
    cases=(({"path": "/"}, {"status": 404}),),
))

_test("HTTPRouteInvalidNonExistentBackendRef", Step(
    objects=(
        http_route(
            "invalid-nonexistent-backend-ref",
            rule(backends=[backend("nonexistent", 8080, namespace=INFRA)]),
            parents=[SAME],
        ),
    ),
    status_checks=(
        accepted("same-namespace", "invalid-nonexistent-backend-ref", resolved=False),
        RouteCondition("invalid-nonexistent-backend-ref", "same-namespace", "ResolvedRefs", "False", "BackendNotFound"),
    ),
    cases=(({"path": "/"}, {"status": 500}),),
))

_test("HTTPRouteInvalidParentRefNotMatchingListenerPort", Step(
    objects=(
        http_route(
            "httproute-listener-not-matching-route-port",
            rule(backends=[backend(V1, 8080, kind="Service")]),
            parents=[parent("same-namespace", INFRA, port=81)],
        ),
    ),
    status_checks=(
        RouteCondition(
            "httproute-listener-not-matching-route-port", "same-namespace", "ResolvedRefs", "True", "ResolvedRefs"
        ),
        NotAttached("httproute-listener-not-matching-route-port", "same-namespace", "NoMatchingParent"),
    ),
))

_test("HTTPRouteInvalidParentRefNotMatchingSectionName", Step(
    objects=(
        http_route(
            "httproute-listener-not-matching-section-name",
            rule(backends=[backend(V1, 8080, kind="Service")]),
            parents=[parent("same-namespace", INFRA, port=80, section="http1")],
        ),
    ),
    status_checks=(NotAttached("httproute-listener-not-matching-section-name", "same-namespace", "NoMatchingParent"),),
))

_NOT_MATCHING_PORT = "gateway-with-one-not-matching-port-and-section-name-route"
_test("HTTPRouteInvalidParentRefSectionNameNotMatchingPort", Step(
    objects=(
        gateway(_NOT_MATCHING_PORT, listener("http", 80, kinds=[{"kind": "HTTPRoute"}], namespaces="All")),
        http_route(
            "httproute-listener-section-name-not-matching-port",
            rule(backends=[backend(V1, 8080, kind="Service")]),
            parents=[parent(_NOT_MATCHING_PORT, INFRA, section="http", port=81)],
        ),
    ),
    gateways=(_NOT_MATCHING_PORT,),
    status_checks=(
        NotAttached("httproute-listener-section-name-not-matching-port", _NOT_MATCHING_PORT, "NoMatchingParent"),
    ),
))


def _wrong_grants() -> tuple[dict, ...]:
    def grant(name: str, namespace: str, froms: tuple[str, str, str], tos: tuple[str, str, str]) -> dict:
        return reference_grant(name, namespace, froms=[froms], tos=[tos])

    route = ("gateway.networking.k8s.io", "HTTPRoute", INFRA)
    return (
        grant("reference-grant-wrong-namespace", INFRA, route, ("", "Service", "web-backend")),
        grant(
            "reference-grant-wrong-from-group", WEB, ("not-the-group-youre-looking-for", "HTTPRoute", INFRA),
            ("", "Service", "web-backend"),
        ),
        grant(
            "reference-grant-wrong-from-kind", WEB, ("gateway.networking.k8s.io", "Gateway", INFRA),
            ("", "Service", "web-backend"),
        ),
        grant(
            "reference-grant-wrong-from-namespace", WEB,
            ("gateway.networking.k8s.io", "HTTPRoute", "not-the-namespace-youre-looking-for"),
            ("", "Service", "web-backend"),
        ),
        grant("reference-grant-wrong-to-group", WEB, route,
              ("not-the-group-youre-looking-for", "Service", "web-backend")),
        grant("reference-grant-wrong-to-kind", WEB, route, ("", "Secret", "web-backend")),
        grant("reference-grant-wrong-to-name", WEB, route, ("", "Secret", "not-the-service-youre-looking-for")),
    )


_test("HTTPRouteInvalidReferenceGrant", Step(
    objects=(
        *_wrong_grants(),
        http_route("reference-grant", rule(backends=[backend("web-backend", 8080, namespace=WEB)]), parents=[SAME]),
    ),
    status_checks=(
        accepted("same-namespace", "reference-grant", resolved=False),
        RouteCondition("reference-grant", "same-namespace", "ResolvedRefs", "False", "RefNotPermitted"),
    ),
    cases=(({"path": "/"}, {"status": 500}),),
))


def _reference_grant() -> list[Step]:
    grant = reference_grant(
        "reference-grant",
        WEB,
        froms=[("gateway.networking.k8s.io", "HTTPRoute", INFRA)],
        tos=[("", "Service", "web-backend")],
    )
    route = http_route("reference-grant", rule(backends=[backend("web-backend", 8080, namespace=WEB)]), parents=[SAME])
    return [
        Step(
            objects=(grant, route),
            status_checks=(accepted("same-namespace", "reference-grant"),),
            cases=(({"path": "/"}, {"backend": "web-backend", "namespace": WEB}),),
        ),
        # Simple HTTP request should return 500 after deleting the relevant reference grant
        Step(objects=(route,), cases=(({"path": "/"}, {"status": 500}),)),
    ]


_test("HTTPRouteReferenceGrant", *_reference_grant())

_test("HTTPRoutePartiallyInvalidViaInvalidReferenceGrant", Step(
    objects=(
        reference_grant(
            "invalid-reference-grant",
            APP,
            froms=[("gateway.networking.k8s.io", "HTTPRoute", INFRA)],
            tos=[("", "Service", "app-backend-v1")],
        ),
        http_route(
            "invalid-reference-grant",
            rule(match("/v2"), backends=[backend("app-backend-v2", 8080, namespace=APP)]),
            rule(backends=[backend("app-backend-v1", 8080, namespace=APP)]),
            parents=[SAME],
        ),
    ),
    status_checks=(
        accepted("same-namespace", "invalid-reference-grant", resolved=False),
        RouteCondition("invalid-reference-grant", "same-namespace", "ResolvedRefs", "False", "RefNotPermitted"),
    ),
    cases=(
        ({"path": "/v2"}, {"status": 500}),
        ({"path": "/"}, {"backend": "app-backend-v1", "namespace": APP}),
    ),
))


def _listener_port_matching() -> Step:
    gw = "httproute-listener-port-matching"

    def ref(port: int, section: str | None = None) -> dict:
        return parent(gw, INFRA, port=port, section=section)

    return Step(
        objects=(
            gateway(
                gw,
                listener("listener-1", 80, hostname="foo.com"),
                listener("listener-2", 8080, hostname="foo.com"),
                listener("listener-3", 8080, hostname="bar.com"),
                listener("listener-4", 8090, hostname="foo.com"),
                listener("listener-5", 8090, hostname="bar.com"),
            ),
            http_route("backend-v1", rule(backends=_v(V1)), parents=[ref(80)]),
            http_route("backend-v2", rule(backends=_v(V2)), parents=[ref(8080)]),
            http_route("backend-v3", rule(backends=_v(V3)), parents=[ref(8090, "listener-4")]),
        ),
        gateways=(gw,),
        status_checks=(
            accepted(gw, "backend-v1", listeners=("listener-1",)),
            accepted(gw, "backend-v2", listeners=("listener-2",)),
            accepted(gw, "backend-v3", listeners=("listener-4",)),
        ),
        cases=(
            ({"host": "foo.com", "port": 80}, {"backend": V1}),
            ({"host": "foo.com:8080", "port": 8080}, {"backend": V2}),
            ({"host": "bar.com:8080", "port": 8080}, {"backend": V2}),
            ({"host": "foo.com:8090", "port": 8090}, {"backend": V3}),
            ({"host": "bar.com:8090", "port": 8090}, {"status": 404}),
        ),
    )


_test("HTTPRouteListenerPortMatching", _listener_port_matching())


def _multiple_gateways() -> list[Step]:
    routes = (
        http_route(
            "multiple-gateways-shared-route",
            rule(match("/shared"), backends=_v(V1)),
            parents=[parent("same-namespace"), parent("all-namespaces")],
        ),
        http_route(
            "same-namespace-dedicated-route", rule(match("/"), backends=_v(V2)), parents=[parent("same-namespace")]
        ),
        http_route(
            "all-namespaces-dedicated-route", rule(match("/"), backends=_v(V3)), parents=[parent("all-namespaces")]
        ),
    )
    return [
        # Each Gateway served by its own process (the production shape: one Deployment per Gateway).
        Step(
            objects=routes,
            gateways=("same-namespace",),
            status_checks=(
                accepted("same-namespace", "multiple-gateways-shared-route", "same-namespace-dedicated-route"),
            ),
            cases=(({"path": "/shared"}, {"backend": V1}), ({"path": "/"}, {"backend": V2})),
        ),
        Step(
            objects=routes,
            gateways=("all-namespaces",),
            status_checks=(
                accepted("all-namespaces", "multiple-gateways-shared-route", "all-namespaces-dedicated-route"),
            ),
            cases=(({"path": "/shared"}, {"backend": V1}), ({"path": "/"}, {"backend": V3})),
        ),
        # Both in one process: one status entry per parentRef, each Accepted.
        Step(
            objects=routes,
            gateways=("same-namespace", "all-namespaces"),
            status_checks=(
                accepted("same-namespace", "multiple-gateways-shared-route"),
                accepted("all-namespaces", "multiple-gateways-shared-route"),
            ),
        ),
    ]


_test("HTTPRouteMultipleGateways", *_multiple_gateways())


def _observed_generation_bump() -> list[Step]:
    def route(generation: int, name: str) -> dict:
        return http_route("observed-generation-bump", rule(backends=_v(name)), parents=[SAME], generation=generation)

    def changed(config: Config, previous: Config | None) -> None:
        assert previous is not None and previous.checksum != config.checksum

    return [
        Step(
            objects=(route(1, V1),),
            status_checks=(generations("HTTPRoute", "observed-generation-bump", 1),),
            cases=(({"path": "/"}, {"backend": V1}),),
        ),
        Step(
            objects=(route(2, V2),),
            status_checks=(
                generations("HTTPRoute", "observed-generation-bump", 2),
                RouteCondition("observed-generation-bump", "same-namespace", "Accepted", "True"),
                RouteCondition("observed-generation-bump", "same-namespace", "ResolvedRefs", "True", "ResolvedRefs"),
            ),
            cases=(({"path": "/"}, {"backend": V2}),),
            routing=changed,
        ),
    ]


_test("HTTPRouteObservedGenerationBump", *_observed_generation_bump())


# ---------------------------------------------------------------------- HTTPS

_HTTPS = "same-namespace-with-https-listener"


def _https_listener() -> Step:
    def served(config: Config, previous: Config | None) -> None:
        listener_config = config.listeners[8443]
        assert (listener_config.protocol, listener_config.port, listener_config.ingress) == ("HTTPS", 443, True)
        assert listener_config.certificates[""] == (INFRA, "tls-validity-checks-certificate")

    return Step(
        objects=(
            http_route(
                "httproute-https-test", rule(backends=_v(V1)), parents=[parent(_HTTPS)], hostnames=["example.org"]
            ),
            http_route(
                "httproute-https-test-no-hostname",
                rule(backends=_v(V2)),
                parents=[parent(_HTTPS, section="https-with-hostname")],
            ),
        ),
        gateways=(_HTTPS,),
        status_checks=(accepted(_HTTPS, "httproute-https-test", "httproute-https-test-no-hostname"),),
        cases=at([
            ({"host": "example.org"}, {"backend": V1, "namespace": INFRA}),
            ({"host": "unknown-example.org"}, {"status": 404}),
            ({"host": "second-example.org"}, {"backend": V2, "namespace": INFRA}),
        ], port=443),
        routing=served,
    )


_test("HTTPRouteHTTPSListener", _https_listener())


def _detect_misdirected_requests() -> Step:
    """SNI and Host naming hosts of different listeners: 421. The upstream's cases are HTTP/2 over TLS (`h2`: a
    connection for the SNI's host carrying a request for another); each is also sent over HTTP/1.1."""
    section = {
        1: "https",
        2: "https-with-hostname",
        3: "https-with-wildcard-hostname",
        4: "https-with-hostname-matching-wildcard",
    }
    backends = {1: V1, 2: V2, 3: V3, 4: V1}  # infra-backend-v4 does not exist: v1 is reused
    routes = tuple(
        http_route(
            f"https-listener-detect-misdirected-requests-test-{n}",
            rule(match("/detect-misdirected-requests"), backends=_v(backends[n])),
            parents=[parent(_HTTPS, section=section[n])],
            hostnames=["example.org"] if n == 1 else None,
        )
        for n in section
    )
    cases = [
        ("example.org", "example.org", 200, V1),
        ("example.org", "second-example.org", 421, None),
        ("example.org", "unknown-example.org", 404, None),
        ("second-example.org", "second-example.org", 200, V2),
        ("second-example.org", "example.org", 421, None),
        ("second-example.org", "unknown-example.org", 421, None),
        ("third-example.wildcard.org", "third-example.wildcard.org", 200, V3),
        ("third-example.wildcard.org", "fith-example.wildcard.org", 200, V3),
        ("third-example.wildcard.org", "fourth-example.wildcard.org", 421, None),
        ("third-example.wildcard.org", "second-example.org", 421, None),
        ("third-example.wildcard.org", "unknown-example.org", 421, None),
        ("fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, V1),
        ("fourth-example.wildcard.org", "fith-example.wildcard.org", 421, None),
        ("unknown-example.org", "example.org", 200, V1),
        ("unknown-example.org", "unknown-example.org", 404, None),
    ]
    return Step(
        objects=routes,
        gateways=(_HTTPS,),
        status_checks=(accepted(_HTTPS, *(r["metadata"]["name"] for r in routes)),),
        cases=tuple(
            (
                {"sni": sni, "host": host, "port": 443, "path": "/detect-misdirected-requests", **protocol},
                {"status": status, "backend": name, "namespace": INFRA} if name else {"status": status},
            )
            for protocol in ({"h2": True}, {})
            for sni, host, status, name in cases
        ),
    )


_test("HTTPRouteHTTPSListenerDetectMisdirectedRequests", _detect_misdirected_requests())


# ---------------------------------------------------------------------- CORS


def _cors() -> Step:
    routes = (
        http_route(
            "cors-multiple-origins-methods-headers",
            rule(
                match("/cors-1"),
                filters=[
                    cors(
                        allowOrigins=["https://www.foo.com", "https://*.bar.com"],
                        allowMethods=["GET", "OPTIONS"],
                        allowHeaders=["x-header-1", "x-header-2"],
                        exposeHeaders=["x-header-3", "x-header-4"],
                        allowCredentials=True,
                        maxAge=3600,
                    )
                ],
                backends=_v(V1),
            ),
            parents=[SAME],
        ),
        http_route(
            "cors-wildcard-methods",
            rule(
                match("/cors-2"),
                filters=[cors(allowOrigins=["https://www.foo.com"], allowMethods=["*"])],
                backends=_v(V1),
            ),
            parents=[SAME],
        ),
        http_route(
            "cors-wildcard-origin",
            rule(
                match("/cors-wildcard-origin"),
                filters=[cors(allowOrigins=["*"], allowMethods=["PUT"], allowCredentials=False)],
                backends=_v(V1),
            ),
            parents=[SAME],
        ),
        http_route(
            "cors-wildcard-methods-headers",
            rule(
                match("/cors-wildcard-methods-headers"),
                filters=[cors(allowOrigins=["*"], allowMethods=["*"], allowHeaders=["*"], allowCredentials=True)],
                backends=_v(V1),
            ),
            rule(
                match("/cors-wildcard-methods-headers-unauth"),
                filters=[cors(allowOrigins=["*"], allowMethods=["*"], allowHeaders=["*"], allowCredentials=False)],
                backends=_v(V1),
            ),
            parents=[SAME],
        ),
    )
    preflight = {"access-control-request-method": "GET", "access-control-request-headers": "x-header-1, x-header-2"}
    allowed_1 = {
        "access-control-allow-methods": ("GET, OPTIONS", "OPTIONS, GET"),
        "access-control-allow-headers": ("x-header-1, x-header-2", "x-header-2, x-header-1"),
        "access-control-expose-headers": ("x-header-3, x-header-4", "x-header-4, x-header-3"),
        "access-control-max-age": "3600",
        "access-control-allow-credentials": "true",
    }
    ok = (200, 204)

    def answered(statuses: tuple[int, ...], headers: dict, absent: tuple[str, ...] = ()) -> dict:
        """A preflight answered by the proxy itself (no backend)."""
        return {"status": statuses, "backend": "", "response_headers": headers, "absent_response": absent}

    def forwarded(headers: dict, absent: tuple[str, ...] = ()) -> dict:
        """A request that reaches the backend, with the CORS fields added to its answer."""
        return {"status": 200, "namespace": INFRA, "response_headers": headers, "absent_response": absent}

    return Step(
        objects=routes,
        status_checks=(accepted("same-namespace", *(r["metadata"]["name"] for r in routes)),),
        cases=(
            (
                {"path": "/cors-1", "method": "OPTIONS", "headers": {"Origin": "https://www.foo.com", **preflight}},
                answered(ok, {"access-control-allow-origin": "https://www.foo.com", **allowed_1}),
            ),
            (
                {"path": "/cors-1", "method": "OPTIONS", "headers": {"Origin": "https://www.bar.com", **preflight}},
                answered(ok, {"access-control-allow-origin": "https://www.bar.com", **allowed_1}),
            ),
            (
                {
                    "path": "/cors-1",
                    "method": "OPTIONS",
                    "headers": {"Origin": "https://xpto.www.bar.com", **preflight},
                },
                answered(ok, {"access-control-allow-origin": "https://xpto.www.bar.com", **allowed_1}),
            ),
            (
                {
                    "path": "/cors-1",
                    "method": "OPTIONS",
                    "headers": {"Origin": "https://foobar.com", "access-control-request-method": "GET"},
                },
                {
                    "status": (200, 204, 403),
                    "backend": "",
                    "response_headers": {},
                    "absent_response": ("access-control-allow-origin",),
                },
            ),
            (
                {"path": "/cors-1", "headers": {"Origin": "https://www.foo.com", **preflight}},
                forwarded({"access-control-allow-origin": "https://www.foo.com"}),
            ),
            (
                {"path": "/cors-1", "headers": {"Origin": "https://www.bar.com", **preflight}},
                forwarded({"access-control-allow-origin": "https://www.bar.com"}),
            ),
            (
                {
                    "path": "/cors-1",
                    "headers": {"Origin": "https://foobar.com", "access-control-request-method": "GET"},
                },
                forwarded({}, ("access-control-allow-origin",)),
            ),
            (
                {
                    "path": "/cors-2",
                    "method": "OPTIONS",
                    "headers": {"Origin": "https://www.foo.com", "access-control-request-method": "POST"},
                },
                answered(
                    ok,
                    {"access-control-allow-methods": ("POST", "*"), "access-control-allow-origin": "https://www.foo.com"},
                    ("access-control-allow-credentials",),
                ),
            ),
            (
                {
                    "path": "/cors-wildcard-origin",
                    "method": "OPTIONS",
                    "headers": {"Origin": "https://foobar.com", "access-control-request-method": "PUT"},
                },
                answered(
                    ok,
                    {"access-control-allow-origin": ("https://foobar.com", "*"), "access-control-allow-methods": "PUT"},
                    ("access-control-allow-credentials",),
                ),
            ),
            (
                {
                    "path": "/cors-wildcard-origin",
                    "method": "OPTIONS",
                    "headers": {"Origin": "https://foobar.com:12345", "access-control-request-method": "PUT"},
                },
                answered(
                    ok,
                    {
                        "access-control-allow-origin": ("https://foobar.com:12345", "*"),
                        "access-control-allow-methods": "PUT",
                    },
                    ("access-control-allow-credentials",),
                ),
            ),
            (
                {"path": "/cors-wildcard-origin", "method": "PUT", "headers": {"Origin": "https://foobar.com:12345"}},
                forwarded({"access-control-allow-origin": ("https://foobar.com:12345", "*")}),
            ),
            (
                {"path": "/cors-wildcard-origin", "method": "PUT", "headers": {"Origin": "https://foobar.com"}},
                forwarded(
                    {"access-control-allow-origin": ("https://foobar.com", "*")},
                    ("access-control-allow-credentials",),
                ),
            ),
            (
                {
                    "path": "/cors-wildcard-methods-headers",
                    "method": "OPTIONS",
                    "headers": {
                        "Origin": "https://other.foo.com",
                        "access-control-request-method": "PUT",
                        "access-control-request-headers": "x-header-1, x-header-2",
                    },
                },
                answered(
                    ok,
                    {
                        "access-control-allow-origin": "https://other.foo.com",
                        "access-control-allow-methods": "PUT",
                        "access-control-allow-headers": ("x-header-1, x-header-2", "x-header-2, x-header-1"),
                        "access-control-allow-credentials": "true",
                    },
                ),
            ),
            (
                {
                    "path": "/cors-wildcard-methods-headers-unauth",
                    "method": "OPTIONS",
                    "headers": {
                        "Origin": "https://other.foo.com",
                        "access-control-request-method": "PUT",
                        "access-control-request-headers": "x-header-1, x-header-2",
                    },
                },
                answered(
                    ok,
                    {
                        "access-control-allow-origin": ("https://other.foo.com", "*"),
                        "access-control-allow-methods": ("PUT", "*"),
                        "access-control-allow-headers": ("x-header-1, x-header-2", "x-header-2, x-header-1", "*"),
                    },
                    ("access-control-allow-credentials",),
                ),
            ),
            (
                {"path": "/cors-wildcard-methods-headers", "headers": {"Origin": "https://other.foo.com"}},
                forwarded(
                    {"access-control-allow-origin": "https://other.foo.com", "access-control-allow-credentials": "true"}
                ),
            ),
            (
                {"path": "/cors-wildcard-methods-headers-unauth", "headers": {"Origin": "https://other.foo.com"}},
                forwarded(
                    {"access-control-allow-origin": ("https://other.foo.com", "*")},
                    ("access-control-allow-credentials",),
                ),
            ),
        ),
    )


_test("HTTPRouteCORS", _cors())
