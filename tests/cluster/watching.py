"""The watch alone, started for a test: real watcher, cache and client against the API double (the `start` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer
from proxy.kube.cache import ObjectCache
from proxy.kube.client import Backoff
from proxy.kube.watch import DEFAULT_PAGE_SIZE, run_cluster_source
from proxy.kube.watch_status import WatchStatus
from proxy.settings import Settings

WAIT = 10.0
FAST = Backoff(initial=0.01, maximum=0.05)
# The kinds of built-in API groups, always served (the Gateway API's are in test_gateway_watch.py).
INGRESS_KINDS = ("Ingress", "IngressClass", "Service", "EndpointSlice", "Endpoints", "Secret")


@dataclass
class Running:
    cache: ObjectCache
    status: WatchStatus
    task: asyncio.Task


Start = Callable[..., Awaitable[Running]]


async def eventually(predicate: Callable[[], object], what: str = "condition") -> None:
    """Poll with a deadline (never sleep as synchronisation)."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None




@pytest.fixture
async def start(kube_api: KubeApiServer, api_client: ApiClient) -> AsyncIterator[Start]:
    tasks: list[asyncio.Task] = []

    async def start_source(settings: Settings = Settings(), *, kinds: tuple[str, ...] = INGRESS_KINDS,
                           timeout_seconds: int = 30, wait: bool = True, cache: ObjectCache | None = None,
                           page_size: int = DEFAULT_PAGE_SIZE, discovery_interval: float | None = None) -> Running:
        cache = cache if cache is not None else ObjectCache(kinds=kinds)
        status = WatchStatus.for_kinds(kinds)
        task = asyncio.create_task(run_cluster_source(cache, settings, api_client=api_client, status=status,
                                                      kinds=kinds, timeout_seconds=timeout_seconds, backoff=FAST,
                                                      page_size=page_size,
                                                      **({} if discovery_interval is None
                                                         else {"discovery_interval": discovery_interval})))
        tasks.append(task)
        if wait:
            async with asyncio.timeout(WAIT):
                await status.wait_synced()
            served = [k for k in status.kinds.values() if k.served]  # (a kind whose CRD is missing is not)
            await eventually(lambda: kube_api.open_watches == len(served), "every served kind watched")
        return Running(cache, status, task)

    yield start_source
    for task in tasks:
        assert not task.done(), f"the watch ended on its own: {task}"
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await eventually(lambda: kube_api.open_watches == 0, "watches closed after cancel")
