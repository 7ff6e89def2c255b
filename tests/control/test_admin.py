"""Admin port over real HTTP: probes, Prometheus text, and the route dump with live endpoints."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.admin import AdminServer
from proxy.controller import Controller
from proxy.kube.cache import KINDS, ObjectCache
from proxy.metrics import Metrics
from proxy.runtime import RuntimeHolder
from proxy.settings import Settings

DEADLINE = 10.0


def objects() -> dict[str, list[dict]]:
    def svc(name: str) -> dict:
        return {"metadata": {"name": name, "namespace": "shop"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}

    def eps(name: str, *ips: str) -> dict:
        return {"metadata": {"name": name + "-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "endpoints": [{"addresses": [ip]} for ip in ips],
                "ports": [{"name": "http", "port": 8080}]}

    def path(p: str, kind: str, service: str) -> dict:
        return {"path": p, "pathType": kind, "backend": {"service": {"name": service, "port": {"number": 80}}}}

    return {
        "Service": [svc("web"), svc("api")],
        "EndpointSlice": [eps("web", "10.0.0.1", "10.0.0.2"), eps("api", "10.0.1.1")],
        "Ingress": [
            {"metadata": {"name": "shop", "namespace": "shop"},
             "spec": {"ingressClassName": "pyngress", "rules": [
                 {"host": "shop.example.com", "http": {"paths": [
                     path("/", "Prefix", "web"), path("/api", "Prefix", "api"), path("/health", "Exact", "api")]}},
                 {"host": "*.shop.example.com", "http": {"paths": [path("/", "Prefix", "web")]}},
                 {"http": {"paths": [path("/status", "Exact", "api")]}},
             ]}},
            {"metadata": {"name": "broken", "namespace": "shop"},
             "spec": {"ingressClassName": "pyngress", "rules": [
                 {"host": "broken.example.com", "http": {"paths": [path("/", "Prefix", "nowhere")]}}]}},
        ],
    }


@pytest.fixture
async def admin():
    cache = ObjectCache()
    for kind, items in objects().items():
        cache.replace(kind, items)
    holder = RuntimeHolder()
    settings = Settings(bind="127.0.0.1", admin_port=0, debounce=0.005, debounce_max=0.02)
    controller = Controller(cache=cache, settings=settings, holder=holder)
    metrics = Metrics(holder=holder, controller=controller)
    server = AdminServer(settings=settings, holder=holder, metrics=metrics, controller=controller)
    await server.start()
    task = asyncio.create_task(controller.run())
    session = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}",
                                    timeout=aiohttp.ClientTimeout(total=DEADLINE))
    try:
        yield server, cache, holder, session
    finally:
        await session.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        controller.close()
        await server.stop()


def sync(cache: ObjectCache) -> None:
    for kind in KINDS:
        cache.mark_synced(kind)


async def get(session: aiohttp.ClientSession, path: str) -> tuple[int, str, str]:
    async with session.get(path) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_probes_follow_the_lifecycle(admin):
    server, cache, holder, session = admin
    assert server.port > 0
    assert (await get(session, "/healthz"))[::2] == (200, "ok")
    status, _, body = await get(session, "/readyz")
    assert status == 503 and "no configuration" in body

    sync(cache)
    await holder.wait_for(1, timeout=DEADLINE)
    assert (await get(session, "/readyz"))[::2] == (200, "ok")

    server.shutting_down = True
    assert (await get(session, "/readyz"))[0] == 503
    assert (await get(session, "/healthz"))[0] == 200


async def test_metrics_are_prometheus_text(admin):
    server, cache, holder, session = admin
    sync(cache)
    await holder.wait_for(1, timeout=DEADLINE)
    status, content_type, text = await get(session, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    [(info_labels, info_value)] = [(dict(k[1]), v) for k, v in samples.items() if k[0] == "pyngress_build_info"]
    assert info_value == 1 and info_labels["version"] == "0.1.0" and info_labels["python"].startswith("3.")
    assert info_labels["mode"] in ("compiled", "pure-python")
    assert samples[("pyngress_config_rebuilds_total", (("result", "published"),))] == 1
    assert samples[("pyngress_config_rebuilds_total", (("result", "error"),))] == 0
    assert samples[("pyngress_config_rebuild_duration_seconds_count", ())] == 1
    assert samples[("pyngress_config_rebuild_duration_seconds_bucket", (("le", "+Inf"),))] == 1
    assert samples[("pyngress_config_last_reload_success_timestamp_seconds", ())] > 1.7e9
    assert samples[("pyngress_routes", ())] == 6  # 3 + wildcard 1 + host-less 1 + broken 1
    assert samples[("pyngress_backends", ())] == 3
    assert samples[("pyngress_ready_endpoints", ())] == 3  # web 2 + api 1 + nowhere 0
    assert samples[("pyngress_config_generation", ())] == 1
    assert samples[("pyngress_config_warnings", ())] >= 1
    assert ("process_cpu_seconds_total", ()) in samples  # the process collector is on this registry
    assert ("python_gc_collections_total", (("generation", "2"),)) in samples  # and the GC's (full collections)


async def test_debug_routes_show_the_table_and_live_endpoints(admin):
    server, cache, holder, session = admin
    status, _, _ = await get(session, "/debug/routes")
    assert status == 200  # answers before the first table, with an empty one
    sync(cache)
    runtime = await holder.wait_for(1, timeout=DEADLINE)

    async with session.get("/debug/routes") as response:
        body = await response.json()
    assert body["generation"] == 1 and body["checksum"] == runtime.config.checksum
    shop = body["hosts"]["shop.example.com"]
    assert [(r["path"], r["pathType"]) for r in shop] == [("/health", "Exact"), ("/api", "Prefix"), ("/", "Prefix")]
    first = shop[2]
    assert first["ingress"] == "shop/shop" and first["backend"] == "web:80" and first["cluster"] == "shop/web:80"
    assert first["endpoints"] == ["10.0.0.1:8080", "10.0.0.2:8080"]
    assert [r["path"] for r in body["wildcards"]["*.shop.example.com"]] == ["/"]
    assert [(r["path"], r["pathType"]) for r in body["anyHost"]] == [("/status", "Exact")]
    assert body["hosts"]["broken.example.com"][0]["endpoints"] == []
    assert any("nowhere" in w for w in body["warnings"])

    # endpoints move without a rebuild: the dump shows the live upstream, not the built config
    cache.apply("EndpointSlice", "MODIFIED", {
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.7"]}], "ports": [{"name": "http", "port": 8080}]})

    async def endpoints() -> list[str]:
        async with session.get("/debug/routes") as response:
            return (await response.json())["hosts"]["shop.example.com"][2]["endpoints"]

    async with asyncio.timeout(DEADLINE):
        while await endpoints() != ["10.0.0.7:8080"]:
            await asyncio.sleep(0.01)
    assert holder.generation == 1


async def test_unknown_admin_path_is_404(admin):
    _, _, _, session = admin
    assert (await get(session, "/nope"))[0] == 404


async def match(session: aiohttp.ClientSession, host: str, path: str) -> dict:
    async with session.get("/debug/match", params={"host": host, "path": path}) as response:
        assert response.status == 200
        return await response.json()


async def test_debug_match_explains_the_choice(admin):
    server, cache, holder, session = admin
    async with session.get("/debug/match", params={"host": "shop.example.com", "path": "/"}) as response:
        assert response.status == 503  # no table yet
    sync(cache)
    await holder.wait_for(1, timeout=DEADLINE)

    # the longest Prefix wins; the shorter one is a candidate that also matches
    body = await match(session, "Shop.Example.com:8080", "/api/v1/../items")
    assert body["host"] == "shop.example.com" and body["path"] == "/api/items"
    assert body["hostRule"] == {"kind": "exact", "host": "shop.example.com"}
    assert body["route"]["path"] == "/api" and body["route"]["pathType"] == "Prefix"
    assert "longest" in body["route"]["why"] and body["route"]["endpoints"] == ["10.0.1.1:8080"]
    verdicts = {(c["path"], c["pathType"]): c["matches"] for c in body["candidates"]}
    assert verdicts == {("/health", "Exact"): False, ("/api", "Prefix"): True, ("/", "Prefix"): True}
    assert body["result"].startswith("proxied to one of 1 endpoints")

    # Prefix is element-wise: /apix is not below /api
    body = await match(session, "shop.example.com", "/apix")
    assert body["route"]["path"] == "/"
    assert {c["path"]: c["matches"] for c in body["candidates"]}["/api"] is False

    # Exact beats every Prefix
    body = await match(session, "shop.example.com", "/health")
    assert body["route"]["pathType"] == "Exact" and "Exact" in body["route"]["why"]

    # a one-label wildcard, then the host-less rules for any other host
    assert (await match(session, "a.shop.example.com", "/x"))["hostRule"]["kind"] == "wildcard"
    body = await match(session, "other.example.org", "/status")
    assert body["hostRule"]["kind"] == "any host" and body["route"]["path"] == "/status"
    body = await match(session, "other.example.org", "/nothing")
    assert body["route"] is None and body["result"].startswith("404")

    # a service without endpoints, and a path the proxy would refuse
    assert (await match(session, "broken.example.com", "/"))["result"].startswith("503")
    assert (await match(session, "shop.example.com", "/../etc"))["result"].startswith("400")


GATEWAY_OBJECTS = {
    "GatewayClass": [{"metadata": {"name": "pyngress", "generation": 1},
                      "spec": {"controllerName": "pyngress.dev/gateway-controller"}}],
    "Gateway": [{"metadata": {"name": "edge", "namespace": "shop", "generation": 1},
                 "spec": {"gatewayClassName": "pyngress",
                          "listeners": [{"name": "http", "port": 9000, "protocol": "HTTP"}]}}],
    "HTTPRoute": [{"metadata": {"name": "canary", "namespace": "shop", "generation": 2,
                                "creationTimestamp": "2026-01-01T00:00:00Z"},
                   "spec": {"parentRefs": [{"name": "edge"}], "hostnames": ["shop.example.com"], "rules": [
                       {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                     "headers": [{"name": "X-Canary", "value": "yes"}]}],
                        "backendRefs": [{"name": "api", "port": 80}]},
                       {"backendRefs": [{"name": "web", "port": 80, "weight": 3},
                                        {"name": "api", "port": 80, "weight": 1}]}]}}],
}


async def test_debug_pages_explain_gateway_rules(admin):
    server, cache, holder, session = admin
    for kind, items in GATEWAY_OBJECTS.items():
        cache.replace(kind, items)
    sync(cache)
    await holder.wait_for(1, timeout=DEADLINE)
    local = 9000 + server.settings.gateway_port_offset

    async with session.get("/debug/match", params=[("host", "shop.example.com"), ("path", "/x"),
                                                   ("port", str(local)), ("header", "X-Canary: yes")]) as response:
        body = await response.json()
    assert body["listener"] == f"local port {local}: Gateway listeners on port 9000 (HTTP)"
    assert body["route"]["kind"] == "HTTPRoute" and body["route"]["rule"] == 0
    assert body["route"]["conditions"]["headers"] == ["x-canary = yes"]
    assert "conditions hold" in body["route"]["why"]
    async with session.get("/debug/match", params={"host": "shop.example.com", "path": "/x",
                                                   "port": str(local)}) as response:
        body = await response.json()
    assert body["route"]["rule"] == 1 and [b["weight"] for b in body["route"]["backends"]] == [3, 1]
    verdicts = [(c["rule"], c["matches"]) for c in body["candidates"]]
    assert verdicts == [(0, False), (1, True)]  # the header rule's path matches, its conditions do not
    assert body["result"].startswith("proxied to one of 2 weighted backends")

    async with session.get("/debug/gateways") as response:
        status = await response.json()
    edge = status["gateways"]["shop/edge"]
    assert [c["type"] for c in edge["conditions"] if c["status"] == "True"] == ["Accepted", "Programmed"]
    assert edge["listeners"][0]["attachedRoutes"] == 1
    [parent] = status["httpRoutes"]["shop/canary"]
    assert parent["controllerName"] == "pyngress.dev/gateway-controller"
    assert {c["type"]: c["observedGeneration"] for c in parent["conditions"]} == {"Accepted": 2, "ResolvedRefs": 2}

    async with session.get("/debug/routes") as response:
        routes = await response.json()
    assert list(routes["listeners"]) == [str(local)]
    assert routes["listeners"][str(local)]["port"] == 9000
    assert [r["rule"] for r in routes["listeners"][str(local)]["hosts"]["shop.example.com"]] == [0, 1]
