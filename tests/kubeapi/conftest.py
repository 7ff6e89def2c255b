from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from kubeapi import KubeApiServer


@pytest.fixture
async def kube_api() -> AsyncIterator[KubeApiServer]:
    async with KubeApiServer(bookmark_interval=3600) as server:
        yield server


@pytest.fixture
async def api_client(kube_api: KubeApiServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(Configuration(host=kube_api.url)) as client:
        yield client
