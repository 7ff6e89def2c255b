"""The admin port: health and readiness probes, Prometheus metrics, and a dump of the routing table.

aiohttp's high-level server is right here: a handful of requests per second from probes and
scrapers, never the proxy's hot path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy.metrics import CONTENT_TYPE, Metrics
from proxy.routing.model import PATH_DEFAULT_BACKEND, Route
from proxy.routing.paths import normalize_path
from proxy.routing.table import Choice, normalize_host
from proxy.runtime import Runtime, RuntimeHolder
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.controller import Controller
    from proxy.routing.table import VirtualHost

log = logging.getLogger("pyngress.admin")


class AdminServer:
    """Serves /healthz, /readyz, /metrics and /debug/routes on settings.bind:settings.admin_port."""

    def __init__(self, *, settings: Settings, holder: RuntimeHolder, metrics: Metrics,
                 controller: Controller | None = None, not_ready: Callable[[], str | None] | None = None) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self.controller = controller
        # Another reason for /readyz to say 503 (the control process of workers: "1 of 2 workers serving").
        self.not_ready = not_ready
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
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

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
        host = request.query.get("host", "")
        path = request.query.get("path", "/") or "/"
        return web.json_response(explain_match(runtime, host, path), dumps=_dumps)


def explain_match(runtime: Runtime, host: str, path: str) -> dict[str, Any]:
    """Which route a request for ``host`` and ``path`` takes, and why: the same lookup as the proxy's,
    spelled out (host rule, every candidate path of that rule and whether it matches)."""
    table = runtime.config.table
    host_name = normalize_host(host)
    normalized = normalize_path(path.split("?", 1)[0])
    answer: dict[str, Any] = {"host": host_name, "path": normalized}
    if normalized is None:
        answer["result"] = "400: the path climbs above / or has a broken escape"
        return answer
    if host_name in table.hosts:
        rule, routes = {"kind": "exact", "host": host_name}, table.hosts[host_name]
    else:
        dot = host_name.find(".")
        suffix = host_name[dot + 1 :] if dot > 0 else None
        if suffix is not None and suffix in table.wildcards:
            rule, routes = {"kind": "wildcard", "host": "*." + suffix}, table.wildcards[suffix]
        elif table.any_host is not None:
            rule, routes = {"kind": "any host", "host": ""}, table.any_host
        else:
            answer["hostRule"] = None
            answer["result"] = "404: no rule for this host and no host-less rule or default backend"
            return answer
    answer["hostRule"] = rule
    route = routes.match(normalized)
    candidates: list[dict[str, Any]] = []
    for key, slot in routes.exact.items():
        matches = key == normalized
        candidates.extend({**_describe_route(runtime, candidate), "matches": matches,
                           "why": "equal path" if matches else "Exact needs the path to be equal"}
                          for candidate in _slot_routes(slot))
    for key, slot in sorted(routes.prefix.items(), key=lambda item: -len(item[0])):
        matches = not key or normalized == key or normalized.startswith(key + "/")
        why = (f"{normalized!r} is {key or '/'!r} or below it, element by element" if matches
               else f"{normalized!r} is not below {key or '/'!r} (element-wise)")
        candidates.extend({**_describe_route(runtime, candidate), "matches": matches, "why": why}
                          for candidate in _slot_routes(slot))
    if routes.default is not None:
        candidates.append({**_describe_route(runtime, routes.default), "matches": True,
                           "why": "the default backend takes what no path matches"})
    answer["candidates"] = candidates
    if route is None:
        answer["route"] = None
        answer["result"] = "404: no path of this host rule matches"
        return answer
    chosen = _describe_route(runtime, route)
    if route is routes.default:
        chosen["why"] = "no path matched: default backend"
    elif route.path_type == "Exact":
        chosen["why"] = "Exact match (Exact wins over any Prefix)"
    else:
        chosen["why"] = "the longest matching Prefix path"
    answer["route"] = chosen
    upstream = runtime.upstreams.get(route.cluster)
    if route.ssl_redirect:
        answer["result"] = "308 to https over plain HTTP; over HTTPS: proxied"
    elif upstream is None or not upstream.pools:
        answer["result"] = "503: no ready endpoints"
    else:
        answer["result"] = f"proxied to one of {len(upstream.pools)} endpoints (round robin)"
    return answer


def describe_table(runtime: Runtime) -> dict[str, Any]:
    """The running table as plain data, with every cluster's endpoints as the live upstream sees them now."""
    table = runtime.config.table
    hosts = {host: _describe_host(runtime, routes) for host, routes in sorted(table.hosts.items())}
    wildcards = {"*." + suffix: _describe_host(runtime, routes) for suffix, routes in sorted(table.wildcards.items())}
    any_host = _describe_host(runtime, table.any_host) if table.any_host is not None else []
    return {"generation": runtime.generation, "checksum": runtime.config.checksum,
            "hosts": hosts, "wildcards": wildcards, "anyHost": any_host}


def _describe_host(runtime: Runtime, routes: VirtualHost) -> list[dict[str, Any]]:
    entries = [_describe_route(runtime, r) for slot in routes.exact.values() for r in _slot_routes(slot)]
    entries += sorted((_describe_route(runtime, r) for slot in routes.prefix.values() for r in _slot_routes(slot)),
                      key=lambda e: -len(e["path"]))  # in match order: longest prefix first
    if routes.default is not None:
        entries.append(_describe_route(runtime, routes.default))
    return entries


def _slot_routes(slot: Route | Choice) -> tuple[Route, ...]:
    """The rules sharing one path slot: a Choice holds those with method, header or query conditions."""
    return slot.routes if isinstance(slot, Choice) else (slot,)


def _describe_route(runtime: Runtime, route: Route) -> dict[str, Any]:
    cluster = runtime.config.clusters.get(route.cluster)
    upstream = runtime.upstreams.get(route.cluster)
    endpoints = upstream.endpoints if upstream is not None else (cluster.endpoints if cluster else ())
    entry: dict[str, Any] = {
        "path": route.path,
        "pathType": route.path_type if route.path_type != PATH_DEFAULT_BACKEND else "defaultBackend",
        "ingress": route.name,
        "cluster": route.cluster,
        "backend": f"{cluster.service}:{cluster.port}" if cluster is not None else None,
        "endpoints": [f"[{e.address}]:{e.port}" if ":" in e.address else f"{e.address}:{e.port}" for e in endpoints],
    }
    if cluster is not None and cluster.external_name:
        entry["externalName"] = f"{cluster.external_name}:{cluster.external_port}"
    return entry


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2)
