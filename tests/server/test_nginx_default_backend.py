"""ingress-nginx's default backend (`--default-backend-service NAMESPACE/NAME`) for unmatched requests, end to end:
Ingresses → the real builder → the real proxy on 127.0.0.1 → echo pods. Builder-level cases are in
tests/routing/test_nginx_default_backend.py.

Facts: ingress-nginx's test/e2e/defaultbackend/custom_default_backend.go ("uses custom default backend that returns
200 as status code"), default_backend.go ("should return 404 sending requests when only a default backend is
running", GET and POST, with and without a host), with_hosts.go (an Ingress's spec.defaultBackend answers its host)
and docs/user-guide/default-backend.md.
"""

from __future__ import annotations

from typing import Any

import pytest

from server_harness import request
from test_nginx_annotations import ingress, serve

HOST = "foo.bar.com"


def catch_all(name: str, service: str) -> dict[str, Any]:
    """An Ingress with a defaultBackend and no rules (ingress-nginx's catch-all)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "pyngress",
                     "defaultBackend": {"service": {"name": service, "port": {"number": 80}}}}}


async def who(port: int, path: str, host: str, method: str = "GET") -> tuple[int, str]:
    """(status, the pod that answered: "" when the proxy answered itself)."""
    response = await request(port, path, host=host, method=method, body=b"x" if method == "POST" else None)
    return response.status, response.header("X-Pod") or ""


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unmatched_requests_go_to_the_default_backend_service(make_proxy, make_pods, method):
    """custom_default_backend.go and default_backend.go's cases (no host, unknown host foo.bar.com, "/" and
    "/demo", GET and POST): with --default-backend-service its pods answer them; a known host's unmatched path too;
    matched paths still reach their own Service."""
    app, fallback = await make_pods("app", "fallback")
    proxy = await make_proxy(default_backend_service="default/fallback")
    serve(proxy, [app, fallback], ingress("app", "app.bar.com", ("/app", "Prefix", "app")))
    for host in ("", HOST):
        for path in ("/", "/demo"):
            assert await who(proxy.port, path, host, method) == (200, "fallback"), (host, path)
    assert await who(proxy.port, "/demo", "app.bar.com", method) == (200, "fallback")
    assert await who(proxy.port, "/app/x", "app.bar.com", method) == (200, "app")
    # The request reaches the default backend as the client sent it.
    response = await request(proxy.port, "/demo?q=1", host=HOST)
    assert response.json()["path"] == "/demo?q=1"


async def test_without_the_flag_unmatched_requests_get_404(make_proxy, make_pods):
    """default_backend.go "should return 404 sending requests when only a default backend is running"."""
    (app,) = await make_pods("app")
    proxy = await make_proxy()
    serve(proxy, [app], ingress("app", "app.bar.com", ("/app", "Prefix", "app")))
    assert await who(proxy.port, "/", HOST) == (404, "")
    assert await who(proxy.port, "/demo", "app.bar.com") == (404, "")
    assert await who(proxy.port, "/app", "app.bar.com") == (200, "app")


async def test_a_catch_all_ingress_wins_over_the_flag(make_proxy, make_pods):
    """controller.go createServers: an Ingress with a defaultBackend and no rules configures the default server
    instead of --default-backend-service; a host's own Ingress keeps its paths, its unmatched ones go to the flag's
    Service (its root location's backend is the default upstream)."""
    app, fallback, catcher = await make_pods("app", "fallback", "catcher")
    proxy = await make_proxy(default_backend_service="default/fallback")
    serve(proxy, [app, fallback, catcher], catch_all("catch-all", "catcher"),
          ingress("app", "app.bar.com", ("/app", "Prefix", "app")))
    assert await who(proxy.port, "/", HOST) == (200, "catcher")
    assert await who(proxy.port, "/demo", "app.bar.com") == (200, "fallback")
    assert await who(proxy.port, "/app", "app.bar.com") == (200, "app")


async def test_a_protected_host_stays_protected_on_unmatched_paths(make_proxy, make_pods):
    """annotations.md "Whitelist source range" with controller.go createServers (the root location of a host gets
    its Ingress's annotations): a client outside the range gets 403 on unmatched paths as on matched ones."""
    app, fallback = await make_pods("app", "fallback")
    proxy = await make_proxy(default_backend_service="default/fallback")
    serve(proxy, [app, fallback], ingress("app", "app.bar.com", ("/app", "Prefix", "app"),
                                          whitelist_source_range="127.0.1.0/24"))
    inside = await request(proxy.port, "/demo", host="app.bar.com", source="127.0.1.5")
    outside = await request(proxy.port, "/demo", host="app.bar.com", source="127.0.3.1")
    assert (inside.status, inside.header("X-Pod")) == (200, "fallback")
    assert outside.status == 403
