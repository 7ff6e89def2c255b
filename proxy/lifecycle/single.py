"""`pyngress` in one process: the control plane and the listeners side by side."""

from __future__ import annotations

import asyncio

from proxy.lifecycle.application import Application
from proxy.lifecycle.control import ControlPlane
from proxy.lifecycle.listeners import Listeners
from proxy.lifecycle.process import Signals, new_cache
from proxy.settings import Settings


async def serve(settings: Settings) -> int:
    """Run the proxy until a signal; returns the exit status."""
    from proxy.admin import AdminServer
    from proxy.controller import Controller
    from proxy.metrics import Metrics
    from proxy.runtime import RuntimeHolder
    from proxy.server import ProxyServer

    signals = Signals()
    signals.install(asyncio.get_running_loop())
    holder = RuntimeHolder()
    cache = new_cache(settings)
    controller = Controller(cache=cache, settings=settings, holder=holder)
    server = ProxyServer(settings=settings, holder=holder, freeze_gc=True)
    metrics = Metrics(holder=holder, controller=controller, server=server)
    serving = Listeners(server, holder=holder, controller=controller)
    admin = AdminServer(settings=settings, holder=holder, metrics=metrics, controller=controller,
                        not_ready=serving.not_ready, tracer=server.tracer)
    control = ControlPlane(admin=admin, cache=cache, settings=settings, holder=holder, controller=controller,
                           metrics=metrics)
    return await Application(settings=settings, signals=signals, controller=controller, control=control,
                             serving=serving,
                             announce=control.announce).run()
