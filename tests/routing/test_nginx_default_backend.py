"""ingress-nginx's default backend (`--default-backend-service NAMESPACE/NAME`) for what no Ingress rule matches, at
the builder level: objects in, routes out. The data plane is exercised in tests/server/test_nginx_default_backend.py.

Facts are ingress-nginx's: docs/user-guide/default-backend.md ("handles all URL paths and hosts the Ingress-NGINX
controller doesn't understand"), test/e2e/defaultbackend/custom_default_backend.go (the flag's Service answers "/"
of the default server), default_backend.go (without it: 404 for any host and path), with_hosts.go (an Ingress's own
spec.defaultBackend answers its host's unmatched paths), and internal/ingress/controller/controller.go
createServers (each server's root location goes to the default upstream unless an Ingress's defaultBackend
replaces it; a catch-all Ingress, with a defaultBackend and no rules, replaces the default server's).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.routing.model import PATH_DEFAULT_BACKEND, Config
from proxy.settings import Settings

from .gateway import objects as gw
from .objects import backend, backend_world, ingress, path, route_for, rule, snapshot
from .test_incremental import SETTINGS, World, assert_same, table_contents

FLAG = Settings(default_backend_service="ingress-nginx/fallback")
FALLBACK = "ingress-nginx/fallback:"  # its first port, as custom-http-errors uses it
PREFIX = "nginx.ingress.kubernetes.io/"


def world(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    return [*objects, *backend_world("web", "other"), *backend_world("fallback", namespace="ingress-nginx")]


def built(*objects: dict[str, Any], settings: Settings = FLAG) -> Config:
    snap = snapshot(*world(*objects))
    config = build(snap, settings)
    again = Builder().build(snap, settings)
    assert_same(again, config)  # the incremental builder agrees
    assert again.checksum == config.checksum
    return config


def where(config: Config, host: str, at: str) -> tuple[str, str, str] | None:
    """(cluster, Ingress, pathType) of the route a request reaches; None: pyngress's 404."""
    route = route_for(config, host, at)
    return None if route is None else (route.cluster, route.ingress, route.path_type)


def test_without_the_flag_unmatched_requests_get_404():
    """default_backend.go "should return 404 sending requests when only a default backend is running": no
    --default-backend-service, no catch-all: unknown hosts and unmatched paths are answered 404 (by pyngress)."""
    config = built(ingress("app", rule("foo.com", path("/app", "web"))), settings=Settings())
    assert where(config, "foo.com", "/app") == ("default/web:80", "app", "Prefix")
    assert where(config, "foo.com", "/demo") is None
    assert where(config, "bar.com", "/") is None
    assert where(config, "", "/demo") is None
    assert config.table.any_host is None


def test_unknown_hosts_and_unmatched_paths_go_to_the_flag_service():
    """custom_default_backend.go "uses custom default backend that returns 200 as status code" and
    default-backend.md: with --default-backend-service, the default server and every host's root location go to
    that Service; a matched path is untouched (the same route object as without the flag)."""
    app = ingress("app", rule("foo.com", path("/app", "web")))
    config = built(app)
    assert where(config, "bar.com", "/") == (FALLBACK, "", PATH_DEFAULT_BACKEND)  # unknown host
    assert where(config, "", "/demo") == (FALLBACK, "", PATH_DEFAULT_BACKEND)  # no Host at all
    # Known host, no matching path: the host's root location, which is its (oldest) Ingress's.
    assert where(config, "foo.com", "/demo") == (FALLBACK, "app", PATH_DEFAULT_BACKEND)
    matched = route_for(config, "foo.com", "/app/x")
    assert matched is not None and matched.cluster == "default/web:80"
    assert FALLBACK in config.clusters and config.clusters[FALLBACK].endpoints
    # Without an Ingress at all the default server still answers.
    assert where(built(), "any.com", "/") == (FALLBACK, "", PATH_DEFAULT_BACKEND)


