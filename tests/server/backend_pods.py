"""Echo pods that speak HTTPS (certificates made with `cryptography`), and pods whose /healthz answer a test
sets, for the traffic policy tests. Certificates and server contexts come from tests/upstream/backend_servers.py
(loaded by path: the two test folders are not packages)."""

from __future__ import annotations

import importlib.util
import ssl
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from server_harness import Pod

if "backend_servers" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "backend_servers", Path(__file__).resolve().parents[1] / "upstream" / "backend_servers.py")
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["backend_servers"] = _module
    _spec.loader.exec_module(_module)
backend_servers: Any = sys.modules["backend_servers"]
Pki = backend_servers.Pki
NOW = backend_servers.NOW
leaf_with = backend_servers.leaf_with
root_pem = backend_servers.root_pem
server_context = backend_servers.server_context


class HealthPod(Pod):
    """An echo pod (HTTPS when given a context) whose GET /healthz answers `health` (a status code)."""

    def __init__(self, name: str, host: str, *, context: ssl.SSLContext | None = None) -> None:
        super().__init__(name, host)
        self.context = context
        self.health = 200
        self.health_checks: list[int] = []  # the status of each /healthz answered
        self.client_subjects: list[str] = []

    async def start(self) -> HealthPod:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0, ssl_context=self.context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def healthz(self, request: web.Request) -> web.Response:
        self.health_checks.append(self.health)
        return web.Response(status=self.health, text="health")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        peer = ssl_object.getpeercert() if ssl_object is not None else None
        if peer:
            self.client_subjects.append(dict(item[0] for item in peer["subject"])["commonName"])
        return await super().handle(request)
