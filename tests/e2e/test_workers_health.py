"""Active health checks with `--workers 2`: the control process probes, real worker processes apply its verdicts.

The control side is wired here as `proxy.workers.control.serve_workers` wires it (a Controller whose verdicts
the WorkerPool relays); its build runs through a Builder subclass that puts a health check on the Service
"web", standing in for the policy front end (BackendTrafficPolicy), which is written apart. The workers build
their own configuration from the relayed cache, as always, and never probe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal

import aiohttp

from e2e_harness import INGRESS_CLASS, START_TIMEOUT, eventually, ingress, service
from proxy.controller import Controller
from proxy.kube.cache import KINDS, ObjectCache
from proxy.routing.incremental import Builder
from proxy.routing.model import Config
from proxy.routing.policies import ClusterPolicy, HealthCheck
from proxy.runtime import RuntimeHolder
from proxy.settings import Settings
from proxy.workers.pool import WorkerPool

HOST = "app.example.test"
CHECK = HealthCheck(path=b"/healthz", interval=0.05, timeout=1.0, healthy_threshold=2, unhealthy_threshold=2)


class HealthCheckedWeb(Builder):
    """The real build, with CHECK on the clusters of the Service "web"."""

    def build(self, snapshot, settings) -> Config:
        config = super().build(snapshot, settings)
        clusters = {key: dataclasses.replace(c, policy=ClusterPolicy(health_check=CHECK)) if c.service == "web"
                    else c for key, c in config.clusters.items()}
        return dataclasses.replace(config, clusters=clusters)


async def pod_for(url: str) -> str | int:
    """The pod answering one request on a fresh connection (the kernel spreads those over the workers)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            async with session.get(url, headers={"Host": HOST}, timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status != 200:
                    return response.status
                return (await response.json())["pod"]
        except (TimeoutError, OSError, aiohttp.ClientError) as error:
            return type(error).__name__


async def answers(url: str, count: int) -> list[str | int]:
    return [await pod_for(url) for _ in range(count)]


async def test_workers_skip_the_pod_the_control_process_finds_unhealthy(echo_pods):
    web1, web2 = await echo_pods.replicas(("web-1", "127.0.0.2"), ("web-2", "127.0.0.3"))
    cache = ObjectCache()
    objects = [INGRESS_CLASS, *service("web", pods=[web1, web2]),
               ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)])]
    for kind in KINDS:
        cache.replace(kind, [o for o in objects if o["kind"] == kind])
        cache.mark_synced(kind)
    settings = Settings(bind="127.0.0.1", http_port=0, https_port=0, workers=2, access_log=False,
                        log_level="warning", shutdown_grace_period=5)
    holder = RuntimeHolder()
    controller = Controller(cache=cache, settings=settings, holder=holder)
    controller._builder = HealthCheckedWeb()
    pool = WorkerPool(settings=settings, cache=cache, health=controller.health)
    building = asyncio.create_task(controller.run())
    pool.start()
    try:
        async with asyncio.timeout(START_TIMEOUT):
            await pool.wait_listening()
            await holder.wait_for(1, timeout=START_TIMEOUT)
        url = f"http://127.0.0.1:{pool.http_port}/"
        await eventually(lambda: web1.health_checks >= 2 and web2.health_checks >= 2)

        async def both_serve() -> bool:
            return set(await answers(url, 30)) == {"web-1", "web-2"}

        await eventually(both_serve)

        web1.health = 503

        async def only_web2() -> bool:
            return set(await answers(url, 30)) == {"web-2"}

        await eventually(only_web2)
        assert not controller.health.healthy("default/web:80", controller.upstreams["default/web:80"].endpoints[0])
        await eventually(only_web2)  # and it stays out, on every worker

        # A worker started after the verdict gets it with the cache.
        victim = pool.workers[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            worker = pool.workers.get(0)
            return worker is not None and worker.pid != victim and worker.listening and worker.generation >= 1

        await eventually(replaced, timeout=START_TIMEOUT)
        assert set(await answers(url, 30)) == {"web-2"}

        web1.health = 200
        await eventually(both_serve)
    finally:
        status = await pool.stop(grace=5, force=asyncio.Event())
        building.cancel()
        await asyncio.gather(building, return_exceptions=True)
        controller.close()
    assert status == 0
