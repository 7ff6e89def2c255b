"""Which kinds discovery says to watch, and at which version, from APIResourceLists (table-style; the
request itself runs against the API emulator in tests/cluster/test_gateway_watch.py)."""

from __future__ import annotations

import pytest

from proxy.kube.discovery import discover, watchable
from proxy.kube.watch import WATCHED_KINDS

GROUP = "gateway.networking.k8s.io"
POLICY_KINDS = ("BackendTrafficPolicy", "BackendTLSPolicy")
DISCOVERED = [spec for spec in WATCHED_KINDS if spec.discovered and spec.kind not in POLICY_KINDS]
EVERYTHING = frozenset({"gatewayclasses", "gateways", "httproutes", "referencegrants"})


def served_by(table: dict[str, frozenset[str]]):
    """A fetch answering from `table` (version -> resources; missing: not served), recording what it was asked."""
    asked: list[str] = []

    async def fetch(group: str, version: str) -> frozenset[str] | None:
        assert group == GROUP
        asked.append(version)
        return table.get(version)

    return fetch, asked


@pytest.mark.parametrize(("table", "expected", "requests"), [
    ({"v1": EVERYTHING, "v1beta1": EVERYTHING},
     {"GatewayClass": "v1", "Gateway": "v1", "HTTPRoute": "v1", "TLSRoute": None, "GRPCRoute": None,
      "ReferenceGrant": "v1",
      "Namespace": ""}, ["v1", "v1alpha3", "v1alpha2"]),
    ({}, {"GatewayClass": None, "Gateway": None, "HTTPRoute": None, "TLSRoute": None, "GRPCRoute": None,
      "ReferenceGrant": None,
          "Namespace": None},
     ["v1", "v1alpha3", "v1alpha2", "v1beta1"]),
    # A bundle from before ReferenceGrant reached v1.
    ({"v1": EVERYTHING - {"referencegrants"}, "v1beta1": EVERYTHING},
     {"GatewayClass": "v1", "Gateway": "v1", "HTTPRoute": "v1", "TLSRoute": None, "GRPCRoute": None,
      "ReferenceGrant": "v1beta1",
      "Namespace": ""},
     ["v1", "v1alpha3", "v1alpha2", "v1beta1"]),
    # Only v1beta1 (a very old bundle): Gateways and routes are read at v1 only, so Namespaces
    # (read for Gateway listeners) are not read either.
    ({"v1beta1": EVERYTHING},
     {"GatewayClass": None, "Gateway": None, "HTTPRoute": None, "TLSRoute": None, "GRPCRoute": None,
      "ReferenceGrant": "v1beta1",
      "Namespace": None},
     ["v1", "v1alpha3", "v1alpha2", "v1beta1"]),
    # TLSRoute: v1 (Gateway API v1.5 on), or the experimental channel's v1alpha2 of older bundles.
    ({"v1": EVERYTHING | {"tlsroutes"}},
     {"GatewayClass": "v1", "Gateway": "v1", "HTTPRoute": "v1", "TLSRoute": "v1", "GRPCRoute": None,
      "ReferenceGrant": "v1",
      "Namespace": ""}, ["v1"]),
    # GRPCRoute: v1 only (standard channel since Gateway API v1.1).
    ({"v1": EVERYTHING | {"grpcroutes"}},
     {"GatewayClass": "v1", "Gateway": "v1", "HTTPRoute": "v1", "TLSRoute": None, "GRPCRoute": "v1",
      "ReferenceGrant": "v1", "Namespace": ""}, ["v1", "v1alpha3", "v1alpha2"]),
    ({"v1": EVERYTHING, "v1alpha2": frozenset({"tlsroutes"})},
     {"GatewayClass": "v1", "Gateway": "v1", "HTTPRoute": "v1", "TLSRoute": "v1alpha2", "GRPCRoute": None,
      "ReferenceGrant": "v1",
      "Namespace": ""}, ["v1", "v1alpha3", "v1alpha2"]),
])
async def test_discover(table, expected, requests) -> None:
    fetch, asked = served_by(table)
    assert await discover(fetch, DISCOVERED, every=WATCHED_KINDS) == expected
    assert asked == requests  # each group version asked once, and only when needed


@pytest.mark.parametrize(("served", "expected"), [
    ({("pyngress.dev", "v1alpha1"): frozenset({"backendtrafficpolicies"}),
      (GROUP, "v1"): EVERYTHING | {"backendtlspolicies"}},
     {"BackendTrafficPolicy": "v1alpha1", "BackendTLSPolicy": "v1"}),
    # Our CRD without the Gateway API's BackendTLSPolicy. (ConfigMaps are always watched: Ingresses name them.)
    ({("pyngress.dev", "v1alpha1"): frozenset({"backendtrafficpolicies"}), (GROUP, "v1"): EVERYTHING},
     {"BackendTrafficPolicy": "v1alpha1", "BackendTLSPolicy": None}),
    ({}, {"BackendTrafficPolicy": None, "BackendTLSPolicy": None}),
])
async def test_discover_policy_kinds(served, expected) -> None:
    async def fetch(group: str, version: str) -> frozenset[str] | None:
        return served.get((group, version))

    specs = [spec for spec in WATCHED_KINDS if spec.kind in POLICY_KINDS and spec.discovered]
    assert await discover(fetch, specs, every=WATCHED_KINDS) == expected


async def test_kinds_of_built_in_groups_need_no_request() -> None:
    fetch, asked = served_by({})
    plain = [spec for spec in WATCHED_KINDS if not spec.discovered]
    assert await discover(fetch, plain) == {spec.kind: "" for spec in plain}
    assert asked == []


def test_watchable_resources() -> None:
    document = {"kind": "APIResourceList", "groupVersion": f"{GROUP}/v1", "resources": [
        {"name": "gateways", "verbs": ["get", "list", "watch"]},
        {"name": "gateways/status", "verbs": ["get", "patch", "update"]},
        {"name": "readonly", "verbs": ["get"]},
        {"name": "unspecified"},
        "junk",
    ]}
    assert watchable(document) == {"gateways", "unspecified"}
    assert watchable({"kind": "Status"}) is None and watchable([]) is None
