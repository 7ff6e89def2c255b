"""The admin port: health and readiness probes, Prometheus metrics, and a dump of the routing table.

aiohttp's high-level server is right here: a handful of requests per second from probes and
scrapers, never the proxy's hot path.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy.debug import describe_gateways, describe_table, explain_match
from proxy.metrics import Metrics
from proxy.runtime import RuntimeHolder
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.controller import Controller
    from proxy.tracing.tracer import Tracer

log = logging.getLogger("pyngress.admin")


class AdminServer:
    """Serves /healthz, /readyz, /metrics, /debug/{routes,match,gateways} and POST /debug/tracing/flush on
    settings.bind:settings.admin_port."""

    def __init__(self, *, settings: Settings, holder: RuntimeHolder, metrics: Metrics,
                 controller: Controller | None = None, not_ready: Callable[[], str | None] | None = None,
                 tracer: Tracer | None = None) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self.controller = controller
        # Another reason for /readyz to say 503 (the control process of workers: "1 of 2 workers serving").
        self.not_ready = not_ready
        # This process's tracer (one process serving; None: no --otlp-endpoint, or the control process of workers,
        # whose workers export their own spans).
        self.tracer = tracer
        # Set on SIGTERM: readiness fails first so load balancers stop sending new traffic.
        self.shutting_down = False
        self.port = 0
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/debug/routes", self._routes)
        app.router.add_get("/debug/match", self._match)
        app.router.add_get("/debug/gateways", self._gateways)
        app.router.add_post("/debug/tracing/flush", self._flush_spans)
        return app

    async def start(self) -> None:
        """Bind the admin listener (port 0 = ephemeral; `.port` then holds the bound port)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.bind, self.settings.admin_port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.shutting_down:
            return web.Response(status=503, text="shutting down")
        if self.holder.current is None:
            return web.Response(status=503, text="no configuration yet")
        reason = self.not_ready() if self.not_ready is not None else None
        if reason:
            return web.Response(status=503, text=reason)
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.metrics.refresh()
        body, content_type = self.metrics.render_for(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _routes(self, request: web.Request) -> web.Response:
        runtime = self.holder.current
        warnings = self.controller.warnings if self.controller is not None else (
            runtime.config.warnings if runtime is not None else ())
        body: dict[str, Any] = {"generation": 0, "checksum": "", "hosts": {}, "wildcards": {}, "anyHost": [],
                                "warnings": [str(w) for w in warnings]}
        if runtime is not None:
            body.update(describe_table(runtime))
        return web.json_response(body, dumps=_dumps)


    async def _match(self, request: web.Request) -> web.Response:
        runtime = self.holder.current
        if runtime is None:
            return web.json_response({"error": "no configuration loaded yet"}, status=503, dumps=_dumps)
        query = request.query
        host = query.get("host", "")
        path = query.get("path", "/") or "/"
        try:
            port = int(query.get("port", "0") or 0)
        except ValueError:
            return web.json_response({"error": "port must be a number"}, status=400, dumps=_dumps)
        headers = [tuple(part.strip() for part in value.split(":", 1)) for value in query.getall("header", [])]
        if any(len(header) != 2 for header in headers):
            return web.json_response({"error": "header must be given as Name:value"}, status=400, dumps=_dumps)
        answer = explain_match(runtime, host, path, port=port, method=query.get("method", "GET"),
                               headers=headers)  # type: ignore[arg-type]
        return web.json_response(answer, dumps=_dumps)

    async def _gateways(self, request: web.Request) -> web.Response:
        runtime = self.holder.current
        if runtime is None:
            return web.json_response({"error": "no configuration loaded yet"}, status=503, dumps=_dumps)
        return web.json_response(describe_gateways(runtime.config), dumps=_dumps)

    async def _flush_spans(self, request: web.Request) -> web.Response:
        """Export the queued spans now and answer when the collector has them (or the POST failed): for tests
        and benchmarks that must not wait for --otlp-export-interval."""
        exporter = self.tracer.exporter if self.tracer is not None else None
        if exporter is None:
            reason = ("no span exporter in this process (no --otlp-endpoint; with --workers each worker exports "
                      "its own spans)" if self.tracer is None else "no listener has started yet")
            return web.json_response({"error": reason}, status=404 if self.tracer is None else 503, dumps=_dumps)
        if not exporter.idle():
            # The POST blocks (bounded by --otlp-timeout): off the loop, as the exporter thread's own.
            await asyncio.get_running_loop().run_in_executor(None, exporter.flush)
        return web.json_response({"exported": exporter.exported, "failed": exporter.failed,
                                  "dropped": exporter.dropped, "pending": len(exporter.pending)}, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2)
