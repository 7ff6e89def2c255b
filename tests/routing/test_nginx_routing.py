"""ingress-nginx routing annotations at the builder level (issue 12, the second batch): Ingresses in, routes out.

Each test names the ingress-nginx e2e test (test/e2e/annotations/*.go) or documentation section
(docs/user-guide/nginx-configuration/annotations.md) whose facts it reproduces. The data plane is exercised
in tests/server/test_nginx_routing.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.routing.model import BODY_LIMIT_DEFAULT, Config, Route
from proxy.settings import Settings

from .objects import backend, backend_world, ingress, path, route_for, rule, snapshot

HOST = "routing.bar.com"
PREFIX = "nginx.ingress.kubernetes.io/"


def annotated(name: str, *, service: str = "echo", host: str = HOST, **annotations: str) -> dict[str, Any]:
    obj = ingress(name, rule(host, path("/", service)))
    obj["metadata"]["annotations"] = {PREFIX + key.replace("_", "-"): value for key, value in annotations.items()}
    return obj


def world(*objects: dict[str, Any]) -> Snapshot:
    return snapshot(*objects, *backend_world("echo", "other", "errors"))


def built(*objects: dict[str, Any], host: str = HOST, at: str = "/") -> tuple[Config, Route]:
    snap = world(*objects)
    config = build(snap, Settings())
    again = Builder().build(snap, Settings())
    assert (again.checksum, again.warnings) == (config.checksum, config.warnings)  # the incremental builder agrees
    route = route_for(config, host, at)
    assert route is not None
    return config, route


def messages(config: Config) -> list[str]:
    return [warning.message for warning in config.warnings]


# ---------------------------------------------------------------------------------------------- proxy-body-size

@pytest.mark.parametrize(("value", "size"), [
    ("8m", 8 << 20), ("8M", 8 << 20), ("100k", 100 << 10), ("1g", 1 << 30), ("1000", 1000), ("12b", 12), ("0", 0)])
def test_proxy_body_size_in_nginx_units(value, size):
    """proxy.go "should set proxy client-max-body-size to 8m"; annotations.md "Custom max body size": nginx's
    sizes (k, m, g, any case; ingress-nginx's SizeRegex also allows b); "0" turns the limit off."""
    _, route = built(annotated("big", proxy_body_size=value))
    assert route.body_limit == size


def test_proxy_body_size_absent_leaves_the_process_default_to_ingress_routes_only():
    """configmap.md "proxy-body-size" (1m by default) applies to every Ingress route without the annotation,
    the defaultBackend's too; the pipeline reads Settings.proxy_body_size for BODY_LIMIT_DEFAULT."""
    obj = ingress("plain", rule(HOST, path("/api", "echo")), default=backend("other", 80))
    config, route = built(obj, at="/api")
    assert route.body_limit == BODY_LIMIT_DEFAULT
    fallback = route_for(config, HOST, "/elsewhere")
    assert fallback is not None and (fallback.cluster, fallback.body_limit) == ("default/other:80", BODY_LIMIT_DEFAULT)
    assert Settings().proxy_body_size == 1 << 20


def test_proxy_body_size_reaches_the_default_backend_route_of_its_ingress():
    obj = ingress("big", rule(HOST, path("/api", "echo")), default=backend("other", 80))
    obj["metadata"]["annotations"] = {PREFIX + "proxy-body-size": "2m"}
    config, route = built(obj, at="/elsewhere")
    assert (route.cluster, route.body_limit) == ("default/other:80", 2 << 20)


@pytest.mark.parametrize("value", ["15r", "-1", "1.5m", "m", ""])
def test_proxy_body_size_invalid_keeps_the_default_with_a_warning(value):
    """proxy.go "should not set proxy client-max-body-size to incorrect value" ("15r")."""
    config, route = built(annotated("bad", proxy_body_size=value))
    assert route.body_limit == BODY_LIMIT_DEFAULT
    assert any(f"{PREFIX}proxy-body-size" in message for message in messages(config))


# ---------------------------------------------------------------------------------------------- error pages

def test_default_backend_gives_every_route_of_its_ingress_error_pages_on_the_services_first_port():
    """annotations.md "Default Backend": a Service of the Ingress's namespace, its first port; the fields name
    the route's own Service (default_backend.go: x-service-name=invalid)."""
    obj = ingress("db", rule(HOST, path("/", "echo")), default=backend("other", 80))
    obj["metadata"]["annotations"] = {PREFIX + "default-backend": "errors"}
    config, route = built(obj)
    assert route.errors is not None and not route.plain
    assert (route.errors.cluster, route.errors.codes) == ("default/errors:", frozenset())
    assert route.errors.fields == (b"X-Namespace: default\r\nX-Ingress-Name: db\r\nX-Service-Name: echo\r\n"
                                   b"X-Service-Port: 80\r\n")
    cluster = config.clusters["default/errors:"]
    assert cluster.endpoints and cluster.service == "errors"


def test_custom_http_errors_lists_the_codes_the_default_backend_answers():
    """annotations.md "Custom HTTP Errors" (custom-http-errors: "404,415"); customhttperrors.go ignores duplicates."""
    _, route = built(annotated("errs", custom_http_errors="404, 415,404", default_backend="errors"))
    assert route.errors is not None and route.errors.codes == frozenset({404, 415})


def test_custom_http_errors_without_default_backend_warns_and_does_nothing():
    """Without default-backend nor --default-backend-service the codes alone have nowhere to go."""
    config, route = built(annotated("errs", custom_http_errors="404"))
    assert route.errors is None and route.plain
    assert any("custom-http-errors has no effect without default-backend" in m for m in messages(config))


@pytest.mark.parametrize(("name", "value"), [("custom-http-errors", "404,abc"), ("custom-http-errors", "302"),
                                             ("default-backend", "Not_A_Service"), ("default-backend", "")])
def test_bad_error_page_values_turn_the_feature_off_with_a_warning(name, value):
    annotations = {"custom_http_errors": "404", "default_backend": "errors"}
    annotations[name.replace("-", "_")] = value
    config, route = built(annotated("bad", **annotations))
    assert any(f"{PREFIX}{name}" in message for message in messages(config))
    if name == "default-backend":
        assert route.errors is None
    else:
        assert route.errors is not None and route.errors.codes == frozenset()


# ---------------------------------------------------------------------------------------------- hosts

def test_server_alias_serves_the_first_rule_hosts_paths_under_more_names():
    """alias.go "should return status code 200 for host 'foo' and 'bar'": server-alias "bar" serves foo's paths."""
    config, route = built(annotated("alias", server_alias="bar, Baz.example.com"), host="bar")
    assert (route.cluster, route.host) == ("default/echo:80", "bar")
    other = route_for(config, "baz.example.com", "/")
    assert other is not None and other.cluster == "default/echo:80"
    assert route_for(config, HOST, "/") is not None


def test_no_server_alias_means_other_hosts_are_not_served():
    """alias.go "should return status code 200 for host 'foo' and 404 for 'bar'"."""
    config, _ = built(annotated("plain"))
    assert route_for(config, "bar", "/") is None


def test_server_alias_invalid_is_ignored_with_a_warning():
    config, _ = built(annotated("alias", server_alias="not a host!"))
    assert route_for(config, "not a host!", "/") is None
    assert any(f"{PREFIX}server-alias" in message for message in messages(config))


def test_from_to_www_redirect_serves_the_other_spelling_with_a_redirect_filter():
    """fromtowwwredirect.go "should redirect from www HTTP to HTTP": the www name is served by a 308 redirect."""
    config, route = built(annotated("www", from_to_www_redirect="true"), host="www." + HOST)
    assert route.filters is not None
    www = route.filters.request[0]
    assert type(www).__name__ == "WwwRedirect" and www.hosts == (("www." + HOST, HOST),)
    assert route_for(config, "www." + HOST, "/").host == "www." + HOST


def test_upstream_vhost_rewrites_the_host_sent_upstream():
    """upstreamvhost.go "set host to upstreamvhost.bar.com" (proxy_set_header Host)."""
    _, route = built(annotated("vhost", upstream_vhost="upstreamvhost.bar.com"))
    assert route.filters is not None
    (rewrite,) = route.filters.request
    assert rewrite.hostname == b"upstreamvhost.bar.com"


# ---------------------------------------------------------------------------------------------- service-upstream

def _with_cluster_ip(snap: Snapshot, address: str) -> Snapshot:
    services = dict(snap.services)
    obj = services[("default", "echo")]
    services[("default", "echo")] = {**obj, "spec": {**obj["spec"], "clusterIP": address}}
    return replace(snap, services=services)


def test_service_upstream_forwards_to_the_cluster_ip_and_service_port():
    """serviceupstream.go "should use the Service Cluster IP and Port": one endpoint, the ClusterIP and the
    Service's port, in the Ingress's own cluster (the plain cluster keeps the pods)."""
    snap = _with_cluster_ip(world(annotated("su", service_upstream="true"),
                                  annotated("plain", host="plain.test")), "10.96.0.10")
    config = build(snap, Settings())
    assert Builder().build(snap, Settings()).checksum == config.checksum
    route = route_for(config, HOST, "/")
    assert route is not None
    cluster = config.clusters[route.cluster]
    assert [tuple(endpoint) for endpoint in cluster.endpoints] == [("10.96.0.10", 80)]
    plain = route_for(config, "plain.test", "/")
    assert plain is not None and plain.cluster == "default/echo:80"
    assert all(endpoint.address != "10.96.0.10" for endpoint in config.clusters[plain.cluster].endpoints)


def test_service_upstream_false_keeps_the_pods():
    """serviceupstream.go "should not use the Service Cluster IP and Port" (annotation "false")."""
    snap = _with_cluster_ip(world(annotated("su", service_upstream="false")), "10.96.0.10")
    route = route_for(build(snap, Settings()), HOST, "/")
    assert route is not None and route.cluster == "default/echo:80"


def test_service_upstream_of_a_headless_service_has_no_endpoints_and_warns():
    snap = _with_cluster_ip(world(annotated("su", service_upstream="true")), "None")
    config = build(snap, Settings())
    route = route_for(config, HOST, "/")
    assert route is not None and config.clusters[route.cluster].endpoints == ()
    assert any("service-upstream" in message for message in messages(config))


# ---------------------------------------------------------------------------------------------- access log

def test_enable_access_log_false_marks_every_route_of_its_ingress():
    """annotations.md "Enable Access Log" ("false": access_log off for the Ingress's locations)."""
    obj = ingress("quiet", rule(HOST, path("/api", "echo")), default=backend("other", 80))
    obj["metadata"]["annotations"] = {PREFIX + "enable-access-log": "false"}
    config, route = built(obj, at="/api")
    fallback = route_for(config, HOST, "/elsewhere")
    assert (route.access_log, fallback is not None and fallback.access_log) == (False, False)
    _, logged = built(annotated("loud", enable_access_log="true"))
    assert logged.access_log and logged.plain


def test_a_named_hosts_unmatched_paths_are_logged_as_its_oldest_ingress_says():
    """nginx.tmpl puts `access_log off` in a location; a named host's root location (what no path matches) takes
    its oldest non-canary Ingress's annotations (controller.go createServers): that one's enable-access-log decides,
    and the checksum tells the two apart."""
    quiet = ingress("quiet", rule(HOST, path("/api", "echo")), created="2024-01-01T00:00:00Z")
    quiet["metadata"]["annotations"] = {PREFIX + "enable-access-log": "false"}
    loud = ingress("loud", rule(HOST, path("/web", "echo")), created="2024-02-01T00:00:00Z")
    config, _ = built(quiet, loud, at="/api")
    assert not config.table.hosts[HOST].log_unmatched
    assert route_for(config, HOST, "/web").access_log  # (the younger Ingress's own paths: its own annotation)
    louder = ingress("louder", rule(HOST, path("/api", "echo")), created="2024-01-01T00:00:00Z")
    config_loud, _ = built(louder, loud, at="/web")
    assert config_loud.table.hosts[HOST].log_unmatched
    canary = annotated("canary", canary="true", enable_access_log="false")  # a canary makes no server: not the root
    canary["metadata"]["creationTimestamp"] = "2023-01-01T00:00:00Z"
    config_canary, _ = built(canary, loud, at="/web")
    assert config_canary.table.hosts[HOST].log_unmatched
    hostless = ingress("hostless", rule("", path("/api", "echo")))  # the default server's: the ConfigMap's key
    hostless["metadata"]["annotations"] = {PREFIX + "enable-access-log": "false"}
    config_any, _ = built(hostless, host="anything", at="/api")
    assert config_any.table.any_host is not None and config_any.table.any_host.log_unmatched


def test_the_checksum_covers_whether_a_hosts_unmatched_paths_are_logged():
    from proxy.routing.checksum import host_digest
    from proxy.routing.table import VirtualHost

    assert host_digest(HOST, VirtualHost()) != host_digest(HOST, VirtualHost(log_unmatched=False))