def test_an_ingress_default_backend_wins_over_the_flag():
    """with_hosts.go "should apply the annotation to the default backend" (an Ingress's spec.defaultBackend answers
    its host's unmatched paths) and controller.go createServers (a catch-all Ingress, defaultBackend without rules,
    replaces the default server's backend): both win over --default-backend-service."""
    own = ingress("own", rule("foo.com", path("/app", "web")), default=backend("other", 80))
    config = built(own, ingress("plain", rule("bar.com", path("/app", "web"))))
    assert where(config, "foo.com", "/demo") == ("default/other:80", "own", PATH_DEFAULT_BACKEND)
    assert where(config, "bar.com", "/demo") == (FALLBACK, "plain", PATH_DEFAULT_BACKEND)
    catch_all = ingress("catch-all", default=backend("other", 80))
    config = built(catch_all, ingress("plain", rule("bar.com", path("/app", "web"))))
    assert where(config, "unknown.com", "/") == ("default/other:80", "catch-all", PATH_DEFAULT_BACKEND)
    assert where(config, "bar.com", "/demo") == (FALLBACK, "plain", PATH_DEFAULT_BACKEND)


def test_host_less_rules_keep_the_flag_for_what_they_do_not_match():
    """controller.go createServers: rules without a host join the default server "_", whose root location stays the
    default upstream."""
    config = built(ingress("hostless", rule(None, path("/app", "web"))))
    assert where(config, "x.com", "/app") == ("default/web:80", "hostless", "Prefix")
    assert where(config, "x.com", "/demo") == (FALLBACK, "", PATH_DEFAULT_BACKEND)


def test_the_root_location_carries_the_host_ingress_annotations():
    """controller.go createServers applies the Ingress's annotations to the root location it makes for a host
    (locationApplyAnnotations): a host restricted by whitelist-source-range stays restricted on unmatched paths,
    and a broken security annotation fails closed there too (annotations.md "Whitelist source range")."""
    restricted = ingress("restricted", rule("foo.com", path("/app", "web")))
    restricted["metadata"]["annotations"] = {PREFIX + "whitelist-source-range": "10.0.0.0/8"}
    config = built(restricted)
    matched, fallback = route_for(config, "foo.com", "/app"), route_for(config, "foo.com", "/demo")
    assert matched is not None and fallback is not None and fallback.cluster == FALLBACK
    assert fallback.filters is not None and fallback.filters.request == matched.filters.request  # type: ignore[union-attr]
    restricted["metadata"]["annotations"] = {PREFIX + "whitelist-source-range": "10.0.0.0/99"}
    config = built(restricted)
    fallback = route_for(config, "foo.com", "/demo")
    assert fallback is not None and fallback.filters is not None
    assert [type(item).__name__ for item in fallback.filters.request] == ["Refuse"]


def test_a_missing_flag_service_is_a_warning_on_the_service():
    """A --default-backend-service naming no Service: unmatched requests get 503 (no endpoints), and one warning
    names the Service (the default server's route belongs to no Ingress)."""
    snap = snapshot(ingress("app", rule("foo.com", path("/app", "web"))), *backend_world("web"))
    config = build(snap, FLAG)
    assert_same(Builder().build(snap, FLAG), config)
    assert where(config, "bar.com", "/") == (FALLBACK, "", PATH_DEFAULT_BACKEND)
    named = [(w.kind, w.namespace, w.name) for w in config.warnings if "fallback" in w.message]
    assert ("Service", "ingress-nginx", "fallback") in named
    assert all(name for _, _, name in named)


