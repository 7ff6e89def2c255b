"""The control process of `--workers N`: the control plane, with a WorkerPool serving.

Its admin server, metrics and controller are imported where used (aiohttp's server,
prometheus_client): a worker process never imports this module.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from proxy.lifecycle.application import Application
from proxy.lifecycle.control import ControlPlane
from proxy.lifecycle.process import Signals, new_cache
from proxy.settings import Settings
from proxy.workers.collector import WorkersCollector
from proxy.workers.pool import WorkerPool

if TYPE_CHECKING:
    from proxy.admin import AdminServer


def control_admin(pool: WorkerPool, **kwargs: Any) -> AdminServer:
    """The admin server of the control process: /readyz is 200 only when every worker serves a configuration."""
    from proxy.admin import AdminServer

    def not_ready() -> str | None:
        ready = pool.ready
        return f"{ready} of {pool.count} workers serving" if ready < pool.count else None

    return AdminServer(not_ready=not_ready, **kwargs)


async def serve_workers(settings: Settings) -> int:
    """Run the control process and its workers until a signal; returns the exit status."""
    from proxy.controller import Controller
    from proxy.metrics import Metrics
    from proxy.runtime import RuntimeHolder
    from proxy.tls import generate_default_certificate

    signals = Signals()
    signals.install(asyncio.get_running_loop())
    holder = RuntimeHolder()
    cache = new_cache(settings)
    # One self-signed default certificate for the pod: every worker serves the same one.
    generated = await asyncio.to_thread(generate_default_certificate)
    controller = Controller(cache=cache, settings=settings, holder=holder, generated=generated)
    pool = WorkerPool(settings=settings, cache=cache, generated=generated, health=controller.health)
    metrics = Metrics(holder=holder, controller=controller, process=False)
    metrics.gather = pool.gather
    metrics.registry.register(WorkersCollector(pool))
    admin = control_admin(pool, settings=settings, holder=holder, metrics=metrics, controller=controller)
    control = ControlPlane(admin=admin, cache=cache, settings=settings, holder=holder, controller=controller,
                           metrics=metrics)
    return await Application(settings=settings, signals=signals, controller=controller, control=control,
                             serving=pool, announce=control.announce).run()
