"""Controller: real cache, real build(), real Upstreams; only the clock of the debounce is ours to bound."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from proxy.controller import Controller, DurationHistogram
from proxy.kube.cache import KINDS, ObjectCache
from proxy.routing.model import Endpoint
from proxy.routing.policies import LEAST_REQUEST, ClusterPolicy, Ejection, LoadBalancer
from proxy.runtime import RuntimeHolder
from proxy.settings import Settings

DEADLINE = 10.0


def service(name: str, *, ns: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def endpoint_slice(service_name: str, *ips: str, ns: str = "default", rv: str = "1") -> dict:
    return {"metadata": {"name": f"{service_name}-x", "namespace": ns, "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def ingress(name: str, *, host: str, service_name: str, path: str = "/", ns: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "pyngress", "rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": service_name, "port": {"number": 80}}}}]}}]}}


async def eventually(predicate, *, timeout: float = DEADLINE):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
async def running():
    """(cache, holder, controller) with the controller's loop running; the cache is filled but not yet synced."""
    started: list[tuple[Controller, asyncio.Task]] = []

    async def start(settings: Settings | None = None, *, synced: bool = True):
        cache = ObjectCache()
        holder = RuntimeHolder()
        cache.replace("Service", [service("web"), service("api")])
        cache.replace("EndpointSlice", [endpoint_slice("web", "10.0.0.1", "10.0.0.2"),
                                        endpoint_slice("api", "10.0.1.1")])
        cache.replace("Ingress", [ingress("web", host="web.example.com", service_name="web"),
                                  ingress("api", host="api.example.com", service_name="api")])
        controller = Controller(cache=cache, settings=settings or Settings(debounce=0.01, debounce_max=0.05),
                                holder=holder)
        task = asyncio.create_task(controller.run())
        started.append((controller, task))
        if synced:
            for kind in KINDS:
                cache.mark_synced(kind)
            await holder.wait_for(1, timeout=DEADLINE)
        return cache, holder, controller

    yield start
    for controller, task in started:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        controller.close()


async def test_nothing_is_built_before_the_cache_is_synced(running):
    cache, holder, controller = await running(synced=False)
    for kind in KINDS[:-1]:
        cache.mark_synced(kind)
    cache.apply("Service", "ADDED", service("more"))
    await asyncio.sleep(0.2)  # longer than debounce_max: a build would have happened by now
    assert holder.current is None and controller.stats.published == 0
    cache.mark_synced(KINDS[-1])
    runtime = await holder.wait_for(1, timeout=DEADLINE)
    assert runtime.generation == 1
    assert runtime.config.table.match("web.example.com", "/x").cluster == "default/web:80"


async def test_first_generation_has_routes_and_live_upstreams(running):
    cache, holder, controller = await running()
    runtime = holder.current
    assert set(runtime.upstreams) == {"default/web:80", "default/api:80"}
    assert runtime.upstreams["default/web:80"].endpoints == (Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080))
    assert controller.stats.routes == 2 and controller.stats.clusters == 2
    assert controller.stats.durations.count == 1 and controller.stats.last_success > 0


async def test_a_burst_of_changes_is_one_build(running):
    cache, holder, controller = await running()
    for i in range(50):
        cache.apply("Ingress", "ADDED", ingress(f"extra-{i}", host=f"h{i}.example.com", service_name="web"))
    runtime = await holder.wait_for(2, timeout=DEADLINE)
    assert runtime.config.table.match("h49.example.com", "/").ingress == "extra-49"
    assert controller.stats.published == 2


async def test_debounce_has_a_ceiling():
    """Changes keep the build waiting `debounce` each, never more than `debounce_max` in total."""
    cache = ObjectCache()
    holder = RuntimeHolder()
    for kind in KINDS:
        cache.mark_synced(kind)
    controller = Controller(cache=cache, settings=Settings(debounce=60.0, debounce_max=0.05), holder=holder)
    task = asyncio.create_task(controller.run())
    try:
        await holder.wait_for(1, timeout=DEADLINE)  # would take 60 s without the ceiling
        cache.apply("Service", "ADDED", service("web"))
        cache.apply("Ingress", "ADDED", ingress("web", host="web.example.com", service_name="web"))
        runtime = await holder.wait_for(2, timeout=DEADLINE)
        assert runtime.config.table.match("web.example.com", "/") is not None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        controller.close()


async def test_equal_build_is_not_published(running):
    cache, holder, controller = await running()
    first = holder.current
    cache.apply("Service", "ADDED", service("unused"))  # a Service no Ingress names: same routing
    await eventually(lambda: controller.stats.unchanged == 1)
    assert holder.current is first and controller.stats.published == 1


