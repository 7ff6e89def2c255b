"""Traffic policies, objects in, Route and Cluster policies out: attachment, precedence section by section,
variant clusters, the Gateway API's own fields, BackendTLSPolicy, status and warnings.

Every case is built twice, by `build()` and by a fresh incremental `Builder`, which must agree.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.routing.model import Config, Route, Timeouts
from proxy.routing.policies import (
    CONSISTENT_HASH,
    HASH_HEADER,
    LEAST_REQUEST,
    RANDOM,
    RETRY_5XX,
    RETRY_CONNECT_FAILURE,
    RETRY_RESET,
    BackendTLS,
    CircuitBreaker,
    Ejection,
    FaultInjection,
    HealthCheck,
    LoadBalancer,
    RateLimit,
    RetryPolicy,
    SessionAffinity,
    policy_key,
)
from proxy.settings import Settings

from ..gateway.objects import backend as gw_backend
from ..gateway.objects import gateway, gateway_class, http_route, listener, parent, snapshot
from ..gateway.objects import match as gw_match
from ..gateway.objects import rule as gw_rule
from ..objects import backend_world, endpoint, endpoint_slice, ingress, path, rule, service, service_port
from .objects import CA_PEM, config_map, target, tls_policy, traffic_policy

SETTINGS = Settings()
NS = "default"


def built(*objects: Any, settings: Settings = SETTINGS) -> Config:
    snap = snapshot(*objects)
    fresh = build(snap, settings)
    got = Builder().build(snap, settings)
    assert dict(got.clusters) == dict(fresh.clusters)
    assert got.warnings == fresh.warnings
    assert got.policy_status == fresh.policy_status
    assert got.tls_policy_status == fresh.tls_policy_status
    assert got.checksum == fresh.checksum
    return fresh


def ingress_route(config: Config, host: str) -> Route:
    route = config.table.match(host, "/")
    assert route is not None
    return route


def gateway_route(config: Config, host: str, port: int = 8080) -> Route:
    route = config.listeners[port].table.match(host, "/")
    assert route is not None
    return route


def cluster_policy(config: Config, key: str) -> Any:
    return config.clusters[key].policy


def base() -> list[Any]:
    return [ingress("shop", rule("shop.test", path("/", "web"))), ingress("blog", rule("blog.test", path("/", "web"))),
            *backend_world("web", "api")]


def gateway_objects(*rules: Any, listener_name: str = "http", route_name: str = "r1") -> list[Any]:
    return [gateway_class(),
            gateway("edge", listener(listener_name, 80, namespaces="All"), namespace=NS),
            http_route(route_name, *(rules or (gw_rule(backends=[gw_backend("web", 80)]),)), parents=[parent("edge")],
                       namespace=NS, hostnames=["gw.test"])]


# ---------------------------------------------------------------------- sections compile into the model

SECTIONS: list[tuple[str, dict[str, Any], str, Any]] = [
    ("round robin", {"loadBalancer": {"type": "Random"}}, "load_balancer", LoadBalancer(RANDOM)),
    ("hash on a header", {"loadBalancer": {"type": "ConsistentHash",
                                           "consistentHash": {"type": "Header", "header": {"name": "X-User"}}}},
     "load_balancer", LoadBalancer(CONSISTENT_HASH, HASH_HEADER, b"x-user")),
    ("session cookie", {"sessionPersistence": {"sessionName": "pick", "absoluteTimeout": "1h",
                                               "cookieConfig": {"lifetimeType": "Permanent"}}},
     "affinity", SessionAffinity(cookie=b"pick", max_age=3600)),
    ("ejection", {"healthCheck": {"passive": {"consecutive5XxErrors": 3, "baseEjectionTime": "10s",
                                              "maxEjectionPercent": 50}}},
     "ejection", Ejection(consecutive_5xx=3, base_time=10.0, max_percent=0.5)),
    ("active check", {"healthCheck": {"active": {"type": "HTTP", "http": {"path": "/healthz",
                                                                         "expectedStatuses": [200, 204]},
                                                 "interval": "5s", "timeout": "500ms", "unhealthyThreshold": 2}}},
     "health_check", HealthCheck(path=b"/healthz", interval=5.0, timeout=0.5, unhealthy_threshold=2,
                                 expected_statuses=(200, 204))),
    ("breaker", {"circuitBreaker": {"maxConnections": 10, "maxParallelRetries": 2}},
     "circuit_breaker", CircuitBreaker(max_connections=10, max_parallel_retries=2)),
]

ROUTE_SECTIONS: list[tuple[str, dict[str, Any], str, Any]] = [
    ("retry", {"retry": {"numRetries": 4, "retryOn": {"triggers": ["5xx", "reset"], "httpStatusCodes": [429]},
                         "perRetry": {"timeout": "2s", "backOff": {"baseInterval": "100ms", "maxInterval": "1s"}},
                         "budget": {"percent": 50, "minRetryConcurrency": 5}, "idempotentOnly": False}},
     "retry", RetryPolicy(num_retries=4, retry_on=frozenset({RETRY_5XX, RETRY_RESET}), status_codes=frozenset({429}),
                          idempotent_only=False, per_try_timeout=2.0, backoff_base=0.1, backoff_max=1.0, budget=0.5,
                          min_retries=5)),
    ("retry defaults", {"retry": {}}, "retry",
     RetryPolicy(retry_on=frozenset({RETRY_CONNECT_FAILURE, RETRY_RESET}), status_codes=frozenset({503}))),
    ("faults", {"faultInjection": {"delay": {"fixedDelay": "250ms", "percentage": 10},
                                   "abort": {"httpStatus": 503, "percentage": 2.5}, "onlyWithHeader": "X-Chaos"}},
     "fault", FaultInjection(delay=0.25, delay_fraction=0.1, abort_status=503, abort_fraction=0.025,
                             header=b"x-chaos")),
    ("request timeout", {"timeout": {"http": {"requestTimeout": "15s"}}}, "timeouts", None),
    ("per client rate limit", {"rateLimit": {"type": "Local", "local": {"rules": [
        {"clientSelectors": [{"sourceCIDR": {"type": "Distinct", "value": "0.0.0.0/0"}}],
         "limit": {"requests": 10, "unit": "Minute", "burst": 5}}]}}},
     "rate_limit", RateLimit(requests=10, per=60.0, burst=5, per_client=True)),
]


@pytest.mark.parametrize(("case", "spec", "field", "expected"), SECTIONS, ids=[c[0] for c in SECTIONS])
def test_cluster_sections_compile_onto_the_services_cluster(case, spec, field, expected):
    config = built(*base(), traffic_policy("p", target("Service", "web"), **spec))
    route = ingress_route(config, "shop.test")
    assert route.cluster.startswith("default/web:80~") and route.policy is None
    assert getattr(cluster_policy(config, route.cluster), field) == expected
    assert config.clusters[route.cluster].endpoints == config.clusters[route.cluster].endpoints != ()
    assert not config.warnings


@pytest.mark.parametrize(("case", "spec", "field", "expected"), ROUTE_SECTIONS, ids=[c[0] for c in ROUTE_SECTIONS])
def test_route_sections_compile_onto_the_routes(case, spec, field, expected):
    config = built(*base(), traffic_policy("p", target("Ingress", "shop"), **spec))
    shop, blog = ingress_route(config, "shop.test"), ingress_route(config, "blog.test")
    if field == "timeouts":  # not a RoutePolicy section: the route's own Timeouts
        assert shop.timeouts == Timeouts(request=15.0) and shop.policy is None and not shop.plain
    else:
        assert shop.policy is not None and getattr(shop.policy, field) == expected and not shop.plain
    assert shop.cluster == blog.cluster == "default/web:80"  # no cluster section: the plain cluster
    assert blog.policy is None and blog.plain  # the other Ingress to the same Service is not touched
    assert not config.warnings


def test_a_service_port_policy_beats_the_whole_services_for_that_port_only():
    two_ports = service("web", service_port(80, name="http", target=8080), service_port(9000, name="admin"))
    objects = [ingress("shop", rule("shop.test", path("/", "web", 80), path("/admin", "web", "admin"))),
               ingress("blog", rule("blog.test", path("/", "web", "http"))), two_ports,
               endpoint_slice("web", [endpoint("10.0.1.1")], ports=[("http", 8080), ("admin", 9000)]),
               traffic_policy("whole", target("Service", "web"), loadBalancer={"type": "Random"},
                              circuitBreaker={"maxConnections": 5}),
               traffic_policy("port", target("Service", "web", "http"), loadBalancer={"type": "LeastRequest"}),
               config_map("ca"), tls_policy("tls", "web", ca=["ca"]),
               {**tls_policy("admin-tls", "web", ca=["ca"], hostname="admin.internal"),
                "spec": {**tls_policy("x", "web", ca=["ca"], hostname="admin.internal")["spec"],
                         "targetRefs": [target("Service", "web", "admin")]}}]
    config = built(*objects)
    by_number, by_name = ingress_route(config, "shop.test"), ingress_route(config, "blog.test")
    admin = config.table.match("shop.test", "/admin")
    for route in (by_number, by_name):  # port 80 is "http", whether a route names it by number or by name
        policy = cluster_policy(config, route.cluster)
        assert policy.load_balancer.kind == LEAST_REQUEST and policy.circuit_breaker.max_connections == 5
        assert policy.tls.sni == "web.internal"
    admin_policy = cluster_policy(config, admin.cluster)
    assert admin_policy.load_balancer.kind == RANDOM and admin_policy.tls.sni == "admin.internal"
    assert condition(config, "port", "Service", "web", "http") == ("True", "Accepted")
    objects[5] = traffic_policy("port", target("Service", "web", "grpc"), loadBalancer={"type": "LeastRequest"})
    config = built(*objects)
    assert condition(config, "port", "Service", "web", "grpc") == ("False", "TargetNotFound")
    # Renaming the port moves the policy, also in an incremental build that saw the old name.
    builder = Builder()
    objects[5] = traffic_policy("port", target("Service", "web", "http"), loadBalancer={"type": "LeastRequest"})
    builder.build(snapshot(*objects), SETTINGS)
    objects[2] = service("web", service_port(80, name="web", target=8080), service_port(9000, name="admin"))
    config = builder.build(snapshot(*objects), SETTINGS)
    assert builder.work.policies == 1
    assert cluster_policy(config, ingress_route(config, "shop.test").cluster).load_balancer.kind == RANDOM
    assert config.checksum == build(snapshot(*objects), SETTINGS).checksum


def test_a_service_policy_reaches_every_route_to_it_and_equal_policies_share_a_cluster():
    config = built(*base(), traffic_policy("p", target("Service", "web"), loadBalancer={"type": "LeastRequest"}))
    shop, blog = ingress_route(config, "shop.test"), ingress_route(config, "blog.test")
    policy = cluster_policy(config, shop.cluster)
    assert shop.cluster == blog.cluster == policy_key("default/web:80", policy)
    assert policy.load_balancer == LoadBalancer(LEAST_REQUEST)
    assert "default/web:80" not in config.clusters  # nothing uses the plain cluster any more


# ---------------------------------------------------------------------- precedence, section by section

def test_an_ingress_policy_beats_the_service_policy_section_by_section():
    config = built(*base(),
                   traffic_policy("svc", target("Service", "web"), loadBalancer={"type": "Random"},
                                  retry={"numRetries": 5}, circuitBreaker={"maxConnections": 9}),
                   traffic_policy("own", target("Ingress", "shop"), retry={"numRetries": 1},
                                  circuitBreaker={"maxConnections": 1}))
    shop, blog = ingress_route(config, "shop.test"), ingress_route(config, "blog.test")
    assert shop.policy.retry.num_retries == 1 and blog.policy.retry.num_retries == 5
    shop_cluster, blog_cluster = cluster_policy(config, shop.cluster), cluster_policy(config, blog.cluster)
    assert shop_cluster.load_balancer == blog_cluster.load_balancer == LoadBalancer(RANDOM)  # inherited
    assert (shop_cluster.circuit_breaker.max_connections, blog_cluster.circuit_breaker.max_connections) == (1, 9)
    assert shop.cluster != blog.cluster  # different breakers: different clusters, never shared state


def test_http_route_layers_rule_then_route_then_service_then_listener_then_gateway():
    own_retry = {"codes": [500], "attempts": 3, "backoff": "50ms"}
    objects = [*base(), *gateway_objects(gw_rule(backends=[gw_backend("web", 80)], name="checkout"),
                                         listener_name="http"),
               traffic_policy("gw", target("Gateway", "edge"), retry={"numRetries": 9},
                              circuitBreaker={"maxConnections": 100}, faultInjection={"abort": {"httpStatus": 500}},
                              rateLimit={"type": "Local", "local": {"rules": [{"limit": {"requests": 1,
                                                                                          "unit": "Second"}}]}},
                              healthCheck={"passive": {"consecutive5XxErrors": 9}}),
               traffic_policy("listener", target("Gateway", "edge", "http"),
                              faultInjection={"abort": {"httpStatus": 502}}, created="2025-01-01T00:00:00Z"),
               traffic_policy("svc", target("Service", "web"), loadBalancer={"type": "Random"},
                              rateLimit={"type": "Local", "local": {"rules": [{"limit": {"requests": 2,
                                                                                          "unit": "Second"}}]}}),
               traffic_policy("route", target("HTTPRoute", "r1"), retry={"numRetries": 2},
                              circuitBreaker={"maxConnections": 7}),
               traffic_policy("rule", target("HTTPRoute", "r1", "checkout"), circuitBreaker={"maxConnections": 3})]
    route = gateway_route(built(*objects), "gw.test")
    cluster = cluster_policy(built(*objects), route.cluster)
    assert route.policy.retry.num_retries == 2  # the route's policy beats the Gateway's
    assert cluster.circuit_breaker.max_connections == 3  # the rule's beats the route's
    assert route.policy.rate_limit.requests == 2  # the Service's beats the Gateway's
    assert cluster.load_balancer == LoadBalancer(RANDOM)
    assert route.policy.fault.abort_status == 502  # the listener's beats the whole Gateway's
    assert cluster.ejection.consecutive_5xx == 9  # only the Gateway sets it
    # The rule's own retry is the most specific of all.
    objects[-6] = http_route("r1", {**gw_rule(backends=[gw_backend("web", 80)], name="checkout"), "retry": own_retry},
                             parents=[parent("edge")], namespace=NS, hostnames=["gw.test"])
    route = gateway_route(built(*objects), "gw.test")
    assert route.policy.retry == RetryPolicy(num_retries=3, retry_on=frozenset({RETRY_CONNECT_FAILURE, RETRY_RESET}),
                                             status_codes=frozenset({500}), backoff_base=0.05, backoff_max=0.5)


def test_a_policy_timeout_does_not_replace_an_http_route_rules_own():
    timed = gw_rule(backends=[gw_backend("web", 80)], timeouts={"request": "3s"})
    objects = [*base(), *gateway_objects(timed, gw_rule(gw_match("/other"), backends=[gw_backend("web", 80)])),
               traffic_policy("gw", target("Gateway", "edge"), timeout={"http": {"requestTimeout": "30s"}})]
    config = built(*objects)
    assert gateway_route(config, "gw.test").timeouts == Timeouts(request=3.0)
    other = config.listeners[8080].table.match("gw.test", "/other")
    assert other is not None and other.timeouts == Timeouts(request=30.0)


def test_a_gateway_policy_does_not_reach_ingress_routes_on_the_port_they_share():
    objects = [*base(), *gateway_objects(), traffic_policy("gw", target("Gateway", "edge"), retry={"numRetries": 4})]
    config = built(*objects)
    assert gateway_route(config, "gw.test").policy.retry.num_retries == 4
    shared = config.listeners[8080].table.match("shop.test", "/")
    assert shared is not None and shared.policy is None and ingress_route(config, "shop.test").policy is None


def test_a_route_split_over_services_with_different_route_sections_takes_none_of_them():
    split = gw_rule(backends=[gw_backend("web", 80, weight=1), gw_backend("api", 80, weight=1)])
    objects = [*base(), *gateway_objects(split),
               traffic_policy("web", target("Service", "web"), retry={"numRetries": 1},
                              circuitBreaker={"maxConnections": 1}),
               traffic_policy("api", target("Service", "api"), retry={"numRetries": 2})]
    config = built(*objects)
    route = gateway_route(config, "gw.test")
    assert route.policy is None
    web, api = (backend.cluster for backend in route.backends.backends)
    assert cluster_policy(config, web).circuit_breaker.max_connections == 1 and api == "default/api:80"
    assert any(w.kind == "HTTPRoute" and "different Services" in w.message for w in config.warnings)
    # Equal route sections on both Services do apply.
    objects[-1] = traffic_policy("api", target("Service", "api"), retry={"numRetries": 1})
    assert gateway_route(built(*objects), "gw.test").policy.retry.num_retries == 1


def test_session_persistence_on_an_http_route_rule_makes_an_affinity_cluster():
    sticky = {**gw_rule(backends=[gw_backend("web", 80)]), "sessionPersistence": {"sessionName": "who",
                                                                                   "type": "Cookie"}}
    config = built(*base(), *gateway_objects(sticky))
    route = gateway_route(config, "gw.test")
    assert cluster_policy(config, route.cluster).affinity == SessionAffinity(cookie=b"who")
    assert ingress_route(config, "shop.test").cluster == "default/web:80"
    assert not config.warnings


# ---------------------------------------------------------------------- status, conflicts, refusals

def condition(config: Config, policy: str, kind: str, name: str, section: str = "") -> tuple[str, str]:
    ancestor = config.policy_status.policies[(NS, policy)].ancestor(kind, name, section)
    assert ancestor is not None
    found = ancestor.condition("Accepted")
    return found.status, found.reason


def test_the_oldest_policy_on_a_target_wins_and_the_younger_is_conflicted():
    config = built(*base(),
                   traffic_policy("young", target("Service", "web"), created="2025-01-01T00:00:00Z",
                                  loadBalancer={"type": "Random"}),
                   traffic_policy("old", target("Service", "web"), created="2020-01-01T00:00:00Z",
                                  loadBalancer={"type": "LeastRequest"}))
    assert cluster_policy(config, ingress_route(config, "shop.test").cluster).load_balancer.kind == LEAST_REQUEST
    assert condition(config, "old", "Service", "web") == ("True", "Accepted")
    assert condition(config, "young", "Service", "web") == ("False", "Conflicted")
    assert [w.name for w in config.warnings] == ["young"]


def test_targets_that_do_not_exist_or_cannot_be_attached_to_are_reported_per_target():
    config = built(*base(), *gateway_objects(gw_rule(backends=[gw_backend("web", 80)], name="main")),
                   traffic_policy("p", target("Service", "missing"), target("HTTPRoute", "r1", "nope"),
                                  target("HTTPRoute", "r1", "main"), target("Ingress", "shop", "x"),
                                  target("ConfigMap", "c", group=""), target("Gateway", "edge", "http"),
                                  retry={"numRetries": 1}))
    assert condition(config, "p", "Service", "missing") == ("False", "TargetNotFound")
    assert condition(config, "p", "HTTPRoute", "r1", "nope") == ("False", "TargetNotFound")
    assert condition(config, "p", "HTTPRoute", "r1", "main") == ("True", "Accepted")
    assert condition(config, "p", "Ingress", "shop", "x") == ("False", "Invalid")
    assert condition(config, "p", "ConfigMap", "c") == ("False", "Invalid")
    assert condition(config, "p", "Gateway", "edge", "http") == ("True", "Accepted")
    assert gateway_route(config, "gw.test").policy.retry.num_retries == 1
    assert ingress_route(config, "shop.test").policy is None


def test_a_section_that_cannot_be_served_is_dropped_and_the_rest_applies():
    config = built(*base(), traffic_policy("p", target("Ingress", "shop"), retry={"numRetries": -1},
                                           faultInjection={"abort": {"httpStatus": 503}},
                                           rateLimit={"type": "Global"},
                                           loadBalancer={"type": "ConsistentHash",
                                                         "consistentHash": {"type": "Header"}},
                                           timeout={"http": {}}, timeouts={}))
    route = ingress_route(config, "shop.test")
    assert route.policy.retry is None and route.policy.rate_limit is None
    assert route.policy.fault == FaultInjection(abort_status=503, abort_fraction=1.0)
    assert route.cluster == "default/web:80"
    messages = sorted(w.message for w in config.warnings if w.name == "p")
    assert any("spec.retry ignored" in m for m in messages)
    assert any("spec.rateLimit ignored" in m for m in messages)
    assert any("spec.loadBalancer ignored" in m for m in messages)
    assert any("requestTimeout is missing; spec.timeout ignored" in m for m in messages)
    assert any("spec.timeouts is not a known field" in m for m in messages)
    status, reason = condition(config, "p", "Ingress", "shop")
    assert (status, reason) == ("True", "Accepted")


@pytest.mark.parametrize("obj", [
    {"apiVersion": "pyngress.dev/v1alpha1", "kind": "BackendTrafficPolicy",
     "metadata": {"name": "p", "namespace": NS}, "spec": {"retry": {}}},
    {"apiVersion": "pyngress.dev/v1alpha1", "kind": "BackendTrafficPolicy",
     "metadata": {"name": "p", "namespace": NS}, "spec": "nonsense"},
    {"apiVersion": "pyngress.dev/v1alpha1", "kind": "BackendTrafficPolicy",
     "metadata": {"name": "p", "namespace": NS}, "spec": {"targetRefs": [{"kind": "Service"}], "retry": {}}},
])
def test_an_unreadable_policy_is_warned_about_and_changes_nothing(obj):
    config = built(*base(), obj)
    assert ingress_route(config, "shop.test").policy is None
    assert [(w.kind, w.name) for w in config.warnings] == [("BackendTrafficPolicy", "p")]
    assert "not accepted" in config.warnings[0].message


# ---------------------------------------------------------------------- BackendTLSPolicy

def test_backend_tls_policy_puts_tls_with_the_configmap_ca_on_the_services_clusters():
    config = built(*base(), config_map("ca"),
                   tls_policy("tls", "web", ca=["ca"], alt_names=[{"type": "URI", "uri": "spiffe://cluster/web"}]),
                   traffic_policy("p", target("Service", "web"), loadBalancer={"type": "Random"}))
    policy = cluster_policy(config, ingress_route(config, "shop.test").cluster)
    assert policy.tls == BackendTLS(sni="web.internal", ca=CA_PEM.encode(), subject_alt_names=("spiffe://cluster/web",))
    assert policy.load_balancer == LoadBalancer(RANDOM)  # both kinds of policy on one Service
    assert not config.warnings


def test_backend_tls_policy_without_its_ca_fails_closed_and_says_why():
    config = built(*base(), tls_policy("tls", "web", ca=["missing"]))
    policy = cluster_policy(config, ingress_route(config, "shop.test").cluster)
    assert policy.tls == BackendTLS(sni="web.internal", ca=b"", verify=True, system_ca=False)
    assert [w.name for w in config.warnings] == ["tls"]
    assert "connections to its targets fail" in config.warnings[0].message


def test_backend_tls_policy_with_the_system_store():
    config = built(*base(), tls_policy("tls", "web", system=True))
    policy = cluster_policy(config, ingress_route(config, "blog.test").cluster)
    assert policy.tls == BackendTLS(sni="web.internal", system_ca=True)


def test_a_configmap_edit_reaches_the_cluster_in_incremental_builds():
    builder = Builder()
    objects = [*base(), config_map("ca"), tls_policy("tls", "web", ca=["ca"])]
    first = builder.build(snapshot(*objects), SETTINGS)
    assert builder.work.policies == 1
    again = builder.build(snapshot(*objects), SETTINGS)  # equal copies of every object: same routes
    assert again.checksum == first.checksum
    objects[-2] = config_map("ca", pem=CA_PEM.replace("MIIB", "MIIC"))
    changed = builder.build(snapshot(*objects), SETTINGS)
    route = ingress_route(changed, "shop.test")
    assert b"MIIC" in changed.clusters[route.cluster].policy.tls.ca
    assert changed.checksum == build(snapshot(*objects), SETTINGS).checksum != first.checksum


def test_incremental_builds_make_routes_again_only_when_the_layers_change():
    builder = Builder()
    web, gone = target("Service", "web"), target("Service", "gone")
    objects = [*base(), traffic_policy("p", web, gone, retry={"numRetries": 1})]
    builder.build(snapshot(*objects), SETTINGS)
    # A new generation with the same settings (and a target that cannot be used): status changes, routes do not.
    objects[-1] = traffic_policy("p", web, gone, target("ConfigMap", "c", group=""), retry={"numRetries": 1},
                                 generation=2)
    config = builder.build(snapshot(*objects), SETTINGS)
    assert (builder.work.policies, builder.work.hosts) == (1, 0)
    assert condition(config, "p", "ConfigMap", "c") == ("False", "Invalid")
    assert config.checksum == build(snapshot(*objects), SETTINGS).checksum
    # Different settings: every host is made again under the new index.
    objects[-1] = traffic_policy("p", web, gone, retry={"numRetries": 2})
    config = builder.build(snapshot(*objects), SETTINGS)
    assert builder.work.hosts == 2 and ingress_route(config, "shop.test").policy.retry.num_retries == 2
    assert config.checksum == build(snapshot(*objects), SETTINGS).checksum
    # A Service appearing changes only the status of the policy naming it.
    assert condition(config, "p", "Service", "gone") == ("False", "TargetNotFound")
    objects.extend(backend_world("gone"))
    config = builder.build(snapshot(*objects), SETTINGS)
    assert builder.work.policies == 0 and condition(config, "p", "Service", "gone") == ("True", "Accepted")
    assert config.checksum == build(snapshot(*objects), SETTINGS).checksum
