"""The ssl-passthrough annotation compiled into the table: the host's "/" rule is marked, and SniTable finds it.

ingress-nginx: docs/user-guide/nginx-configuration/annotations.md "SSL Passthrough" and
internal/ingress/controller/controller.go getConfiguration (a server with SSLPassthrough sends its
connections to the backend of its "/" location, whichever Ingress wrote it; without one it is
ignored with a warning); test/e2e/settings/ssl_passthrough.go (only annotated hosts are passed).
"""

from __future__ import annotations

import pytest

from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.routing.model import Route
from proxy.routing.passthrough import SniTable, ingress_passthrough, joined
from proxy.settings import Settings

from .objects import backend_world, ingress, path, rule, snapshot

ANNOTATION = "nginx.ingress.kubernetes.io/ssl-passthrough"


def _ingress(name: str, host: str, *paths: dict, value: str | None = "true") -> dict:
    obj = ingress(name, rule(host, *paths))
    if value is not None:
        obj["metadata"]["annotations"] = {ANNOTATION: value}
    return obj


def test_annotated_host_passes_its_root_rule():
    config = build(snapshot(_ingress("tls-app", "pass.test", path("/", "web")),
                            _ingress("plain", "other.test", path("/", "web"), value=None),
                            *backend_world("web")), Settings())
    table = ingress_passthrough(config.table)
    route = table.match("pass.test")
    assert route is not None and route.cluster == "default/web:80" and route.passthrough
    assert table.match("other.test") is None
    assert config.table.match("pass.test", "/x") is route  # plain HTTP still routes the host as before


def test_root_rule_of_another_ingress_on_the_host_is_used():
    """The server is passthrough when any Ingress of the host says so; "/" may come from another one."""
    config = build(snapshot(_ingress("api", "pass.test", path("/api", "api")),
                            _ingress("root", "pass.test", path("/", "web"), value=None),
                            *backend_world("web", "api")), Settings())
    route = ingress_passthrough(config.table).match("pass.test")
    assert route is not None and route.cluster == "default/web:80"


def test_host_without_root_rule_is_warned_and_terminated():
    config = build(snapshot(_ingress("api", "pass.test", path("/api", "api")), *backend_world("api")), Settings())
    assert not ingress_passthrough(config.table)
    assert any("ssl-passthrough" in w.message and 'path "/"' in w.message and w.name == "api"
               for w in config.warnings)


@pytest.mark.parametrize("value", ["yes", "1"])
def test_invalid_value_disables_it_with_a_warning(value):
    config = build(snapshot(_ingress("tls-app", "pass.test", path("/", "web"), value=value), *backend_world("web")),
                   Settings())
    assert not ingress_passthrough(config.table)
    assert any(ANNOTATION in w.message and "SSL passthrough is off" in w.message for w in config.warnings)


def test_wildcard_host_matches_one_label():
    config = build(snapshot(_ingress("wild", "*.pass.test", path("/", "web")), *backend_world("web")), Settings())
    table = ingress_passthrough(config.table)
    assert table.match("a.pass.test") is not None
    assert table.match("a.b.pass.test") is None and table.match("pass.test") is None


def test_checksum_follows_the_annotation_and_the_incremental_builder_agrees():
    plain = snapshot(_ingress("tls-app", "pass.test", path("/", "web"), value=None), *backend_world("web"))
    passed = snapshot(_ingress("tls-app", "pass.test", path("/", "web")), *backend_world("web"))
    assert build(plain, Settings()).checksum != build(passed, Settings()).checksum
    builder = Builder()
    assert not ingress_passthrough(builder.build(plain, Settings()).table)
    changed = builder.build(passed, Settings())
    assert ingress_passthrough(changed.table).match("pass.test") is not None
    assert changed.checksum == build(passed, Settings()).checksum


def test_sni_table_gateway_wildcards_match_any_depth_and_joined_keeps_the_first():
    def route(host: str, cluster: str) -> Route:
        return Route("default", "r", host, "", "", cluster, passthrough=True)

    gateway = SniTable({"a.test": route("a.test", "gw/a:1")}, {"test": route("*.test", "gw/any:1")}, any_depth=True)
    assert gateway.match("x.y.test").cluster == "gw/any:1"
    ingress_table = SniTable({"a.test": route("a.test", "ing/a:1")})
    both = joined(ingress_table, gateway)
    assert both.match("a.test").cluster == "ing/a:1"
    assert both.match("b.test").cluster == "gw/any:1"
