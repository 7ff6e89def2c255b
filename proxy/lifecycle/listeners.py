"""This process's own listeners as the `Serving` part: a ProxyServer on the controller's tables."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from proxy.lifecycle.process import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from proxy.controller import Controller
    from proxy.runtime import RuntimeHolder
    from proxy.server import ProxyServer

log = logging.getLogger("pyngress")


class Listeners:
    """HTTP and HTTPS listeners, bound once the first routing table is live (never serving a 404 for
    everything while the source is still being read)."""

    def __init__(self, server: ProxyServer, *, holder: RuntimeHolder, controller: Controller) -> None:
        self.server = server
        self.holder = holder
        self.controller = controller
        self.listening = False  # some listener is bound (there is something to drain)
        self.accepting = False  # every listener is bound

    @property
    def http_port(self) -> int:
        return self.server.http_port

    @property
    def https_port(self) -> int:
        return self.server.https_port

    async def until_ready(self) -> str | None:
        await self.holder.wait_for(1, timeout=float("inf"))
        return None

    async def listen(self) -> None:
        await self.server.start()
        self.listening = True
        await start_https(self.server, self.controller)
        self.accepting = True

    def readiness(self) -> str:
        return f"serving generation {self.holder.generation}"

    def not_ready(self) -> str | None:
        """Why /readyz must say 503 although a table is live: a listener is not accepting connections."""
        if not self.accepting:
            return "listeners not bound yet"
        missing = self.server.unbound_ports()
        if missing:
            return f"Gateway listener ports not accepting: {', '.join(map(str, missing))}"
        return None

    async def stop(self, *, grace: float, force: asyncio.Event) -> int:
        if not self.listening:
            return EXIT_OK
        status = await drain(self.server, grace=grace, force=force)
        await self.server.close()  # whatever the grace period could not finish is cut now
        return status


async def start_https(server: ProxyServer, controller: Controller) -> None:
    """The HTTPS listener on the controller's certificate store (None only if building it failed outright)."""
    if controller.tls is not None:
        await server.start_https(controller.tls.server_context(), certificates=controller.tls)
    else:
        log.error("no TLS certificate store: the HTTPS listener is not started")


async def drain(server: ProxyServer, *, grace: float, force: asyncio.Event) -> int:
    """Stop accepting, then give requests in flight `grace` seconds (`force`, a second signal, cuts it short)."""
    server.stop_accepting()
    draining = asyncio.ensure_future(server.drain(grace))
    forced = asyncio.ensure_future(force.wait())
    await asyncio.wait([draining, forced], return_when=asyncio.FIRST_COMPLETED)
    forced.cancel()
    if not draining.done():
        draining.cancel()
        await asyncio.gather(draining, return_exceptions=True)
        return EXIT_FAILED
    if not draining.result():
        log.warning("requests still in flight after the %.1f s grace period were cut", grace)
    return EXIT_OK
