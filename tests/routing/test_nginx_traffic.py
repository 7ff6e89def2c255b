"""ingress-nginx traffic annotations at the builder level: Ingresses in, routes and cluster policies out.

Each test names the ingress-nginx e2e test (test/e2e/annotations/*.go) or documentation section
(docs/user-guide/nginx-configuration/annotations.md) whose facts it reproduces: defaults, valid values,
what a bad value does. The data plane is exercised in tests/server/test_nginx_traffic.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.routing.model import Config, Route, Timeouts
from proxy.routing.policies import (
    CONSISTENT_HASH,
    HASH_COOKIE,
    HASH_HEADER,
    HASH_SOURCE_IP,
    HASH_URI,
    HTTP2,
    LEAST_REQUEST,
    RETRY_ERROR,
    RETRY_TIMEOUT,
    BackendTLS,
    ClusterPolicy,
    LoadBalancer,
    RetryPolicy,
    SessionAffinity,
)
from proxy.settings import Settings

from .objects import backend_world, ingress, path, route_for, rule, snapshot
from .policy.objects import target, traffic_policy

HOST = "traffic.bar.com"
PREFIX = "nginx.ingress.kubernetes.io/"


def annotated(name: str, *, service: str = "echo", host: str = HOST, **annotations: str) -> dict[str, Any]:
    obj = ingress(name, rule(host, path("/", service)))
    obj["metadata"]["annotations"] = {PREFIX + key.replace("_", "-"): value for key, value in annotations.items()}
    return obj


def world(*objects: dict[str, Any]) -> Snapshot:
    policies = {(obj["metadata"]["namespace"], obj["metadata"]["name"]): obj for obj in objects
                if obj["kind"] == "BackendTrafficPolicy"}
    snap = snapshot(*(obj for obj in objects if obj["kind"] != "BackendTrafficPolicy"), *backend_world("echo", "other"))
    return replace(snap, backend_traffic_policies=policies) if policies else snap


def built(*objects: dict[str, Any]) -> tuple[Config, Route]:
    snap = world(*objects)
    config = build(snap, Settings())
    again = Builder().build(snap, Settings())
    assert (again.checksum, again.warnings) == (config.checksum, config.warnings)  # the incremental builder agrees
    route = route_for(config, HOST, "/")
    assert route is not None
    return config, route


def cluster_policy(config: Config, route: Route) -> ClusterPolicy | None:
    return config.clusters[route.cluster].policy


def messages(config: Config) -> list[str]:
    return [warning.message for warning in config.warnings]


# ---------------------------------------------------------------------------------------------- timeouts

def test_custom_timeouts_become_the_route_read_and_send_timeouts_and_the_cluster_connect_timeout():
    """proxy.go "should set timeout values for proxy read, write and connect" (connect 1, send 2, read 3)."""
    config, route = built(annotated("t", proxy_connect_timeout="1", proxy_send_timeout="2", proxy_read_timeout="3"))
    assert route.timeouts == Timeouts(read=3.0, send=2.0)
    policy = cluster_policy(config, route)
    assert policy is not None and policy.connect_timeout == 1.0
    assert policy.load_balancer == LoadBalancer() and policy.tls is None


def test_invalid_timeouts_fall_back_to_the_global_settings():
    """proxy.go "should not set invalid timeout values for proxy read, write and connect" ("1s", "2s" are
    not integers: nginx keeps its ConfigMap values, 5/60/60; here --upstream-*-timeout)."""
    config, route = built(annotated("t", proxy_connect_timeout="1s", proxy_send_timeout="2s",
                                    proxy_read_timeout="3s"))
    assert route.plain and route.cluster == "default/echo:80"
    found = messages(config)
    assert any("proxy-connect-timeout" in m and "--upstream-connect-timeout" in m for m in found)
    assert sum("is not an integer" in m for m in found) == 3


def test_a_plain_ingress_gets_no_policy_and_shares_the_plain_cluster():
    """The annotations cost nothing where they are absent: same route object shape, the plain cluster key."""
    config, route = built(ingress("plain", rule(HOST, path("/", "echo"))))
    assert route.plain and route.policy is None and route.cluster == "default/echo:80"
    assert config.clusters["default/echo:80"].policy is None


# ---------------------------------------------------------------------------------------------- retries

def test_proxy_next_upstream_maps_onto_the_retry_policy():
    """proxy.go "should set proxy_next_upstream" ("error timeout http_502") with "should setup
    proxy_next_upstream_tries" (3 tries: the first attempt and two retries)."""
    _, route = built(annotated("r", proxy_next_upstream="error timeout http_502", proxy_next_upstream_tries="3",
                               proxy_next_upstream_timeout="10"))
    assert route.policy is not None
    retry = route.policy.retry
    assert retry == RetryPolicy(num_retries=2, retry_on=frozenset({RETRY_ERROR, RETRY_TIMEOUT}),
                                status_codes=frozenset({502}), idempotent_only=True, backoff_base=0.0,
                                backoff_max=0.0, budget=1.0, window=10.0, per_endpoint=True)


