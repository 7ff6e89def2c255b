"""Prometheus metrics, read at scrape time from counters the server and controller keep anyway.

Nothing here runs per request: the proxy bumps plain integer attributes and this collector
turns them into samples when /metrics is scraped. Per-route series (a later addition) will
follow the same rule: children bound when a route is built, label sets removed with the route,
registered as one more collector on `Metrics.registry`.
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Iterator, Protocol

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from proxy import __version__

if TYPE_CHECKING:
    from proxy.controller import Controller
    from proxy.runtime import RuntimeHolder

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServerCounters(Protocol):
    """What the collector reads from the proxy server (plain attributes, see proxy.server.ProxyServer)."""

    active_connections: int
    total_connections: int
    total_requests: int


class StateCollector(Collector):
    """Samples the controller, the running configuration and the server when scraped."""

    def __init__(self, *, holder: RuntimeHolder, controller: Controller | None = None,
                 server: ServerCounters | None = None) -> None:
        self.holder = holder
        self.controller = controller
        self.server = server

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("pyngress_build", "pyngress version and Python runtime.")
        info.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield info

        controller = self.controller
        if controller is not None:
            stats = controller.stats
            rebuilds = CounterMetricFamily(
                "pyngress_config_rebuilds", "Configuration builds, by result (published, unchanged, error).",
                labels=["result"])
            rebuilds.add_metric(["published"], stats.published)
            rebuilds.add_metric(["unchanged"], stats.unchanged)
            rebuilds.add_metric(["error"], stats.errors)
            yield rebuilds
            histogram = stats.durations
            buckets = [(_bound(bound), count) for bound, count in histogram.cumulative()]
            buckets.append(("+Inf", histogram.count))
            yield HistogramMetricFamily(
                "pyngress_config_rebuild_duration_seconds", "Time to build one configuration from the cache.",
                buckets=buckets, sum_value=histogram.sum)
            yield GaugeMetricFamily(
                "pyngress_config_last_reload_success_timestamp_seconds",
                "Unix time of the last configuration build that succeeded.", value=stats.last_success)
            yield CounterMetricFamily(
                "pyngress_endpoint_updates", "Cluster endpoint updates applied without a route rebuild.",
                value=stats.endpoint_updates)
            yield GaugeMetricFamily(
                "pyngress_config_warnings", "Warnings (skipped or broken objects) of the last build.",
                value=stats.warnings)

        runtime = self.holder.current
        routes = clusters = ready = 0
        if runtime is not None:
            routes = controller.stats.routes if controller is not None else sum(1 for _ in runtime.config.table.routes())
            clusters = len(runtime.config.clusters)
            ready = sum(len(upstream.endpoints) for upstream in runtime.upstreams.values())
        yield GaugeMetricFamily(
            "pyngress_config_generation", "Generation of the running configuration (0 before the first).",
            value=runtime.generation if runtime is not None else 0)
        yield GaugeMetricFamily("pyngress_routes", "Routes in the running configuration.", value=routes)
        yield GaugeMetricFamily("pyngress_backends", "Backend clusters (Service ports) in the running configuration.",
                                value=clusters)
        yield GaugeMetricFamily("pyngress_ready_endpoints", "Ready endpoints over all backend clusters.", value=ready)

        server = self.server
        if server is not None:
            active = GaugeMetricFamily("pyngress_active_connections", "Open client connections.", labels=["listener"])
            total = CounterMetricFamily("pyngress_connections", "Client connections accepted.", labels=["listener"])
            open_by_listener, accepted_by_listener = _listeners(server)
            for listener, count in open_by_listener:
                active.add_metric([listener], count)
            for listener, count in accepted_by_listener:
                total.add_metric([listener], count)
            yield active
            yield total
            yield CounterMetricFamily("pyngress_requests", "Requests received from clients.",
                                      value=server.total_requests)


def _listeners(server: ServerCounters) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Open connections per listener scheme, and accepted connections per listener scheme.

    The server keeps one accepted-connections counter over all its listeners. With one listener
    (HTTP only, as the CLI starts today) that is exact; with several, open connections are
    counted per listener at scrape time and the accepted total is labelled listener="all".
    """
    listeners = getattr(server, "listeners", None) or ()
    if len(listeners) <= 1:
        scheme = listeners[0].scheme if listeners else "http"
        return [(scheme, server.active_connections)], [(scheme, server.total_connections)]
    active: dict[str, int] = {listener.scheme: 0 for listener in listeners}
    for connection in list(getattr(server, "connections", ())):
        listener = connection.listener
        if listener is not None:
            active[listener.scheme] = active.get(listener.scheme, 0) + 1
    return list(active.items()), [("all", server.total_connections)]


def _bound(value: float) -> str:
    return repr(float(value))


class Metrics:
    """The process's own registry (no global state, so tests can build as many as they like)."""

    def __init__(self, *, holder: RuntimeHolder, controller: Controller | None = None,
                 server: ServerCounters | None = None) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.state = StateCollector(holder=holder, controller=controller, server=server)
        self.registry.register(self.state)

    def render(self) -> bytes:
        """The Prometheus text exposition of every collector."""
        return generate_latest(self.registry)
