"""The TLS listener's tests run on asyncio's loop and on uvloop (the production loop): both upgrade
connections with their own `start_tls`, and they differ in details the acceptor depends on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvloop


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "native_tls: needs the compiled native TLS transport (deselected without it)")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Cases marked native_tls are deselected where the native transport is unavailable (pure-Python mode): not a
    check skipped on this machine but one that has no subject here. test_tls_native.py's availability test fails
    a compiled run that cannot load it."""
    from native_support import NATIVE_AVAILABLE

    if NATIVE_AVAILABLE:
        return
    kept = [item for item in items if item.get_closest_marker("native_tls") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
