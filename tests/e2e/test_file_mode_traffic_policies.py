"""BackendTrafficPolicy end to end: manifests in a folder, the real `pyngress` process, echo pods that fail on
cue. Each section of the policy is read from YAML, compiled by the builder and changes what clients see:
retries and outlier ejection hide a failing pod, fault injection aborts, a local rate limit answers 429, and
cookie affinity holds a client on its pod until that pod leaves the Service."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import aiohttp

from e2e_harness import DEADLINE, INGRESS_CLASS, eventually, ingress, scrape, service


def policy(name: str, target: dict[str, str], **spec: Any) -> dict:
    return {"apiVersion": "pyngress.dev/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"targetRefs": [target], **spec}}


def on_service(name: str) -> dict[str, str]:
    return {"group": "", "kind": "Service", "name": name}


def on_ingress(name: str) -> dict[str, str]:
    return {"group": "networking.k8s.io", "kind": "Ingress", "name": name}


def route_entry(routes: dict, host: str) -> dict:
    """The one route of `host` as /debug/routes describes it (with its cluster's endpoint states)."""
    [entry] = routes["hosts"][host]
    return entry


async def test_retries_and_ejection_hide_a_failing_pod(echo_pods, manifests, pyngress):
    bad, good, other = await echo_pods.replicas(("web-1", "127.0.0.2"), ("web-2", "127.0.0.3"),
                                                ("web-3", "127.0.0.4"))
    bad.status = 503
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[bad, good, other]))
    manifests.write("ingress.yaml", ingress("app", host="web.example.test", paths=[("/", "Prefix", "web", 80)]))
    manifests.write("policy.yaml", policy(
        "web-resilience", on_service("web"),
        retry={"numRetries": 2, "retryOn": {"triggers": ["5xx"]}},
        healthCheck={"passive": {"consecutive5XxErrors": 2, "baseEjectionTime": "60s",
                                 "maxEjectionPercent": 50}}))
    proc = await pyngress(manifests.path)

    statuses = [(await proc.request("/", host="web.example.test"))[0] for _ in range(12)]
    assert statuses == [200] * 12  # every 503 of web-1 was retried on another pod
    assert bad.requests == 2  # then it was ejected: no more requests reach it
    assert good.requests + other.requests == 12

    status, routes = await proc.admin_get("/debug/routes")
    assert status == 200
    states = {s["endpoint"]: s for s in route_entry(routes, "web.example.test")["endpointStates"]}
    assert states[f"127.0.0.2:{bad.port}"]["ejectedSeconds"] > 0
    assert not states[f"127.0.0.2:{bad.port}"]["balanced"]
    assert states[f"127.0.0.3:{good.port}"]["balanced"]
    assert await scrape(proc, "pyngress_upstream_ejections_total", service="web") == 1
    assert await scrape(proc, "pyngress_upstream_retry_attempts_total", service="web", reason="status") == 2


async def test_fault_injection_and_a_local_rate_limit_per_ingress(echo_pods, manifests, pyngress):
    [pod] = await echo_pods.replicas(("api-1", "127.0.0.2"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("api.yaml", service("api", pods=[pod]))
    manifests.write("ingresses.yaml", [
        ingress("chaos", host="chaos.example.test", paths=[("/", "Prefix", "api", 80)]),
        ingress("limited", host="limited.example.test", paths=[("/", "Prefix", "api", 80)])])
    manifests.write("policies.yaml", [
        policy("chaos", on_ingress("chaos"),
               faultInjection={"abort": {"httpStatus": 418, "percentage": 100}, "onlyWithHeader": "x-chaos"}),
        policy("limited", on_ingress("limited"),
               rateLimit={"type": "Local", "local": {"rules": [{"limit": {"requests": 3, "unit": "Minute"}}]}})])
    proc = await pyngress(manifests.path)

    # The fault only for requests carrying the header; the other Ingress to the same Service is untouched.
    assert (await proc.request("/", host="chaos.example.test", headers={"x-chaos": "1"}))[0] == 418
    assert (await proc.request("/", host="chaos.example.test"))[0] == 200
    assert (await proc.request("/", host="limited.example.test", headers={"x-chaos": "1"}))[0] == 200
    # A bucket of 3 per minute for the route (one was spent just above): the 4th request is refused.
    statuses = [(await proc.request("/", host="limited.example.test"))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert (await proc.request("/", host="chaos.example.test"))[0] == 200  # a route of its own

    assert await scrape(proc, "pyngress_fault_injections_total", ingress="chaos", action="abort") == 1
    assert await scrape(proc, "pyngress_rate_limited_requests_total", ingress="limited") == 1
    [line] = [entry for entry in await proc.access_log(7) if entry["status"] == 429]
    assert line["reason"] and line["ingress"] == "limited"


async def test_cookie_affinity_holds_a_client_until_its_pod_leaves(echo_pods, manifests, pyngress):
    pods = await echo_pods.replicas(("cart-1", "127.0.0.2"), ("cart-2", "127.0.0.3"), ("cart-3", "127.0.0.4"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("cart.yaml", service("cart", pods=pods))
    manifests.write("ingress.yaml", ingress("cart", host="cart.example.test", paths=[("/", "Prefix", "cart", 80)]))
    manifests.write("policy.yaml", policy("sticky", on_service("cart"),
                                          sessionPersistence={"sessionName": "cart-pod", "type": "Cookie"}))
    proc = await pyngress(manifests.path)

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async def get(cookie: str | None = None) -> tuple[str, str | None]:
            headers = {"Host": "cart.example.test"}
            if cookie:
                headers["Cookie"] = f"cart-pod={cookie}"
            async with session.get(proc.http + "/", headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=DEADLINE)) as response:
                assert response.status == 200
                body = await response.json()
                set_cookie = response.headers.get("Set-Cookie")
                if set_cookie is None:
                    return body["pod"], None
                assert re.search(r"(?i)\bpath=/", set_cookie), set_cookie
                return body["pod"], SimpleCookie(set_cookie)["cart-pod"].value

        first, cookie = await get()
        assert cookie, "the first answer sets the affinity cookie"
        for _ in range(6):
            assert await get(cookie) == (first, None)  # same pod, no new cookie

        manifests.write("cart.yaml", service("cart", pods=[p for p in pods if p.name != first]))

        async def updated() -> bool:  # an endpoint-only update: no new generation, new endpoints
            _, routes = await proc.admin_get("/debug/routes")
            return len(route_entry(routes, "cart.example.test")["endpoints"]) == 2

        await eventually(updated)
        moved, new_cookie = await get(cookie)
        assert moved != first and new_cookie and new_cookie != cookie  # a new pod, and the cookie rewritten
        for _ in range(4):
            assert await get(new_cookie) == (moved, None)
