"""Backend resolution: Service port → EndpointSlice (or legacy Endpoints) port → ready pod endpoints."""

from __future__ import annotations

import pytest

from proxy.routing.build import build
from proxy.routing.clusters import (
    ClusterResolver,
    cluster_key,
    cluster_protocol,
    protocol_key,
    resolve_cluster,
    split_cluster_key,
)
from proxy.routing.model import PROTOCOL_H2C, Cluster, Endpoint
from proxy.routing.policies import HTTP2, ClusterPolicy, policy_key
from proxy.settings import Settings

from .objects import (
    endpoint,
    endpoint_slice,
    ingress,
    legacy_endpoints,
    path,
    route_for,
    rule,
    service,
    service_port,
    snapshot,
)

SETTINGS = Settings()


def _resolve(port: str, *objects, service_name: str = "web", namespace: str = "default"):
    return resolve_cluster(snapshot(*objects), namespace=namespace, service=service_name, port=port)


def _endpoints(port: str, *objects) -> list[tuple[str, int]]:
    cluster, warnings = _resolve(port, *objects)
    assert warnings == []
    return [tuple(e) for e in cluster.endpoints]


def test_cluster_key_format():
    assert cluster_key("shop", "web", "80") == "shop/web:80"
    assert cluster_key("shop", "web", 80) == "shop/web:80"
    assert cluster_key("shop", "web", "http") == "shop/web:http"


# A two-port Service whose target ports differ from its ports, like most real Deployments.
TWO_PORTS = [
    service("web", service_port(80, name="http", target="http"), service_port(9090, name="metrics", target=9091)),
    endpoint_slice("web", [endpoint("10.1.0.1"), endpoint("10.1.0.2")], [("http", 8080), ("metrics", 9091)]),
]


def test_h2c_cluster_keys_carry_their_protocol():
    """A GRPCRoute backend's cluster ("~h2c") resolves the same Service port with Cluster.protocol HTTP2, also under a
    traffic policy (whose digest comes after it); the plain key of the same port stays HTTP/1.1."""
    plain = cluster_key("default", "web", "80")
    h2c = protocol_key(plain, PROTOCOL_H2C)
    assert h2c == "default/web:80~h2c" and cluster_protocol(h2c) == PROTOCOL_H2C and cluster_protocol(plain) == ""
    variant = policy_key(h2c, ClusterPolicy(connect_timeout=1.0))
    assert cluster_protocol(variant) == PROTOCOL_H2C and split_cluster_key(variant) == ("default", "web", "80")
    objects = (service("web"), endpoint_slice("web", [endpoint("10.0.0.1")]))
    resolver = ClusterResolver(snapshot(*objects))
    found, warnings = resolver.resolve(namespace="default", service="web", port="80", protocol=PROTOCOL_H2C)
    assert warnings == [] and (found.key, found.protocol) == (h2c, HTTP2)
    assert [tuple(e) for e in found.endpoints] == [("10.0.0.1", 8080)]
    under, _ = resolver.resolve(namespace="default", service="web", port="80", protocol=PROTOCOL_H2C,
                                policy=ClusterPolicy(connect_timeout=1.0))
    assert (under.key, under.protocol) == (variant, HTTP2)
    assert resolver.resolve(namespace="default", service="web", port="80")[0].protocol == ""


@pytest.mark.parametrize(
    "port, expected",
    [
        ("80", [("10.1.0.1", 8080), ("10.1.0.2", 8080)]),  # by number: the pod port, not 80
        ("http", [("10.1.0.1", 8080), ("10.1.0.2", 8080)]),  # by name
        ("9090", [("10.1.0.1", 9091), ("10.1.0.2", 9091)]),
        ("metrics", [("10.1.0.1", 9091), ("10.1.0.2", 9091)]),
    ],
)
def test_backend_port_maps_through_the_service_port_name_to_the_pod_port(port, expected):
    assert _endpoints(port, *TWO_PORTS) == expected
    cluster, _ = _resolve(port, *TWO_PORTS)
    identity = (cluster.key, cluster.namespace, cluster.service, cluster.port)
    assert identity == (f"default/web:{port}", "default", "web", port)
    assert cluster.external_name is None


def test_unnamed_single_port_service_uses_the_unnamed_slice_port():
    objects = [
        service("web", service_port(80, target=3000)),
        endpoint_slice("web", [endpoint("10.1.0.1")], [("", 3000)]),
    ]
    assert _endpoints("80", *objects) == [("10.1.0.1", 3000)]


