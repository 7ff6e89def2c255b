"""The upstream conformance suite's GRPCRoute tests (conformance/tests/grpcroute-*.go and their manifests) as data
(scenario.py), run at the routing level (test_conformance_grpcroute.py) and end to end with a real grpcio client
and grpcio echo pods (tests/e2e/gateway).

A gRPC case's request has `grpc`: the method of the upstream's echo service
(gateway_api_conformance.echo_basic.grpcecho.GrpcEcho: "Echo", "EchoTwo", "EchoThree"), `metadata` (the
upstream's RequestMetadata.Metadata) and `host` (its Authority: the `:authority` the client sends). Expected:
`backend` (the answering pod's name starts with it, as upstream's compareResponse checks), `namespace`,
`pod` (when the Service's pods are another Deployment's: the pod name's prefix), `grpc_status` (the gRPC status
code; default 0, OK; FAILED: anything else; the routing level, which sees no gRPC, expects 404 for 12
UNIMPLEMENTED, the proxy's answer when no rule takes a call, and checks `routed_to` and `backend_tls` for a call
whose TLS to the pod must fail), and `request_headers` / `absent` (the metadata the pod received; upstream lists
the headers it expects but never compares them, see GRPCRouteRequestHeaderModifier).

Left out: the mesh profile's tests (conformance/tests/mesh).
"""

from __future__ import annotations

from .objects import (
    INFRA,
    _metadata,
    backend,
    endpoint_slice,
    gateway,
    grpc_match,
    grpc_route,
    header_filter,
    listener,
    parent,
    pod_addresses,
    rule,
)
from .scenario import ConformanceTest, Distribution, Step
from .status_checks import AttachedRoutes, accepted, policy_accepted
from .suite_backendtls import MISMATCH_CA, ca_ref, tls, tls_policy

ECHO = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
V1, V2, V3 = "grpc-infra-backend-v1", "grpc-infra-backend-v2", "grpc-infra-backend-v3"
SAME = parent("same-namespace")
UNIMPLEMENTED = 12
FAILED = -1  # any status but OK (upstream's MakeRequestAndExpectEventuallyConsistentFailure)
TESTS: list[ConformanceTest] = []


def _test(name: str, *steps: Step, **options: object) -> None:
    TESTS.append(ConformanceTest(name, steps, **options))  # type: ignore[arg-type]


def _v(name: str, **options: object) -> list:
    return [backend(name, 8080, **options)]  # type: ignore[arg-type]


def _same(route: dict, cases: list) -> Step:
    """GatewayAndRoutesMustBeAccepted on same-namespace (GRPCRoute status), then the cases on port 80."""
    return Step(objects=(route,), cases=tuple(cases),
                status_checks=(accepted("same-namespace", route["metadata"]["name"], kind="grpcRoutes"),))


def _call(method: str, metadata: dict[str, str] | None = None, host: str = "") -> dict:
    request: dict = {"grpc": method}
    if metadata:
        request["metadata"] = metadata
    if host:
        request["host"] = host
    return request


# ---------------------------------------------------------------------- grpcroute-exact-method-matching

_test("GRPCExactMethodMatching", _same(
    grpc_route("exact-matching",
               rule(grpc_match(ECHO, "Echo"), backends=_v(V1)),
               rule(grpc_match(ECHO, "EchoTwo"), backends=_v(V2)),
               parents=[SAME]),
    [
        (_call("Echo"), {"backend": V1, "namespace": INFRA}),
        (_call("EchoTwo"), {"backend": V2, "namespace": INFRA}),
        (_call("EchoThree"), {"grpc_status": UNIMPLEMENTED}),
    ],
))

# ---------------------------------------------------------------------- grpcroute-header-matching

