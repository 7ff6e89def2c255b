"""Per-route tracing switches: an Ingress's enable-opentelemetry, an HTTPRoute's pyngress.dev/tracing, compiled
into Route.tracing (None: the process's default)."""

from __future__ import annotations

import pytest

from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.settings import Settings

from .gateway.objects import INFRA, backend, base_objects, gateway, http_route, listener, parent
from .gateway.objects import rule as route_rule
from .gateway.objects import snapshot as gateway_snapshot
from .objects import backend_world, ingress, path, route_for, rule, snapshot


def _annotated(name: str, host: str, annotations: dict[str, str] | None, *, default: bool = False) -> dict:
    obj = ingress(name, rule(host, path("/", "web")), default={"service": {"name": "web", "port": {"number": 80}}}
                  if default else None)
    if annotations is not None:
        obj["metadata"]["annotations"] = annotations
    return obj


@pytest.mark.parametrize(("annotations", "expected", "warned"), [
    (None, None, False),
    ({"nginx.ingress.kubernetes.io/enable-opentelemetry": "true"}, True, False),
    ({"nginx.ingress.kubernetes.io/enable-opentelemetry": " False "}, False, False),
    ({"pyngress.dev/enable-opentelemetry": "false", "nginx.ingress.kubernetes.io/enable-opentelemetry": "true"},
     False, False),  # ours wins
    ({"nginx.ingress.kubernetes.io/enable-opentelemetry": "yes"}, None, True),  # invalid: default, warning
])
def test_ingress_enable_opentelemetry(annotations, expected, warned):
    config = build(snapshot(_annotated("web", "a.test", annotations, default=True), *backend_world("web")),
                   Settings())
    assert route_for(config, "a.test", "/x").tracing is expected
    assert config.table.match("a.test", "/").tracing is expected
    messages = [w.message for w in config.warnings]
    assert any("enable-opentelemetry" in m and "process's default" in m for m in messages) is warned


def test_the_annotation_changes_the_checksum_and_the_incremental_build_follows_it():
    plain = snapshot(_annotated("web", "a.test", None), *backend_world("web"))
    off = snapshot(_annotated("web", "a.test", {"nginx.ingress.kubernetes.io/enable-opentelemetry": "false"}),
                   *backend_world("web"))
    assert build(plain, Settings()).checksum != build(off, Settings()).checksum
    builder = Builder()
    assert builder.build(plain, Settings()).table.match("a.test", "/").tracing is None
    changed = builder.build(off, Settings())
    assert changed.table.match("a.test", "/").tracing is False
    assert changed.checksum == build(off, Settings()).checksum


@pytest.mark.parametrize(("value", "expected", "warned"), [
    (None, None, False), ("true", True, False), ("FALSE", False, False), ("1", None, True)])
def test_httproute_tracing_annotation(value, expected, warned):
    route = http_route("shop", route_rule(backends=[backend("infra-backend-v1")]), parents=[parent("edge")],
                       hostnames=["shop.test"])
    if value is not None:
        route["metadata"]["annotations"] = {"pyngress.dev/tracing": value}
    objects = [*base_objects(), gateway("edge", listener("http", 80, namespaces="All")), route]
    config = build(gateway_snapshot(*objects), Settings(gateways=(f"{INFRA}/edge",)))
    [found] = [r for r in config.routes() if r.kind == "HTTPRoute"]
    assert found.tracing is expected
    assert any("pyngress.dev/tracing" in w.message for w in config.warnings) is warned