@pytest.mark.parametrize("port, fragment", [("81", "no TCP port 81"), ("grpc", "no TCP port named 'grpc'")])
def test_unknown_service_port_gives_an_empty_cluster_and_a_warning(port, fragment):
    cluster, warnings = _resolve(port, *TWO_PORTS)
    assert cluster.endpoints == () and cluster.key == f"default/web:{port}"
    [warning] = warnings
    assert (warning.kind, warning.namespace, warning.name) == ("Service", "default", "web")
    assert fragment in warning.message


def test_udp_only_port_is_not_a_http_backend():
    objects = [service("dns", service_port(53, name="dns", protocol="UDP"))]
    cluster, warnings = _resolve("53", *objects, service_name="dns")
    assert cluster.endpoints == () and len(warnings) == 1


def test_same_number_for_tcp_and_udp_picks_tcp():
    objects = [
        service("dns", service_port(53, name="udp", protocol="UDP"), service_port(53, name="tcp", target=5353)),
        endpoint_slice("dns", [endpoint("10.1.0.9")], [("udp", 53), ("tcp", 5353)]),
    ]
    cluster, warnings = _resolve("53", *objects, service_name="dns")
    assert (warnings, cluster.endpoints) == ([], (Endpoint("10.1.0.9", 5353),))


def test_several_slices_are_merged_deduplicated_and_sorted():
    objects = [
        service("web"),
        endpoint_slice("web", [endpoint("10.1.0.9"), endpoint("10.1.0.10")], suffix="bbbbb"),
        endpoint_slice("web", [endpoint("10.1.0.2"), endpoint("10.1.0.9")], suffix="aaaaa"),
        endpoint_slice("web", [], suffix="empty"),
    ]
    assert _endpoints("80", *objects) == [("10.1.0.10", 8080), ("10.1.0.2", 8080), ("10.1.0.9", 8080)]


def test_slices_with_different_pod_ports_each_use_their_own():
    """During a rollout that renames a targetPort, pods can expose the Service port on different numbers."""
    objects = [
        service("web", service_port(80, name="http", target="http")),
        endpoint_slice("web", [endpoint("10.1.0.1")], [("http", 8080)], suffix="old"),
        endpoint_slice("web", [endpoint("10.1.0.2")], [("http", 8081)], suffix="new"),
    ]
    assert _endpoints("http", *objects) == [("10.1.0.1", 8080), ("10.1.0.2", 8081)]


def test_slice_without_the_port_contributes_nothing():
    objects = [
        service("web", service_port(80, name="http")),
        endpoint_slice("web", [endpoint("10.1.0.1")], [("other", 1234)], suffix="a"),
        endpoint_slice("web", [endpoint("10.1.0.2")], [("http", 80)], suffix="b"),
    ]
    assert _endpoints("80", *objects) == [("10.1.0.2", 80)]


@pytest.mark.parametrize(
    "entry, included",
    [
        (endpoint("10.1.0.5", ready=True), True),
        (endpoint("10.1.0.5", ready=False), False),  # not ready, e.g. terminating or failing its probe
        (endpoint("10.1.0.5", ready=None), True),  # conditions: {} -> unknown means ready
        (endpoint("10.1.0.5", conditions=False), True),  # no conditions at all
        ({"addresses": ["10.1.0.5"], "conditions": {"ready": None, "serving": True}}, True),  # explicit null
        ({"addresses": ["10.1.0.5"], "conditions": {"serving": True, "terminating": True, "ready": False}}, False),
    ],
)
def test_readiness(entry, included):
    objects = [service("web"), endpoint_slice("web", [entry, endpoint("10.1.0.1")])]
    expected = [("10.1.0.1", 8080)] + ([("10.1.0.5", 8080)] if included else [])
    assert _endpoints("80", *objects) == expected


def test_one_endpoint_with_several_addresses():
    objects = [service("web"), endpoint_slice("web", [endpoint("10.1.0.7", "10.1.0.8")])]
    assert _endpoints("80", *objects) == [("10.1.0.7", 8080), ("10.1.0.8", 8080)]


def test_ipv6_slices_are_served_and_addresses_are_canonical():
    objects = [service("web"), endpoint_slice("web", [endpoint("fd00:0:0::1")], address_type="IPv6")]
    assert _endpoints("80", *objects) == [("fd00::1", 8080)]