@pytest.mark.parametrize("offset", [8000, 10000])  # Gateway ports 80/443 on the Ingress ports, or on their own
def test_gateway_listeners_are_not_affected(offset):
    """The Gateway API answers 404 for what no HTTPRoute matches (HTTPRouteMatching conformance): the flag belongs
    to Ingress ports only, and a Gateway-only listener's table gets no default; on a port shared with Ingresses a
    Gateway host still answers 404 for its unmatched paths."""
    objects = [*gw.base_objects(),
               gw.http_route("web", gw.rule(gw.match("/app"), backends=[gw.backend("infra-backend-v1")]),
                             parents=[gw.parent("same-namespace")], hostnames=["gw.example.com"]),
               *backend_world("fallback", namespace="ingress-nginx")]
    config = build(gw.snapshot(*objects), Settings(default_backend_service="ingress-nginx/fallback",
                                                   gateway_port_offset=offset))
    assert {listener.ingress for listener in config.listeners.values()} == {offset == 8000}
    attached = [listener.table for listener in config.listeners.values() if "gw.example.com" in listener.table.hosts]
    assert attached
    for table in attached:
        assert table.match("gw.example.com", "/other") is None  # a Gateway host: 404, on an Ingress port too
        found = table.match("gw.example.com", "/app")
        assert found is not None and found.cluster != FALLBACK
    for listener in config.listeners.values():
        if not listener.ingress:
            assert FALLBACK not in {key for route in listener.table.routes() for key in route.cluster_keys()}
            found = listener.table.match("unknown.com", "/")
            assert found is None or found.cluster != FALLBACK


@pytest.mark.parametrize("seed", range(3))
def test_random_changes_build_what_a_fresh_build_does_with_the_flag(seed):
    """The incremental builder keeps the default server and the host fallbacks as a fresh build makes them, while
    Ingresses (catch-alls, host-less rules, canaries) come and go."""
    rng = random.Random(seed)
    world_ = World()
    builder = Builder()
    settings = Settings(**{**{f: getattr(SETTINGS, f) for f in SETTINGS.__dataclass_fields__},
                           "default_backend_service": "default/fallback"})
    previous: tuple[Any, ...] | None = None
    previous_checksum = ""
    for step in range(80):
        world_.step(rng)
        snap = world_.snapshot()
        got, fresh = builder.build(snap, settings), build(snap, settings)
        assert_same(got, fresh)
        assert got.checksum == fresh.checksum
        assert got.table.any_host is not None, step  # the default server is always there
        contents = (table_contents(got.table), dict(got.clusters))
        if previous is not None:
            assert (got.checksum == previous_checksum) == (contents == previous)
        previous, previous_checksum = contents, got.checksum


def test_the_default_server_takes_the_configmaps_custom_http_errors_and_proxy_set_headers():
    """nginx.tmpl: custom-http-errors' `error_page CODE = @custom_upstream-default-backend_CODE` is set at http
    level, so the default server "_" sends those answers back to the default backend too, with no Ingress names
    (its location has none: empty $namespace... which nginx does not send); `$all.ProxySetHeaders` are set in
    every location, the default server's included. Both builders agree (built() checks); a host's root location
    keeps its Ingress's (features_of), naming that Ingress."""
    from proxy.routing.filters import RequestHeaderModifier

    from .test_nginx_configmaps import config_map

    settings = Settings(default_backend_service="ingress-nginx/fallback", configmap="ingress-nginx/controller")
    maps = (config_map("controller", {"custom-http-errors": "404,503", "proxy-set-headers": "custom-headers"},
                       namespace="ingress-nginx"),
            config_map("custom-headers", {"X-Using-Nginx-Controller": "true"}, namespace="ingress-nginx"))
    config = built(ingress("app", rule("foo.com", path("/app", "web"))), *maps, settings=settings)
    for host, named in (("bar.com", ""), ("", ""), ("foo.com", "app")):
        route = route_for(config, host, "/demo")
        assert route is not None and route.errors is not None, host
        assert (route.cluster, route.errors.cluster, route.errors.codes) == (FALLBACK, FALLBACK, {404, 503}), host
        assert (b"X-Ingress-Name: " + named.encode() in route.errors.fields) == bool(named), host
        edits = [f for f in (route.filters.request if route.filters else ()) if isinstance(f, RequestHeaderModifier)]
        assert [edit.edits.set for edit in edits] == [((b"X-Using-Nginx-Controller", b"true"),)], host
    assert route_for(config, "bar.com", "/").errors.fields == b""  # type: ignore[union-attr]
    # Without the ConfigMap's keys the default server's route is the plain one.
    plain = built(ingress("app", rule("foo.com", path("/app", "web"))), settings=settings)
    route = route_for(plain, "bar.com", "/")
    assert route is not None and (route.errors, route.filters, route.plain) == (None, None, True)
