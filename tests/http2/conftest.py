"""HTTP/2 client tests run against the real proxy with the server tests' harness (tests/server/): its proxies,
echo pods and raw backends, on asyncio's loop and on uvloop."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

_SERVER = Path(__file__).resolve().parents[1] / "server"
sys.path.insert(0, str(_SERVER))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_spec = importlib.util.spec_from_file_location("server_fixtures", _SERVER / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

# The server tests' fixtures and loop choice, shared rather than copied.
make_proxy = _fixtures.make_proxy
make_pods = _fixtures.make_pods
make_backend = _fixtures.make_backend
make_h2_pod = _fixtures.make_h2_pod
grpc_pod = _fixtures.grpc_pod
pytest_asyncio_loop_factories = _fixtures.pytest_asyncio_loop_factories

from h2_client import H2Client  # noqa: E402


@pytest.fixture
async def h2_clients() -> AsyncIterator[Callable[..., Awaitable[H2Client]]]:
    """Connect HTTP/2 clients (H2Client.connect's arguments); all are closed after the test."""
    clients: list[H2Client] = []

    async def connect(port: int, **kwargs: object) -> H2Client:
        client = await H2Client.connect(port, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()