_test("GRPCRouteHeaderMatching", _same(
    grpc_route(
        "grpc-header-matching",
        rule(grpc_match(headers=[("version", "one")]), backends=_v(V1)),
        rule(grpc_match(headers=[("version", "two")]), backends=_v(V2)),
        rule(grpc_match(headers=[("version", "two"), ("color", "orange")]), backends=_v(V1)),
        rule(grpc_match(headers=[("color", "blue")]), grpc_match(headers=[("color", "green")]), backends=_v(V1)),
        rule(grpc_match(headers=[("color", "red")]), grpc_match(headers=[("color", "yellow")]), backends=_v(V2)),
        parents=[SAME]),
    [
        (_call("Echo", {"Version": "one"}), {"backend": V1, "namespace": INFRA}),
        (_call("Echo", {"Version": "two"}), {"backend": V2, "namespace": INFRA}),
        (_call("Echo", {"Version": "two", "Color": "orange"}), {"backend": V1, "namespace": INFRA}),
        (_call("Echo", {"Version": "two", "Color": "blue"}), {"backend": V2, "namespace": INFRA}),
        (_call("Echo", {"Color": "orange"}), {"grpc_status": UNIMPLEMENTED}),
        (_call("Echo", {"Some-Other-Header": "one"}), {"grpc_status": UNIMPLEMENTED}),
        (_call("Echo", {"Color": "blue"}), {"backend": V1, "namespace": INFRA}),
        (_call("Echo", {"Color": "green"}), {"backend": V1, "namespace": INFRA}),
        (_call("Echo", {"Color": "red"}), {"backend": V2, "namespace": INFRA}),
        (_call("Echo", {"Color": "yellow"}), {"backend": V2, "namespace": INFRA}),
        (_call("Echo", {"Color": "purple"}), {"grpc_status": UNIMPLEMENTED}),
    ],
))

# ---------------------------------------------------------------------- grpcroute-listener-hostname-matching

_HOSTNAMES = "grpcroute-listener-hostname-matching"


def _on(*sections: str) -> list:
    return [parent(_HOSTNAMES, INFRA, section=section) for section in sections]


_test("GRPCRouteListenerHostnameMatching", Step(
    objects=(
        gateway(_HOSTNAMES,
                listener("listener-1", 80, hostname="bar.com"),
                listener("listener-2", 80, hostname="foo.bar.com"),
                listener("listener-3", 80, hostname="*.bar.com"),
                listener("listener-4", 80, hostname="*.foo.com")),
        grpc_route("backend-v1", rule(backends=_v(V1)), parents=_on("listener-1")),
        grpc_route("backend-v2", rule(backends=_v(V2)), parents=_on("listener-2")),
        grpc_route("backend-v3", rule(backends=_v(V3)), parents=_on("listener-3", "listener-4")),
    ),
    gateways=(_HOSTNAMES,),
    status_checks=(
        accepted(_HOSTNAMES, "backend-v1", listeners=("listener-1",), kind="grpcRoutes"),
        accepted(_HOSTNAMES, "backend-v2", listeners=("listener-2",), kind="grpcRoutes"),
        accepted(_HOSTNAMES, "backend-v3", listeners=("listener-3", "listener-4"), kind="grpcRoutes"),
        AttachedRoutes(_HOSTNAMES, (1, 1, 1, 1)),
    ),
    ports=(80,),
    cases=(
        (_call("Echo", host="bar.com"), {"backend": V1, "namespace": INFRA}),
        (_call("Echo", host="foo.bar.com"), {"backend": V2, "namespace": INFRA}),
        (_call("Echo", host="baz.bar.com"), {"backend": V3, "namespace": INFRA}),
        (_call("Echo", host="boo.bar.com"), {"backend": V3, "namespace": INFRA}),
        (_call("Echo", host="multiple.prefixes.bar.com"), {"backend": V3, "namespace": INFRA}),
        (_call("Echo", host="multiple.prefixes.foo.com"), {"backend": V3, "namespace": INFRA}),
        (_call("Echo", host="foo.com"), {"grpc_status": UNIMPLEMENTED}),
        (_call("Echo", host="no.matching.host"), {"grpc_status": UNIMPLEMENTED}),
    ),
))

# ---------------------------------------------------------------------- grpcroute-named-rule (provisional upstream)

_test("GRPCRouteNamedRule", _same(
    grpc_route("grpc-named-rules",
               rule(grpc_match(ECHO, "Echo"), backends=_v(V1), name="named-rule"),
               rule(grpc_match(ECHO, "EchoTwo"), backends=_v(V2)),
               parents=[SAME]),
    [
        (_call("Echo"), {"backend": V1, "namespace": INFRA}),
        (_call("EchoTwo"), {"backend": V2, "namespace": INFRA}),
    ],
))

