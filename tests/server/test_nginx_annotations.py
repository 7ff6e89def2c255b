"""ingress-nginx annotations end to end: Ingress objects → the real builder → the real proxy → echo pods.

Each test names the ingress-nginx e2e test (test/e2e/annotations/*.go) whose behaviour it
reproduces: status codes, Location headers, the path and headers the pod receives, which backend
answers. Weighted splits are checked with bounds far out in the binomial tail (no flaky counts).
"""

from __future__ import annotations

from typing import Any

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.model import Config
from server_harness import Pod, request

STAMP = "2024-01-01T00:00:00Z"
PREFIX = "nginx.ingress.kubernetes.io/"


def ingress(name: str, host: str, *paths: tuple[str, str, str], created: str = STAMP,
            **annotations: str) -> dict[str, Any]:
    """An Ingress of our class; `paths` are (path, pathType, service); annotations under nginx's prefix."""
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                     "annotations": {PREFIX + key.replace("_", "-"): value for key, value in annotations.items()}},
        "spec": {"ingressClassName": "pyngress", "rules": [{"host": host, "http": {"paths": [
            {"path": path, "pathType": kind, "backend": {"service": {"name": service, "port": {"number": 80}}}}
            for path, kind, service in paths]}}]},
    }


def serve(proxy: Any, pods: list[Pod], *ingresses: dict[str, Any], secrets: dict[Any, Any] | None = None,
          config_maps: dict[Any, Any] | None = None) -> Config:
    """Build the table from the Ingresses and a Service + EndpointSlice per pod (and `secrets`, `config_maps`,
    by (namespace, name)), and publish it."""
    services = {("default", pod.name): {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": pod.name, "namespace": "default"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": pod.port}]}} for pod in pods}
    slices = {("default", pod.name): {f"{pod.name}-1": {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{pod.name}-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": pod.name}},
        "endpoints": [{"addresses": [pod.host], "conditions": {"ready": True}}],
        "ports": [{"name": "", "port": pod.port, "protocol": "TCP"}]}} for pod in pods}
    snap = Snapshot(ingresses={("default", obj["metadata"]["name"]): obj for obj in ingresses},
                    services=services, endpoint_slices=slices, secrets=secrets or {}, config_maps=config_maps or {})
    config = build(snap, proxy.settings)
    proxy.publish_config(config, list(config.clusters.values()))
    return config


async def test_rewrite_target_with_groups_reaches_the_pod_with_its_query(make_proxy, make_pods):
    """rewrite.go "should allow for custom rewrite parameters" and "should use ~* location modifier if
    regex annotation is present"; xforwardedprefix.go "should set the X-Forwarded-Prefix"."""
    main, echo = await make_pods("main", "echo")
    proxy = await make_proxy()
    serve(proxy, [main, echo],
          ingress("foo", "rewrite.bar.com", ("/foo", "Prefix", "main")),
          ingress("regex", "rewrite.bar.com", ("/foo/bar/(.+)", "ImplementationSpecific", "echo"),
                  use_regex="true", rewrite_target="/new/backend/$1", x_forwarded_prefix="/foo"))
    response = await request(proxy.port, "/foo/bar/baz?x=1", host="rewrite.bar.com")
    seen = response.json()
    assert (response.status, seen["pod"], seen["path"]) == (200, "echo", "/new/backend/baz?x=1")
    assert ["X-Forwarded-Prefix", "/foo"] in seen["headers"]
    response = await request(proxy.port, "/FOO", host="rewrite.bar.com")
    assert (response.status, response.json()["pod"], response.json()["path"]) == (200, "main", "/FOO")