def test_tries_alone_keep_nginx_default_words_and_non_idempotent_and_off():
    """annotations.md "Custom timeouts" and nginx's proxy_next_upstream: default "error timeout"; tries 1 is no
    retry; tries 0 no limit but the endpoints; non_idempotent lets POST be retried; off retries nothing."""
    _, route = built(annotated("r", proxy_next_upstream_tries="1"))
    assert route.policy is not None and route.policy.retry is not None
    assert route.policy.retry.num_retries == 0
    assert route.policy.retry.retry_on == frozenset({RETRY_ERROR, RETRY_TIMEOUT})
    _, route = built(annotated("r", proxy_next_upstream_tries="0", proxy_next_upstream="http_503 non_idempotent"))
    assert route.policy is not None and route.policy.retry is not None
    retry = route.policy.retry
    assert (retry.num_retries, retry.per_endpoint, retry.idempotent_only) == (1000, True, False)
    assert (retry.retry_on, retry.status_codes) == (frozenset(), frozenset({503}))
    _, route = built(annotated("r", proxy_next_upstream="off"))
    assert route.policy is not None and route.policy.retry is not None and route.policy.retry.num_retries == 0


def test_an_invalid_proxy_next_upstream_keeps_the_default_words():
    """ingress-nginx's validUpstreamAnnotation refuses other words; its ConfigMap default "error timeout" is used."""
    config, route = built(annotated("r", proxy_next_upstream="error bogus"))
    assert route.policy is not None and route.policy.retry is not None
    assert route.policy.retry.retry_on == frozenset({RETRY_ERROR, RETRY_TIMEOUT})
    assert any("proxy-next-upstream" in m and '"error timeout" used' in m for m in messages(config))


# ---------------------------------------------------------------------------------------------- balancing

def test_upstream_hash_by_variables_become_consistent_hashes():
    """upstreamhashby.go "should connect to the same pod" ($request_uri) and annotations.md "Custom NGINX
    upstream hashing" (nginx variables; ${...} braces)."""
    cases = {"$request_uri": (HASH_URI, b""), "${remote_addr}": (HASH_SOURCE_IP, b""),
             "$http_x_user_id": (HASH_HEADER, b"x-user-id"), "$cookie_session": (HASH_COOKIE, b"session")}
    for value, (on, key) in cases.items():
        config, route = built(annotated("h", upstream_hash_by=value, load_balance="ewma"))
        policy = cluster_policy(config, route)
        assert policy is not None and policy.load_balancer == LoadBalancer(CONSISTENT_HASH, on, key), value