def test_fqdn_slice_is_skipped_with_a_warning_and_others_still_count():
    objects = [
        service("web"),
        endpoint_slice("web", [endpoint("pod.example.com")], address_type="FQDN", suffix="fqdn"),
        endpoint_slice("web", [endpoint("10.1.0.1")], suffix="ipv4"),
    ]
    cluster, warnings = _resolve("80", *objects)
    assert cluster.endpoints == (Endpoint("10.1.0.1", 8080),)
    [warning] = warnings
    assert (warning.kind, warning.name) == ("EndpointSlice", "web-fqdn") and "FQDN" in warning.message


def test_bad_address_skips_only_that_endpoint():
    entries = [endpoint("not-an-ip"), endpoint("10.1.0.1"), {"addresses": "10.1.0.2"}]
    objects = [service("web"), endpoint_slice("web", entries)]
    cluster, warnings = _resolve("80", *objects)
    assert cluster.endpoints == (Endpoint("10.1.0.1", 8080),)
    assert [w.kind for w in warnings] == ["EndpointSlice", "EndpointSlice"]
    assert "endpoints[0]" in warnings[0].message and "endpoints[2]" in warnings[1].message


# --- legacy Endpoints --------------------------------------------------------------------------


def test_legacy_endpoints_are_used_when_the_service_has_no_slices():
    objects = [
        service("web", service_port(80, name="http", target=8080), service_port(9090, name="metrics")),
        legacy_endpoints("web", ["10.2.0.2", "10.2.0.1"], [("http", 8080), ("metrics", 9090)], not_ready=["10.2.0.3"]),
    ]
    assert _endpoints("80", *objects) == [("10.2.0.1", 8080), ("10.2.0.2", 8080)]
    assert _endpoints("metrics", *objects) == [("10.2.0.1", 9090), ("10.2.0.2", 9090)]


def test_legacy_endpoints_unnamed_port():
    objects = [service("web", service_port(80, target=8080)), legacy_endpoints("web", ["10.2.0.1"], [("", 8080)])]
    assert _endpoints("80", *objects) == [("10.2.0.1", 8080)]


def test_legacy_endpoints_are_ignored_when_any_slice_exists():
    objects = [
        service("web"),
        legacy_endpoints("web", ["10.2.0.1"]),
        endpoint_slice("web", [endpoint("10.1.0.1")]),
    ]
    assert _endpoints("80", *objects) == [("10.1.0.1", 8080)]
    # An empty slice still means "EndpointSlices are in charge": no fallback to stale Endpoints.
    objects[2] = endpoint_slice("web", [])
    assert _endpoints("80", *objects) == []


def test_no_endpoints_at_all_is_an_empty_cluster_without_warning():
    assert _endpoints("80", service("web")) == []


# --- ExternalName ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ports, port, external_port",
    [
        ([service_port(443, name="https")], "443", 443),
        ([service_port(443, name="https")], "https", 443),
        ([], "8443", 8443),  # by number needs no port entry
        ([service_port(80, name="http")], "8080", 8080),
    ],
)
def test_external_name_service(ports, port, external_port):
    obj = service("ext", namespace="default", external_name="api.partner.example")
    obj["spec"]["ports"] = ports
    cluster, warnings = _resolve(port, obj, service_name="ext")
    assert warnings == []
    assert cluster == Cluster(
        key=f"default/ext:{port}",
        namespace="default",
        service="ext",
        port=port,
        endpoints=(),
        external_name="api.partner.example",
        external_port=external_port,
    )


def test_external_name_with_unknown_port_name_is_empty_with_warning():
    cluster, warnings = _resolve("https", service("ext", external_name="api.partner.example"), service_name="ext")
    assert cluster.external_name is None and cluster.endpoints == ()
    assert "no port named 'https'" in warnings[0].message


def test_external_name_without_the_name_is_warned():
    obj = service("ext", external_name="x")
    del obj["spec"]["externalName"]
    cluster, warnings = _resolve("80", obj, service_name="ext")
    assert cluster.external_name is None and "externalName is missing" in warnings[0].message


# --- through build() ---------------------------------------------------------------------------


def test_missing_service_keeps_the_route_with_an_empty_cluster_and_warns_each_ingress_using_it():
    config = build(
        snapshot(
            ingress("one", rule("a.test", path("/", "ghost"))),
            ingress("two", rule("b.test", path("/", "ghost"), path("/x", "ghost"))),
        ),
        SETTINGS,
    )
    route = route_for(config, "a.test", "/")
    assert route is not None and route.cluster == "default/ghost:80"
    assert config.clusters["default/ghost:80"].endpoints == ()
    assert [(w.kind, w.name) for w in config.warnings] == [("Ingress", "one"), ("Ingress", "two")]
    assert all("Service ghost: not found" in w.message for w in config.warnings)


