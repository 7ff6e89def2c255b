"""Fixtures that start real proxies, pods and raw backends and always clean them up."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop

from h2_pods import GrpcPod, H2Pod
from proxy.settings import Settings
from server_harness import Handler, Pod, Proxy, RawBackend


@pytest.fixture
async def make_proxy() -> AsyncIterator[Callable[..., Awaitable[Proxy]]]:
    proxies: list[Proxy] = []

    async def factory(**overrides: object) -> Proxy:
        overrides.setdefault("access_log", False)  # tests that want it turn it on
        # The TLS suites on one transport (asyncio, or native; auto, the default, is what runs without it).
        if os.environ.get("PYNGRESS_TEST_TLS_TRANSPORT"):
            overrides.setdefault("tls_transport", os.environ["PYNGRESS_TEST_TLS_TRANSPORT"])
        # The CLI's process freezes the GC at publishes (tests/server/test_gc_freeze.py); tests leave it off.
        freeze_gc = bool(overrides.pop("freeze_gc", False))
        settings = Settings(bind="127.0.0.1", http_port=0, **overrides)  # type: ignore[arg-type]
        proxy = Proxy(settings, freeze_gc=freeze_gc)
        await proxy.server.start()
        proxies.append(proxy)
        return proxy

    yield factory
    for proxy in proxies:
        await proxy.close()


@pytest.fixture
async def make_pods() -> AsyncIterator[Callable[..., Awaitable[list[Pod]]]]:
    pods: list[Pod] = []

    async def factory(*names: str, first: int = 2) -> list[Pod]:
        started = []
        for index, name in enumerate(names):
            pod = await Pod(name, f"127.0.0.{first + index}").start()
            pods.append(pod)
            started.append(pod)
        return started

    yield factory
    for pod in pods:
        pod.release.set()
        await pod.stop()


@pytest.fixture
async def make_backend() -> AsyncIterator[Callable[..., Awaitable[RawBackend]]]:
    backends: list[RawBackend] = []

    async def factory(handler: Handler, host: str = "127.0.0.9") -> RawBackend:
        backend = await RawBackend(host, handler).start()
        backends.append(backend)
        return backend

    yield factory
    for backend in backends:
        await backend.stop()


@pytest.fixture
async def make_h2_pod() -> AsyncIterator[Callable[..., Awaitable[H2Pod]]]:
    """Start h2c (or, given a context, h2 over TLS) echo pods (tests/server/h2_pods.py)."""
    pods: list[H2Pod] = []

    async def factory(host: str = "127.0.0.6", **options: Any) -> H2Pod:
        pod = await H2Pod(host, **options).start()
        pods.append(pod)
        return pod

    yield factory
    for pod in pods:
        await pod.stop()


@pytest.fixture
def grpc_pod() -> Any:
    """A real grpcio server (tests/server/h2_pods.py GrpcPod)."""
    pod = GrpcPod().start()
    yield pod
    pod.stop()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every server test runs on the standard loop and on uvloop (the production loop)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
