from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from kubeapi import KubeApiServer

from .rbac import undeclared
from .watching import start  # noqa: F401  (the fixture)


@pytest.fixture
async def kube_api() -> AsyncIterator[KubeApiServer]:
    # Pods in these tests are loopback addresses: allowed explicitly (the real API server rejects them).
    async with KubeApiServer(allow_loopback=True, bookmark_interval=3600) as server:
        yield server
    # Whatever the code under test asked the API server must be declared, so deploy/ RBAC grants it.
    assert not undeclared(server.requests), f"API calls missing from API_CALLS tables: {undeclared(server.requests)}"


@pytest.fixture
async def api_client(kube_api: KubeApiServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(Configuration(host=kube_api.url)) as client:
        yield client