async def test_endpoint_changes_update_upstreams_without_a_rebuild(running):
    cache, holder, controller = await running()
    first = holder.current
    web = first.upstreams["default/web:80"]
    cache.apply("EndpointSlice", "MODIFIED", endpoint_slice("web", "10.0.0.3", rv="2"))
    await eventually(lambda: web.endpoints == (Endpoint("10.0.0.3", 8080),))
    assert holder.current is first  # no new generation, no route rebuild
    assert controller.stats.durations.count == 1
    assert controller.stats.endpoint_updates == 1
    assert first.upstreams["default/api:80"].endpoints == (Endpoint("10.0.1.1", 8080),)

    # all endpoints gone: the upstream is empty (the proxy answers 503), routes stay
    cache.apply("EndpointSlice", "DELETED", endpoint_slice("web"))
    await eventually(lambda: web.endpoints == ())
    assert holder.current is first


async def test_upstreams_are_kept_updated_and_closed_across_generations(running):
    cache, holder, controller = await running()
    first = holder.current
    web, api = first.upstreams["default/web:80"], first.upstreams["default/api:80"]
    # one build that removes the api Ingress and changes web's endpoints at the same time
    cache.apply("Ingress", "DELETED", ingress("api", host="api.example.com", service_name="api"))
    cache.apply("EndpointSlice", "MODIFIED", endpoint_slice("web", "10.0.0.9", rv="2"))
    second = await holder.wait_for(2, timeout=DEADLINE)
    assert set(second.upstreams) == {"default/web:80"}
    assert second.upstreams["default/web:80"] is web  # same live object: warm pools survive
    assert web.endpoints == (Endpoint("10.0.0.9", 8080),)
    assert api.closed and not web.closed
    assert set(first.upstreams) == {"default/web:80", "default/api:80"}  # the old runtime is untouched

    # the cluster comes back: a new Upstream
    cache.apply("Ingress", "ADDED", ingress("api", host="api.example.com", service_name="api"))
    third = await holder.wait_for(3, timeout=DEADLINE)
    assert third.upstreams["default/api:80"] is not api
    assert third.upstreams["default/api:80"].endpoints == (Endpoint("10.0.1.1", 8080),)


async def test_each_warning_is_logged_once(running, caplog):
    caplog.set_level(logging.WARNING, logger="pyngress.controller")
    cache, holder, controller = await running()
    cache.apply("Ingress", "ADDED", ingress("broken", host="b.example.com", service_name="missing"))
    await holder.wait_for(2, timeout=DEADLINE)
    warned = [r for r in caplog.records if "missing" in r.getMessage()]
    assert len(warned) == 1
    assert controller.warnings and any("missing" in str(w) for w in controller.warnings)

    cache.apply("Ingress", "ADDED", ingress("more", host="m.example.com", service_name="web"))
    await holder.wait_for(3, timeout=DEADLINE)
    assert len([r for r in caplog.records if "missing" in r.getMessage()]) == 1

    # fixed, then broken again: logged again (the routing stays equal, so count builds, not generations)
    builds = controller.stats.durations.count
    cache.apply("Service", "ADDED", service("missing"))
    await eventually(lambda: controller.stats.durations.count == builds + 1)
    assert not any("missing" in str(w) for w in controller.warnings)
    cache.apply("Service", "DELETED", service("missing"))
    await eventually(lambda: controller.stats.durations.count == builds + 2)
    assert len([r for r in caplog.records if "missing" in r.getMessage()]) == 2


async def test_generation_log_line(running, caplog):
    caplog.set_level(logging.INFO, logger="pyngress.controller")
    await running()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("configuration generation 1:")]
    assert len(lines) == 1
    assert "2 routes, 2 clusters, 0 warnings, built in" in lines[0]


def test_duration_histogram_buckets():
    histogram = DurationHistogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(0.1, 2), (1.0, 3)]
    assert histogram.count == 4 and histogram.sum == pytest.approx(3.65)


async def test_endpoint_changes_keep_a_clusters_policy(running):
    """A Service port under a traffic policy keeps its policy (and the Upstream its balancer and health state)
    when only its endpoints move. (The cluster is given its policy by hand here; the BackendTrafficPolicy front
    end will build such clusters.)"""
    cache, holder, controller = await running()
    key = "default/web:80"
    policy = ClusterPolicy(load_balancer=LoadBalancer(kind=LEAST_REQUEST), ejection=Ejection())
    web = holder.current.upstreams[key]
    under_policy = dataclasses.replace(controller._clusters[key], policy=policy)
    controller._clusters[key] = under_policy
    web.update(under_policy)
    balancer = web.balancer
    cache.apply("EndpointSlice", "MODIFIED", endpoint_slice("web", "10.0.0.1", "10.0.0.5", rv="2"))
    await eventually(lambda: web.endpoints == (Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.5", 8080)))
    assert web.policy == policy and web.balancer is balancer and web.cluster.key == key
    assert controller._clusters[key].policy == policy