def test_backend_resolution_through_build_uses_ingress_namespace():
    config = build(
        snapshot(
            ingress("n", rule("a.test", path("/", "web", "http")), namespace="shop"),
            service("web", service_port(80, name="http", target=8080), namespace="shop"),
            endpoint_slice("web", [endpoint("10.3.0.1")], [("http", 8080)], namespace="shop"),
            service("web", service_port(80, name="http"), namespace="default"),
            endpoint_slice("web", [endpoint("10.9.9.9")], [("http", 80)], namespace="default"),
        ),
        SETTINGS,
    )
    assert config.warnings == ()
    assert config.clusters["shop/web:http"].endpoints == (Endpoint("10.3.0.1", 8080),)


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ({"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "assets"}}, "resource backend"),
        ({"service": {"name": "web", "port": {"number": 80, "name": "http"}}}, "both number and name"),
        ({"service": {"name": "web", "port": {}}}, "needs a number or a name"),
        ({"service": {"name": "web", "port": {"number": 0}}}, "port number"),
        ({"service": {"name": "web", "port": {"number": 70000}}}, "port number"),
        ({"service": {"name": "web", "port": {"number": "80"}}}, "port number"),
        ({"service": {"name": "web", "port": {"number": True}}}, "port number"),
        ({"service": {"name": "web", "port": {"name": "8080"}}}, "not a valid port name"),
        ({"service": {"name": "Web/x", "port": {"number": 80}}}, "not a valid Service name"),
        ({"service": {"port": {"number": 80}}}, "service.name is missing"),
        ({}, "service is missing"),
        (None, "backend is missing"),
    ],
)
def test_bad_backend_skips_the_path_with_a_warning(entry, fragment):
    bad = {"path": "/bad", "pathType": "Prefix", "backend": entry}
    config = build(snapshot(ingress("n", rule("a.test", bad, path("/", "web"))), service("web")), SETTINGS)
    [warning] = config.warnings
    assert (warning.kind, warning.name) == ("Ingress", "n") and fragment in warning.message
    assert route_for(config, "a.test", "/bad").path == "/"


def test_resource_default_backend_is_warned():
    resource = {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "assets"}}
    config = build(snapshot(ingress("n", rule("a.test", path("/", "web")), default=resource), service("web")), SETTINGS)
    [warning] = config.warnings
    assert "defaultBackend" in warning.message and "resource backend" in warning.message
    assert config.table.host_routes("a.test").default is None



def test_non_boolean_ready_skips_that_endpoint_with_a_warning():
    odd = {"addresses": ["10.1.0.5"], "conditions": {"ready": "yes"}}
    cluster, warnings = _resolve("80", service("web"), endpoint_slice("web", [odd, endpoint("10.1.0.1")]))
    assert cluster.endpoints == (Endpoint("10.1.0.1", 8080),)
    [warning] = warnings
    assert "endpoints[0].conditions.ready must be a boolean" in warning.message


def test_one_service_named_by_number_and_by_name_resolves_alike_and_warns_once():
    objects = [
        ingress("by-number", rule("a.test", path("/", "web", 80))),
        ingress("by-name", rule("b.test", path("/", "web", "http"))),
        service("web", service_port(80, name="http", target="http")),
        endpoint_slice("web", [endpoint("10.1.0.1"), endpoint("bogus")], [("http", 8080)]),
    ]
    config = build(snapshot(*objects), SETTINGS)
    assert config.clusters["default/web:80"].endpoints == config.clusters["default/web:http"].endpoints
    assert config.clusters["default/web:http"].endpoints == (Endpoint("10.1.0.1", 8080),)
    assert [(w.kind, w.name) for w in config.warnings] == [("EndpointSlice", "web-abcde")]


def test_malformed_service_port_entries_are_warned():
    broken = service("web")
    broken["spec"]["ports"] = [{"port": "eighty", "name": "http"}]
    cluster, warnings = _resolve("80", broken)
    assert cluster.endpoints == ()
    assert "spec.ports[0].port must be a port number" in warnings[0].message


def test_external_name_with_out_of_range_number_is_warned():
    cluster, warnings = _resolve("70000", service("ext", external_name="api.partner.example"), service_name="ext")
    assert cluster.external_name is None
    assert "backend port 70000 is not a port number" in warnings[0].message
