"""The one start/serve/stop sequence of every pyngress process (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from proxy.lifecycle.process import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Signals

if TYPE_CHECKING:
    from proxy.controller import Controller
    from proxy.lifecycle.control import ControlPlane
    from proxy.settings import Settings

log = logging.getLogger("pyngress")


class Serving(Protocol):
    """What serves the traffic: this process's own listeners, or a pool of worker processes."""

    @property
    def http_port(self) -> int: ...

    @property
    def https_port(self) -> int: ...

    async def until_ready(self) -> str | None:
        """Until traffic can be served; the reason when it never will be."""

    async def listen(self) -> None:
        """Bind this process's listeners (not raced against a stop: a half-bound listener would leak)."""

    def readiness(self) -> str:
        """What is served, for the log line once listening."""

    async def stop(self, *, grace: float, force: asyncio.Event) -> int:
        """Stop accepting and give requests in flight `grace` seconds (`force` cuts that short); an exit status."""


class Application:
    """One process's lifecycle, run once: the parts that differ between processes are passed in.

    Start-up: the control plane's admin port (with its stdout line), the controller, the control
    plane's object source (a usage error ends here with status 2), the `background` tasks, then
    `serving` until it is ready, listening, and `announce`. A signal stops it gracefully; a
    background task that ends is a failure (status 1). Stopping: /readyz turns 503, `serving`
    drains, background tasks are cancelled, the controller and the control plane close.
    """

    def __init__(self, *, settings: Settings, signals: Signals, controller: Controller, serving: Serving,
                 announce: Callable[[Serving], None], control: ControlPlane | None = None,
                 background: Sequence[tuple[str, Coroutine[Any, Any, None]]] = ()) -> None:
        self.settings = settings
        self.signals = signals
        self.controller = controller
        self.serving = serving
        self.announce = announce
        self.control = control
        self.background = background
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> int:
        """Start, serve until a signal or a failure, stop; returns the exit status."""
        try:
            status = await self._start_and_serve()
        except OSError as error:  # a port in use, an address not available
            log.error("cannot start: %s", error)
            status = EXIT_FAILED
        finally:
            if self.control is not None:
                self.control.withdraw()
        try:
            stopped = await self.serving.stop(grace=self.settings.shutdown_grace_period, force=self.signals.force)
            status = max(status, stopped)
        finally:
            for task in self.tasks:
                task.cancel()  # the elector releases its Lease on the way out
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.controller.close()
            if self.control is not None:
                await self.control.close()
        if self.control is not None:  # a worker's end is its control process's to tell
            log.info("stopped")
        return status

    async def _start_and_serve(self) -> int:
        if self.control is not None:
            await self.control.start_admin()
        self.tasks.append(asyncio.create_task(self.controller.run(), name="controller"))
        if self.control is not None:
            error = await self.control.start_source(self.tasks)
            if error is not None:
                log.error("%s", error)
                return EXIT_USAGE
        self.tasks.extend(asyncio.create_task(coroutine, name=name) for name, coroutine in self.background)

        ready = asyncio.ensure_future(self.serving.until_ready())
        if not await wait_until(asyncio.shield(ready), self.signals.stop, self.tasks):
            await _cancel(ready)
            return report_failure(self.tasks)
        if self.signals.stop.is_set():
            await _cancel(ready)
            return EXIT_OK  # stopped before serving: nothing to drain
        reason = ready.result()
        if reason is not None:
            log.error("%s", reason)
            return EXIT_FAILED
        await self.serving.listen()
        self.announce(self.serving)
        if not await wait_until(self.signals.stop.wait(), self.signals.stop, self.tasks):
            return report_failure(self.tasks)
        return EXIT_OK


async def wait_until(awaitable: Awaitable[object], stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> bool:
    """Wait for `awaitable` or `stop`; False if a background task ended first (a failure)."""
    waited = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([waited, stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (waited, stopper):
            future.cancel()
        await asyncio.gather(waited, stopper, return_exceptions=True)
    return not any(task.done() for task in tasks)


def report_failure(tasks: list[asyncio.Task[None]]) -> int:
    """Log why background tasks ended (none should before a stop); returns EXIT_FAILED."""
    for task in tasks:
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                log.error("%s failed: %s", task.get_name(), error)
                log.debug("%s failure", task.get_name(), exc_info=error)
            else:
                log.error("%s stopped unexpectedly", task.get_name())
    return EXIT_FAILED


async def _cancel(future: asyncio.Future[Any]) -> None:
    future.cancel()
    await asyncio.gather(future, return_exceptions=True)