def test_unsupported_hash_expressions_warn_and_load_balance_applies():
    """annotations.md "Custom NGINX load balancing": upstream-hash-by takes preference over load-balance; an
    expression pyngress cannot hash (text mixed with variables) is left out with a warning."""
    config, route = built(annotated("h", upstream_hash_by="$request_uri$host", load_balance="ewma"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.load_balancer == LoadBalancer(LEAST_REQUEST)
    assert any("upstream-hash-by" in m and "not supported" in m for m in messages(config))
    config, route = built(annotated("lb", load_balance="round_robin"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.load_balancer == LoadBalancer()
    config, route = built(annotated("lb", load_balance="least_conn"))
    assert route.plain and any("load-balance" in m for m in messages(config))


# ---------------------------------------------------------------------------------------------- affinity

def test_cookie_affinity_defaults_to_ingresscookie():
    """affinity.go "should set sticky cookie SERVERID" / annotations.md "Cookie affinity": default name
    INGRESSCOOKIE, a session cookie."""
    config, route = built(annotated("a", affinity="cookie"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.affinity == SessionAffinity(cookie=b"INGRESSCOOKIE", path=b"/")


def test_cookie_attributes_map_onto_the_affinity_cookie():
    """affinity.go "should set the path to /something on the generated cookie", "should set cookie with expires",
    "should set secure in cookie with provided true annotation", "should set cookie with domain",
    "should set SameSite=None"; affinitymode.go: both modes are served persistent."""
    config, route = built(annotated("a", affinity="cookie", affinity_mode="persistent", session_cookie_name="SERVERID",
                                    session_cookie_path="/something", session_cookie_expires="172800",
                                    session_cookie_secure="true", session_cookie_domain="foo.bar",
                                    session_cookie_samesite="none", upstream_hash_by="$request_uri"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.affinity == SessionAffinity(
        cookie=b"SERVERID", path=b"/something", max_age=172800, same_site=b"None", secure=True, domain=b"foo.bar")
    assert policy.load_balancer == LoadBalancer()  # the cookie decides (balancer.lua: sticky before chash)
    assert any("no effect with affinity" in m for m in messages(config))
    config, route = built(annotated("a", affinity="cookie", session_cookie_max_age="60", session_cookie_expires="9"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.affinity is not None and policy.affinity.max_age == 60


def test_session_cookie_annotations_without_affinity_warn():
    """annotations.md "Session Affinity": the only affinity type is cookie; a bad type turns affinity off."""
    config, route = built(annotated("a", session_cookie_name="X"))
    assert route.plain and any("no effect without affinity" in m for m in messages(config))
    config, route = built(annotated("a", affinity="ip"))
    assert route.plain and any("annotation " + PREFIX + "affinity:" in m for m in messages(config))


# ---------------------------------------------------------------------------------------------- backend protocol

def test_backend_protocol_https_is_tls_without_verification():
    """backendprotocol.go "should set backend protocol to https:// and use proxy_pass" (no proxy_ssl_verify:
    nginx's default is off)."""
    config, route = built(annotated("b", backend_protocol="HTTPS"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.tls == BackendTLS(verify=False)
    config, route = built(annotated("b", backend_protocol="https"))  # case does not matter (ValidateOptions)
    assert cluster_policy(config, route) == policy


def test_grpc_grpcs_and_h2c_are_spoken_in_http2():
    """backendprotocol.go "should set backend protocol to grpc:// and use grpc_pass" and "grpcs://": HTTP/2 to the
    pods, GRPCS over TLS without verification; H2C (not one of ingress-nginx's validProtocols, a pyngress
    extension) is HTTP/2 without TLS like GRPC. No warning: each is spoken as asked."""
    config, route = built(annotated("b", backend_protocol="GRPC"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.protocol == HTTP2 and policy.tls is None
    assert not any("backend-protocol" in m for m in messages(config))
    config, route = built(annotated("b", backend_protocol="GRPCS"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.protocol == HTTP2 and policy.tls == BackendTLS(verify=False)
    config, route = built(annotated("b", backend_protocol="h2c"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.protocol == HTTP2 and policy.tls is None
    config, route = built(annotated("b", backend_protocol="HTTPS"))
    policy = cluster_policy(config, route)
    assert policy is not None and policy.protocol == ""


def test_proxy_ssl_secret_fails_closed_and_its_options_need_it():
    """proxyssl.go "should set valid proxy-ssl-secret" with a Secret that does not exist: the location is denied
    (503) as ingress-nginx denies one whose Secret cannot be used (tests/routing/test_nginx_auth.py has the
    Secret); annotations.md "Backend Certificate Authentication": verify, name and server-name only act with
    the Secret."""
    config, route = built(annotated("s", backend_protocol="HTTPS", proxy_ssl_secret="default/ca",
                                    proxy_ssl_verify="on"))
    assert route.filters is not None and route.filters.request[0].on_request(None).status == 503  # type: ignore
    assert any("proxy-ssl-secret" in m and "503" in m for m in messages(config))
    config, route = built(annotated("s", backend_protocol="HTTPS", proxy_ssl_verify="on", proxy_ssl_name="x.svc"))
    assert route.filters is None
    assert any("no effect without proxy-ssl-secret" in m for m in messages(config))


# ---------------------------------------------------------------------------------------------- precedence

def test_a_backend_traffic_policy_on_the_same_ingress_wins_section_by_section():
    """Our choice (docs/ingress-nginx.md): the BackendTrafficPolicy attached to the Ingress wins each section it
    sets, with a warning; the annotations keep the sections it does not set."""
    obj = annotated("shop", proxy_next_upstream_tries="5", affinity="cookie")
    policy = traffic_policy("p", target("Ingress", "shop"), retry={"numRetries": 1})
    config, route = built(obj, policy)
    assert route.policy is not None and route.policy.retry is not None and route.policy.retry.num_retries == 1
    cluster = cluster_policy(config, route)
    assert cluster is not None and cluster.affinity is not None and cluster.affinity.cookie == b"INGRESSCOOKIE"
    assert any("BackendTrafficPolicy default/p" in m and "spec.retry" in m and "proxy-next-upstream" in m
               for m in messages(config))


def test_annotations_win_over_a_policy_on_the_service():
    """GEP-713 order: an Ingress's own layer is more specific than its backend Service's."""
    obj = annotated("shop", load_balance="ewma")
    policy = traffic_policy("svc", target("Service", "echo"), loadBalancer={"type": "Random"},
                            retry={"numRetries": 4})
    config, route = built(obj, policy)
    cluster = cluster_policy(config, route)
    assert cluster is not None and cluster.load_balancer == LoadBalancer(LEAST_REQUEST)
    assert route.policy is not None and route.policy.retry is not None and route.policy.retry.num_retries == 4


def test_canary_ignores_its_traffic_annotations_and_shares_the_main_policy():
    """annotations.md "Canary": a canary's other annotations are inherited from the main Ingress (pyngress also
    ignores its load-balance, upstream-hash-by and affinity, with a warning)."""
    main = annotated("main", load_balance="ewma")
    canary = annotated("canary", service="other", canary="true", canary_weight="100", affinity="cookie")
    config, route = built(main, canary)
    assert route.backends is not None
    policies = {config.clusters[backend.cluster].policy for backend in route.backends.backends}
    assert policies == {ClusterPolicy(load_balancer=LoadBalancer(LEAST_REQUEST))}
    assert any("ignored on a canary" in m and "affinity" in m for m in messages(config))


def test_every_annotation_a_canary_sets_beyond_its_own_is_named_as_ignored():
    """annotations.md "Canary" (a canary's other annotations are not applied): not only the traffic ones are
    named, so a canary's body limit, mirror or auth is never a silent no-op; its canary-* and
    affinity-canary-behavior are its own and not named."""
    main = annotated("main")
    canary = annotated("canary", service="other", canary="true", canary_weight="100", proxy_body_size="8m",
                       mirror_target="http://mirror.default.svc/", affinity_canary_behavior="legacy")
    config, _ = built(main, canary)
    [warning] = [m for m in messages(config) if "ignored on a canary" in m]
    assert "mirror-target" in warning and "proxy-body-size" in warning
    assert "canary-weight" not in warning and "affinity-canary-behavior" not in warning


def test_pyngress_prefix_wins_and_an_ingress_of_another_host_is_untouched():
    """The pyngress.dev/ spelling is read first (routing.ingress.annotations)."""
    obj = annotated("t", proxy_read_timeout="3")
    obj["metadata"]["annotations"]["pyngress.dev/proxy-read-timeout"] = "7"
    other = ingress("o", rule("other.test", path("/", "echo")))
    config, route = built(obj, other)
    assert route.timeouts == Timeouts(read=7.0)
    untouched = route_for(config, "other.test", "/")
    assert untouched is not None and untouched.plain and untouched.cluster == "default/echo:80"