async def test_app_root_and_permanent_redirects_answer_without_the_pod(make_proxy, make_pods):
    """approot.go "should redirect to /foo"; redirect.go "should respond with a standard redirect code"
    and "should respond with a custom redirect code"."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo],
          ingress("approot", "approot.bar.com", ("/", "Prefix", "echo"), app_root="/foo"),
          ingress("redirect", "redirect", ("/something", "Prefix", "echo"),
                  permanent_redirect="http://redirect.example.com"),
          ingress("custom", "custom", ("/something", "Prefix", "echo"),
                  permanent_redirect="http://redirect.example.com", permanent_redirect_code="302"))
    response = await request(proxy.port, "/", host="approot.bar.com")
    assert (response.status, response.header("Location")) == (302, "http://approot.bar.com/foo")
    response = await request(proxy.port, "/something", host="redirect")
    assert (response.status, response.header("Location")) == (301, "http://redirect.example.com")
    response = await request(proxy.port, "/something", host="custom")
    assert (response.status, response.header("Location")) == (302, "http://redirect.example.com")
    assert echo.requests == 0
    response = await request(proxy.port, "/foo", host="approot.bar.com")
    assert (response.status, response.header("X-Pod")) == (200, "echo")


async def test_canary_by_header_cookie_and_weight(make_proxy, make_pods):
    """canary.go "when canaried by header with no value", "when canaried by cookie" and "should route
    requests split between mainline and canary if canary weight is 50"."""
    main, canary = await make_pods("main", "canary")
    proxy = await make_proxy()
    serve(proxy, [main, canary],
          ingress("main", "foo", ("/", "Prefix", "main")),
          ingress("canary", "foo", ("/", "Prefix", "canary"), created="2024-02-01T00:00:00Z", canary="true",
                  canary_by_header="CanaryByHeader", canary_by_cookie="CanaryByCookie", canary_weight="50"))
    cases = [([("CanaryByHeader", "always")], "canary"),
             ([("CanaryByHeader", "never"), ("Cookie", "CanaryByCookie=always")], "main"),  # the header decides first
             ([("Cookie", "CanaryByCookie=always")], "canary"),
             ([("Cookie", "x=1; CanaryByCookie=never")], "main")]
    for headers, expected in cases:
        for _ in range(5):
            response = await request(proxy.port, "/info", host="foo", headers=headers)
            assert response.header("X-Pod") == expected, headers
    seen = {"main": 0, "canary": 0}
    for _ in range(200):
        seen[(await request(proxy.port, "/info", host="foo")).header("X-Pod")] += 1
    assert seen["main"] > 60 and seen["canary"] > 60, seen  # 50:50 of 200 (P(< 61) ~ 1e-8)
    services = {tuple(labels)[4] for labels, _ in proxy.server.traffic.snapshot()["routes"]}
    assert {"main", "canary"} <= services  # canary traffic is counted under the canary's Service


async def test_canary_weight_zero_and_a_canary_without_main(make_proxy, make_pods):
    """canary.go "should route requests only to mainline if canary weight is 0" and "should return 404
    status for requests to the canary if no matching ingress is found"."""
    main, canary = await make_pods("main", "canary")
    proxy = await make_proxy()
    serve(proxy, [main, canary],
          ingress("main", "foo", ("/", "Prefix", "main")),
          ingress("canary", "foo", ("/", "Prefix", "canary"), created="2024-02-01T00:00:00Z", canary="true",
                  canary_weight="0"),
          ingress("lonely", "bar", ("/", "Prefix", "canary"), canary="true", canary_weight="100"))
    assert {(await request(proxy.port, "/", host="foo")).header("X-Pod") for _ in range(20)} == {"main"}
    assert (await request(proxy.port, "/", host="bar")).status == 404
    assert canary.requests == 0


async def test_bad_values_and_snippets_leave_everything_else_serving(make_proxy, make_pods):
    """Bad input: a regex that does not compile, a non-numeric weight, a bad redirect code and a snippet
    each cost only their own feature (with a warning naming the Ingress and the annotation)."""
    main, canary = await make_pods("main", "canary")
    proxy = await make_proxy()
    config = serve(proxy, [main, canary],
                   ingress("main", "foo", ("/", "Prefix", "main"), configuration_snippet="more_set_headers 'A: b';"),
                   ingress("canary", "foo", ("/", "Prefix", "canary"), created="2024-02-01T00:00:00Z", canary="true",
                           canary_weight="lots", canary_by_header="H", canary_by_header_pattern="[][**da?$&*"),
                   ingress("redirect", "redirect", ("/", "Prefix", "main"),
                           permanent_redirect="https://example.com", permanent_redirect_code="x"),
                   ingress("broken", "broken", ("/a(b", "ImplementationSpecific", "main"), use_regex="true"))
    assert (await request(proxy.port, "/", host="foo")).header("X-Pod") == "main"
    assert (await request(proxy.port, "/", host="foo", headers=[("H", "DoCanary")])).header("X-Pod") == "main"
    response = await request(proxy.port, "/", host="redirect")
    assert (response.status, response.header("X-Pod")) == (200, "main")
    assert (await request(proxy.port, "/a(b", host="broken")).status == 200
    messages = {(w.name, w.message.split(":")[0].split(" (")[0]) for w in config.warnings}
    assert {("main", f"annotation {PREFIX}configuration-snippet is refused"),
            ("canary", f"annotation {PREFIX}canary-weight"),
            ("canary", f"annotation {PREFIX}canary-by-header-pattern"),
            ("redirect", f"annotation {PREFIX}permanent-redirect-code"),
            ("broken", "path '/a(b' is not a valid regular expression")} <= messages, config.warnings
