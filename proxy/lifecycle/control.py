"""The control plane: the admin port, the object source and the stdout lines.

A single process and the control process of `--workers N` have one; a worker has none (its
cache is fed by the control process). The two stdout lines carry the real ports when 0
(ephemeral) was asked for, for tests and scripts to read: `pyngress admin=127.0.0.1:10254` as
soon as the admin port is bound (before the first configuration: /readyz answers 503 until
then), and `pyngress listening http=127.0.0.1:8080 admin=127.0.0.1:10254` once traffic is served.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.admin import AdminServer
    from proxy.controller import Controller
    from proxy.kube.cache import ObjectCache
    from proxy.lifecycle.application import Serving
    from proxy.lifecycle.cluster import ClusterMode
    from proxy.metrics import Metrics
    from proxy.runtime import RuntimeHolder
    from proxy.settings import Settings

log = logging.getLogger("pyngress")


class ControlPlane:
    """The admin server, `cache` fed from the manifests or the cluster, and the lines on stdout."""

    def __init__(self, *, admin: AdminServer, cache: ObjectCache, settings: Settings, holder: RuntimeHolder,
                 controller: Controller, metrics: Metrics) -> None:
        self.admin = admin
        self.cache = cache
        self.settings = settings
        self.holder = holder
        self.controller = controller
        self.metrics = metrics
        self.cluster: ClusterMode | None = None

    async def start_admin(self) -> None:
        """Bind the admin port and say so at once, so probes can be watched before the first configuration."""
        await self.admin.start()
        print(f"pyngress admin={self.settings.bind}:{self.admin.port}", flush=True)

    async def start_source(self, tasks: list[asyncio.Task[None]]) -> str | None:
        """Feed the cache from the manifests (loaded once before returning) or the cluster; its tasks are
        appended to `tasks`. Returns the usage error when neither can be read (a bad manifest path, no
        cluster configuration)."""
        from proxy.kube.client import ClusterConfigError
        from proxy.kube.files import ManifestError, ManifestSource
        from proxy.lifecycle.cluster import cluster_mode

        try:
            if self.settings.manifests:
                source = ManifestSource(self.cache, self.settings.manifests)
                await source.load()
                tasks.append(asyncio.create_task(source.run(), name="manifests"))
                return None
            self.cluster = await cluster_mode(self.cache, self.settings, self.holder, controller=self.controller,
                                              metrics=self.metrics)
        except (ManifestError, ClusterConfigError) as error:
            return str(error)
        tasks.extend(asyncio.create_task(coro, name=name) for name, coro in self.cluster.coroutines)
        return None

    def announce(self, serving: Serving) -> None:
        """The stdout line scripts and tests wait for, once `serving` serves."""
        print(listening_line(self.settings, http_port=serving.http_port, https_port=serving.https_port,
                             admin_port=self.admin.port), flush=True)
        log.info("ready: %s", serving.readiness())

    def withdraw(self) -> None:
        """/readyz answers 503 from now on: load balancers stop sending before the listeners close."""
        self.admin.shutting_down = True

    async def close(self) -> None:
        if self.cluster is not None:
            await self.cluster.close()
        await self.admin.stop()


def listening_line(settings: Settings, *, http_port: int, https_port: int, admin_port: int) -> str:
    """The stdout line scripts and tests wait for (https left out when that listener is not up)."""
    host = settings.bind
    parts = [f"http={host}:{http_port}"]
    if https_port:
        parts.append(f"https={host}:{https_port}")
    parts.append(f"admin={host}:{admin_port}")
    return "pyngress listening " + " ".join(parts)

