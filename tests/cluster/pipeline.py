"""The cluster-mode pipeline for tests: emulator -> watch -> ObjectCache -> real Controller -> RuntimeHolder."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from kubernetes_asyncio.client import ApiClient

from proxy.controller import Controller
from proxy.kube.cache import ObjectCache
from proxy.kube.client import Backoff
from proxy.kube.watch import run_cluster_source
from proxy.kube.watch_status import WatchStatus
from proxy.runtime import RuntimeHolder
from proxy.settings import Settings

FAST = Backoff(initial=0.01, maximum=0.05)


@dataclass
class Pipeline:
    settings: Settings
    cache: ObjectCache
    holder: RuntimeHolder
    controller: Controller
    status: WatchStatus
    tasks: list[asyncio.Task] = field(default_factory=list)

    def spawn(self, coro: object, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self.tasks.append(task)
        return task

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.controller.close()


async def start_pipeline(api_client: ApiClient, settings: Settings, *, cache: ObjectCache | None = None,
                         **options: object) -> Pipeline:
    """`options` go to run_cluster_source (discovery_interval, ...)."""
    cache = cache if cache is not None else ObjectCache()
    holder = RuntimeHolder()
    status = WatchStatus.for_kinds(("Ingress", "IngressClass", "Service", "EndpointSlice", "Endpoints", "Secret"))
    pipeline = Pipeline(settings, cache, holder, Controller(cache=cache, settings=settings, holder=holder), status)
    pipeline.spawn(run_cluster_source(cache, settings, api_client=api_client, status=status,
                                      **{"backoff": FAST, **options}), "watch")
    pipeline.spawn(pipeline.controller.run(), "controller")
    async with asyncio.timeout(10):
        await holder.wait_for(1, 10)
    return pipeline
