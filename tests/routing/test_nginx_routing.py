"""ingress-nginx routing annotations at the builder level (issue 12, the second batch): Ingresses in, routes out.

Each test names the ingress-nginx e2e test (test/e2e/annotations/*.go) or documentation section
(docs/user-guide/nginx-configuration/annotations.md) whose facts it reproduces. The data plane is exercised
in tests/server/test_nginx_routing.py.
"""

from __future__ import annotations

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