# ---------------------------------------------------------------------- grpcroute-request-header-modifier
# The manifest's three Echo rules have the same match: the spec gives such ties to the first matching rule (the
# set), so the add and remove rules never serve a call. Upstream's expected headers say otherwise for its "Add"
# and "Remove" cases (and list "header-add-1,add-header-2" and "set-overwrites-values" for EchoTwo), but its
# compareResponse never compares headers: only the backend answering. The cases below keep its requests and
# backends and expect what the filters of the rule the spec picks make of the metadata.

_AUTHORITY = ECHO  # upstream's Authority for these cases; the listener has no hostname
_SET = {"X-Header-Set": "set-overwrites-values"}

_test("GRPCRouteRequestHeaderModifier", _same(
    grpc_route(
        "grpc-request-header-modifier",
        rule(grpc_match(ECHO, "Echo"), backends=_v(V1),
             filters=[header_filter(set={"X-Header-Set": "set-overwrites-values"})]),
        rule(grpc_match(ECHO, "Echo"), backends=_v(V1),
             filters=[header_filter(add={"X-Header-Add": "add-appends-values"})]),
        rule(grpc_match(ECHO, "Echo"), backends=_v(V1), filters=[header_filter(remove=["X-Header-Remove"])]),
        rule(grpc_match(ECHO, "EchoTwo"), backends=_v(V2),
             filters=[header_filter(set={"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2"},
                                    add={"X-Header-Add-1": "header-add-1", "X-Header-Add-2": "header-add-2"},
                                    remove=["X-Header-Remove-1", "X-Header-Remove-2"])]),
        parents=[SAME]),
    [
        # Set headers -- X-Header-Set should have the original value
        (_call("Echo", {"Some-Other-Header": "this-header-should-be-set"}, _AUTHORITY),
         {"backend": V1, "namespace": INFRA,
          "request_headers": {"Some-Other-Header": "this-header-should-be-set", **_SET}}),
        # Set headers -- X-Header-Set should get overwritten with the original value
        (_call("Echo", {"Some-Other-Header": "this-header-should-be-set",
                        "X-Header-Set": "this-value-should-be-overwritten"}, _AUTHORITY),
         {"backend": V1, "namespace": INFRA,
          "request_headers": {"Some-Other-Header": "this-header-should-be-set", **_SET}}),
        # Add headers -- X-Header-Add should have the original value (the set rule serves Echo: nothing added)
        (_call("Echo", {"Some-Other-Header": "this-header-should-be-set"}, _AUTHORITY),
         {"backend": V1, "namespace": INFRA,
          "request_headers": {"Some-Other-Header": "this-header-should-be-set", **_SET}, "absent": ["X-Header-Add"]}),
        # Add headers -- X-Header-Add should append the new value to the original value
        (_call("Echo", {"Some-Other-Header": "this-header-should-be-set",
                        "X-Header-Add": "this-value-should-be-appended"}, _AUTHORITY),
         {"backend": V1, "namespace": INFRA,
          "request_headers": {"Some-Other-Header": "this-header-should-be-set",
                              "X-Header-Add": "this-value-should-be-appended", **_SET}}),
        # Remove headers -- X-Header-Remove should be removed (the set rule serves Echo: it stays)
        (_call("Echo", {"X-Header-Remove": "this-should-be-removed"}, _AUTHORITY),
         {"backend": V1, "namespace": INFRA,
          "request_headers": {"X-Header-Remove": "this-should-be-removed", **_SET}}),
        # Multiple operations - all header operations should be applied
        (_call("EchoTwo", {"X-Header-Set-2": "set-header-2", "X-Header-Add-2": "add-header-2",
                           "X-Header-Remove-2": "should-be-removed-2", "Some-Other-Header": "another-header-val"},
               _AUTHORITY),
         {"backend": V2, "namespace": INFRA,
          "request_headers": {"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2",
                              "X-Header-Add-1": "header-add-1", "X-Header-Add-2": "add-header-2,header-add-2",
                              "Some-Other-Header": "another-header-val"},
          "absent": ["X-Header-Remove-2"]}),
        # Case sensitivity check for header names (the filter's names canonical, the request's lowercase)
        (_call("EchoTwo", {"x-header-set-1": "original-set-1", "x-header-add-1": "existing-add-1",
                           "x-header-remove-1": "should-be-removed-1"}, _AUTHORITY),
         {"backend": V2, "namespace": INFRA,
          "request_headers": {"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2",
                              "X-Header-Add-1": "existing-add-1,header-add-1", "X-Header-Add-2": "header-add-2"},
          "absent": ["X-Header-Remove-1"]}),
    ],
))

