"""Fixtures of the end-to-end conformance runs: one pyngress process per mode for the whole module (file mode,
then cluster mode against the API test double), the echo pods, the certificates and a client."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conformance_certs import self_signed
from conformance_client import Client
from conformance_env import CERTIFICATES, Backends, Environment
from conformance_runner import Runner


@pytest.fixture(scope="module")
def certificates():
    return {secret: self_signed(names) for secret, names in CERTIFICATES.items()}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backends() -> AsyncIterator[Backends]:
    pods = await Backends().start()
    yield pods
    await pods.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["file", "cluster"])
async def conformance(request, backends, certificates, tmp_path_factory) -> AsyncIterator[Runner]:
    """A Runner on one mode's process (module-scoped and parametrized: pytest runs every test of one mode,
    then every test of the other)."""
    env = Environment(request.param, tmp_path_factory.mktemp(f"conformance-{request.param}"), backends,
                      certificates)
    client = Client()
    try:
        await env.start()
        yield Runner(env, client)
    finally:
        await client.close()
        await env.close()
