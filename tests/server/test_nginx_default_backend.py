"""ingress-nginx's default backend (`--default-backend-service NAMESPACE/NAME`) for unmatched requests, end to end:
Ingresses → the real builder → the real proxy on 127.0.0.1 → echo pods. Builder-level cases are in
tests/routing/test_nginx_default_backend.py.

Facts: ingress-nginx's test/e2e/defaultbackend/custom_default_backend.go ("uses custom default backend that returns
200 as status code"), default_backend.go ("should return 404 sending requests when only a default backend is
running", GET and POST, with and without a host), with_hosts.go (an Ingress's spec.defaultBackend answers its host)
and docs/user-guide/default-backend.md.
"""

from __future__ import annotations

import re
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


# ------------------------------------------------------------------ the ConfigMap's custom-http-errors and headers


def _like_the_default_http_backend(pod: Any) -> None:
    """The pod answers as ingress-nginx's default backend with custom error pages does (images/custom-error-pages;
    docs/user-guide/custom-errors.md): a request without X-Code gets 404; one with X-Code gets the echo (the page,
    here with what the pod received)."""
    from aiohttp import web

    async def not_found_unless_asked(request: Any) -> Any:
        return None if "X-Code" in request.headers else web.Response(status=404, text="default backend - 404")

    pod.fault = not_found_unless_asked


def _received(response: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in response.json()["headers"]}


async def test_unmatched_requests_answered_404_are_sent_back_with_x_code(make_proxy, make_pods):
    """docs/user-guide/custom-errors.md and nginx.tmpl: with custom-http-errors in the ConfigMap, the http-level
    `proxy_intercept_errors on` and `error_page 404 = @custom_upstream-default-backend_404` cover the default
    server "_" too, so the default backend's own 404 for an unknown host is sent back to it at "/" with X-Code,
    X-Format (Accept), X-Original-URI and X-Request-ID; the default server's location names no Ingress, so
    X-Namespace, X-Ingress-Name, X-Service-Name and X-Service-Port are empty and nginx sends none of them. A known
    host's unmatched path (its root location, its oldest Ingress's) sends its Ingress's names. A status not listed
    passes as the default backend answered it."""
    from test_nginx_configmap import serve as serve_with_configmap

    app, fallback = await make_pods("app", "fallback")
    _like_the_default_http_backend(fallback)
    proxy = await make_proxy(configmap="ingress-nginx/controller", default_backend_service="default/fallback")
    serve_with_configmap(proxy, [app, fallback], {"custom-http-errors": "404,503"},
                         ingress("app", "app.bar.com", ("/app", "Prefix", "app")))

    response = await request(proxy.port, "/missing?q=1", host=HOST, headers=[("Accept", "application/json")])
    assert (response.status, response.json()["pod"], response.json()["path"]) == (200, "fallback", "/")
    received = _received(response)
    assert (received["x-code"], received["x-format"], received["x-original-uri"]) == ("404", "application/json",
                                                                                      "/missing?q=1")
    assert received["x-request-id"] == response.header("X-Request-ID")
    assert not {"x-namespace", "x-ingress-name", "x-service-name", "x-service-port"} & set(received)

    no_host = await request(proxy.port, "/", host="")
    assert (no_host.status, _received(no_host)["x-code"]) == (200, "404")

    known = await request(proxy.port, "/elsewhere", host="app.bar.com")
    received = _received(known)
    assert (known.status, received["x-code"], received["x-namespace"], received["x-ingress-name"]) == (
        200, "404", "default", "app")

    # The matched path is the app's as before; a status not listed is the default backend's own answer.
    assert (await request(proxy.port, "/app", host="app.bar.com")).json()["pod"] == "app"
    fallback.fail_with(500)
    failed = await request(proxy.port, "/missing", host=HOST)
    assert (failed.status, failed.body) == (500, b"fallback failing")


async def test_without_custom_http_errors_the_default_backends_404_is_the_answer(make_proxy, make_pods):
    """nginx.tmpl: no custom-http-errors, no `error_page`: the client gets the default backend's 404 as it is
    (default_backend.go "should return 404 sending requests when only a default backend is running")."""
    from test_nginx_configmap import serve as serve_with_configmap

    (fallback,) = await make_pods("fallback")
    _like_the_default_http_backend(fallback)
    proxy = await make_proxy(configmap="ingress-nginx/controller", default_backend_service="default/fallback")
    serve_with_configmap(proxy, [fallback], {})
    response = await request(proxy.port, "/missing", host=HOST)
    assert (response.status, response.body) == (404, b"default backend - 404")


async def test_proxy_set_headers_reach_the_default_backend(make_proxy, make_pods):
    """configmap.md "proxy-set-headers" with nginx.tmpl: `$all.ProxySetHeaders` are set in every location, the
    default server's root location (--default-backend-service) included: unknown hosts and host-less requests
    bring them to the default backend, replacing the client's field of that name."""
    from test_nginx_configmap import serve as serve_with_configmap

    app, fallback = await make_pods("app", "fallback")
    proxy = await make_proxy(configmap="ingress-nginx/controller", default_backend_service="default/fallback")
    headers_map = {("ingress-nginx", "custom-headers"): {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "custom-headers", "namespace": "ingress-nginx"},
        "data": {"X-Using-Nginx-Controller": "true"}}}
    serve_with_configmap(proxy, [app, fallback], {"proxy-set-headers": "ingress-nginx/custom-headers"},
                         ingress("app", "app.bar.com", ("/app", "Prefix", "app")), config_maps=headers_map)
    for host in (HOST, "", "app.bar.com"):
        response = await request(proxy.port, "/x", host=host, headers=[("X-Using-Nginx-Controller", "client")])
        assert (response.status, response.json()["pod"]) == (200, "fallback"), host
        assert _received(response)["x-using-nginx-controller"] == "true", host


async def test_a_traced_requests_error_page_request_carries_its_traceparent(make_proxy, make_pods):
    """The request for a custom error page goes on with the trace context of the request it answers: the
    proxy's traceparent (one, well formed, unsampled at ratio 0; no collector is needed for that)."""
    from test_nginx_configmap import serve as serve_with_configmap

    app, fallback = await make_pods("app", "fallback")
    _like_the_default_http_backend(fallback)
    proxy = await make_proxy(configmap="ingress-nginx/controller", default_backend_service="default/fallback",
                             otlp_endpoint="http://127.0.0.1:9", trace_sample_ratio=0.0)
    serve_with_configmap(proxy, [app, fallback], {"custom-http-errors": "503"},
                         ingress("app", "app.bar.com", ("/app", "Prefix", "app")))
    app.fail_with(503)
    response = await request(proxy.port, "/app", host="app.bar.com")
    assert response.json()["pod"] == "fallback"
    traceparents = [value for name, value in response.json()["headers"] if name.lower() == "traceparent"]
    assert _received(response)["x-code"] == "503" and len(traceparents) == 1
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", traceparents[0])