# ---------------------------------------------------------------------- grpcroute-weight
# The first call must succeed (any backend, the infra namespace), then 500 calls (one connection each, as
# upstream's fresh DefaultClient per sample) split 70/30/0 within 5 percentage points.

_test("GRPCRouteWeight", Step(
    objects=(grpc_route("weighted-backends",
                        rule(backends=[backend(V1, 8080, weight=70), backend(V2, 8080, weight=30),
                                       backend(V3, 8080, weight=0)]),
                        parents=[SAME]),),
    status_checks=(accepted("same-namespace", "weighted-backends", kind="grpcRoutes"),),
    cases=((_call("Echo"), {"namespace": INFRA}),),
    distribution=Distribution({V1: 0.7, V2: 0.3, V3: 0.0}, draws=100, requests=500, tolerance=0.05,
                              request=_call("Echo")),
))

# ---------------------------------------------------------------------- backendtlspolicy-grpcroute
# Three Services selecting grpc-infra-backend-v1's pods on their TLS port (8443: gRPC over TLS with the
# certificate tls-checks-ca-certificate signed, for abc.example.com), each under a BackendTLSPolicy: a valid one,
# one whose hostname the certificate does not name, one with a CA that signed nothing. Upstream's
# BackendTLSPolicyGRPCRoute (features GRPCRoute, BackendTLSPolicy); its failures are any non-OK status.

_BTLS = ("backendtlspolicy-grpc-test", "backendtlspolicy-grpc-host-mismatch-test",
         "backendtlspolicy-grpc-cert-mismatch-test")


def _tls_service(name: str) -> list[dict]:
    """A Service of grpc-infra-backend-v1's pods, port btls 443 -> 8443, and its EndpointSlice."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(name, INFRA),
           "spec": {"selector": {"app": V1}, "type": "ClusterIP", "clusterIP": "10.96.0.40",
                    "ports": [{"name": "btls", "protocol": "TCP", "port": 443, "targetPort": 8443}]}}
    return [svc, endpoint_slice(name, *pod_addresses(V1), ports={"btls": 8443})]


_test("BackendTLSPolicyGRPCRoute", Step(
    objects=(
        *(obj for name in _BTLS for obj in _tls_service(name)),
        grpc_route("backendtlspolicy-grpcroute",
                   rule(grpc_match(ECHO, "Echo"), backends=[backend(_BTLS[0], 443, group="", kind="Service")]),
                   rule(grpc_match(ECHO, "EchoTwo"), backends=[backend(_BTLS[1], 443, group="", kind="Service")]),
                   parents=[parent("same-namespace", INFRA)], hostnames=["abc.example.com"]),
        grpc_route("backendtlspolicy-grpcroute-cert-mismatch",
                   rule(grpc_match(ECHO, "Echo"), backends=[backend(_BTLS[2], 443, group="", kind="Service")]),
                   parents=[parent("same-namespace", INFRA)], hostnames=["cert-mismatch.example.com"]),
        tls_policy("grpc-normative-test", _BTLS[0]),
        tls_policy("grpc-host-mismatch", _BTLS[1], hostname="mismatch.example.com"),
        tls_policy("grpc-cert-mismatch", _BTLS[2], ca=[ca_ref(MISMATCH_CA)]),
    ),
    status_checks=(
        accepted("same-namespace", "backendtlspolicy-grpcroute", "backendtlspolicy-grpcroute-cert-mismatch",
                 kind="grpcRoutes"),
        *policy_accepted("grpc-normative-test"),
        *policy_accepted("grpc-host-mismatch"),
        *policy_accepted("grpc-cert-mismatch"),
    ),
    cases=(
        (_call("Echo", host="abc.example.com"),
         {"backend": _BTLS[0], "pod": V1, "namespace": INFRA, "backend_tls": tls()}),
        (_call("EchoTwo", host="abc.example.com"),
         {"grpc_status": FAILED, "routed_to": _BTLS[1], "backend_tls": tls("mismatch.example.com")}),
        (_call("Echo", host="cert-mismatch.example.com"),
         {"grpc_status": FAILED, "routed_to": _BTLS[2], "backend_tls": tls(ca=MISMATCH_CA)}),
    ),
))
