"""Fixtures for upstream tests: TCP listeners cleaned up after each test; both event loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop

from tcp_listener import Listener


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Upstream tests run on the standard loop and on uvloop (the production loop)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
async def make_listener() -> AsyncIterator[Callable[..., Awaitable[Listener]]]:
    listeners: list[Listener] = []

    async def factory(host: str = "127.0.0.2") -> Listener:
        listener = await Listener(host).start()
        listeners.append(listener)
        return listener

    yield factory
    for listener in listeners:
        await listener.stop()
