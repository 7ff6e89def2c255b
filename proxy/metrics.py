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
            for listener, current, accepted in _listeners(server):
                active.add_metric([listener], current)
                total.add_metric([listener], accepted)
            yield active
            yield total
            yield CounterMetricFamily("pyngress_requests", "Requests received from clients.",
                                      value=server.total_requests)


def _listeners(server: ServerCounters) -> list[tuple[str, int, int]]:
    """(listener, active, accepted) per listener; a server with per-listener counts exposes `listener_counters()`."""
    per_listener = getattr(server, "listener_counters", None)
    if per_listener is not None:
        return list(per_listener())
    return [("http", server.active_connections, server.total_connections)]


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
