"""The TLS listener's tests run on asyncio's loop and on uvloop (the production loop): both upgrade
connections with their own `start_tls`, and they differ in details the acceptor depends on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvloop


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
