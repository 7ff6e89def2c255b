"""The running configuration: one reference, swapped whole; requests read it once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.routing.model import Config
    from proxy.tls.store import CertStoreHolder
    from proxy.upstream.cluster import Upstream


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a request needs: the route table and the live upstream for each cluster key."""

    config: Config
    upstreams: Mapping[str, Upstream]
    generation: int
    # The certificates of each Gateway HTTPS port other than the Ingress HTTPS listener's (local port ->
    # CertStoreHolder), for the listeners the server opens for them.
    certificates: Mapping[int, CertStoreHolder] = field(default_factory=dict)


class RuntimeHolder:
    """Holds the current Runtime and lets callers wait until a generation is live."""

    __slots__ = ("current", "_changed", "_subscribers")

    def __init__(self) -> None:
        self.current: Runtime | None = None
        self._changed = asyncio.Event()
        self._subscribers: list[Callable[[Runtime], None]] = []

    def subscribe(self, callback: Callable[[Runtime], None]) -> None:
        """Call ``callback(runtime)`` on each publish, before any request can see the new runtime."""
        self._subscribers.append(callback)

    @property
    def generation(self) -> int:
        return self.current.generation if self.current is not None else 0

    def publish(self, runtime: Runtime) -> None:
        for callback in self._subscribers:
            callback(runtime)
        self.current = runtime
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, generation: int, timeout: float) -> Runtime:
        """Wait until `generation` (or a later one) is live."""
        async with asyncio.timeout(timeout):
            while self.current is None or self.current.generation < generation:
                await self._changed.wait()
        return self.current
