"""Prometheus metrics, read at scrape time from counters the server and controller keep anyway.

Nothing here runs per request: the proxy bumps plain integer attributes and these collectors
turn them into samples when /metrics is scraped. Per-route series follow the same rule: their
counters (proxy.stats.RouteStats) are bound to routes when a table is published and dropped with
the route; a scrape renders a snapshot of them, added up over the worker processes when there
are several (`Metrics.gather`).
"""

from __future__ import annotations

import platform
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from proxy import __version__, extensions
from proxy.stats import (
    DURATION_BUCKETS,
    MIRROR_RESULTS,
    SPANS_EXPORT_FAILED,
    SPANS_QUEUE_FULL,
    Snapshot,
    TrafficStats,
    merge,
)
from proxy.upstream.cluster import LIMITS, RETRY_REASONS

if TYPE_CHECKING:
    from proxy.controller import Controller
    from proxy.runtime import RuntimeHolder
    from proxy.upstream.health import HealthChecker

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServerCounters(Protocol):
    """What the collector reads from the proxy server (plain attributes, see proxy.server.ProxyServer)."""

    active_connections: int
    total_connections: int
    total_requests: int
    traffic: TrafficStats


ROUTE_LABELS = ["namespace", "ingress", "host", "path", "service", "kind", "method", "status"]
POLICY_ROUTE_LABELS = ["namespace", "ingress", "host", "path", "service", "kind"]
CLUSTER_LABELS = ["namespace", "service", "port"]


class TrafficCollector(Collector):
    """Per-route request series and per-listener connections, from the latest (merged) traffic snapshot."""

    def __init__(self, latest: Callable[[], Snapshot | None]) -> None:
        self.latest = latest

    def collect(self) -> Iterator[Metric]:
        snapshot = self.latest() or {"routes": [], "listeners": {}}
        requests = CounterMetricFamily("pyngress_requests", "Requests answered, by route, method and status "
                                       "(route labels empty: no route matched).", labels=ROUTE_LABELS)
        received = CounterMetricFamily("pyngress_request_size_bytes", "Bytes received from clients "
                                       "(request line, header and body).", labels=ROUTE_LABELS)
        sent = CounterMetricFamily("pyngress_response_size_bytes", "Bytes sent to clients.", labels=ROUTE_LABELS)
        retries = CounterMetricFamily("pyngress_upstream_retries", "Extra upstream attempts (connect failures "
                                      "and stale keep-alive connections).", labels=ROUTE_LABELS)
        duration = HistogramMetricFamily("pyngress_request_duration_seconds", "Time from the first byte of a "
                                         "request to the last byte of its response.", labels=ROUTE_LABELS)
        upstream = HistogramMetricFamily("pyngress_upstream_duration_seconds", "Time from sending a request "
                                         "upstream to its response headers.", labels=ROUTE_LABELS)
        bounds = [_bound(b) for b in DURATION_BUCKETS] + ["+Inf"]
        for labels, entries in snapshot["routes"]:
            for entry in entries:
                (method, status, count, size_in, size_out, retried, total, buckets, up_count, up_total,
                 up_buckets) = entry[:11]
                values = [*labels, method, str(status)]
                requests.add_metric(values, count)
                received.add_metric(values, size_in)
                sent.add_metric(values, size_out)
                retries.add_metric(values, retried)
                exemplars = entry[11] if len(entry) > 11 else None
                if exemplars is None:
                    duration.add_metric(values, list(zip(bounds, _cumulative(buckets))), total)
                else:
                    duration.add_metric(values, _with_exemplars(bounds, _cumulative(buckets), exemplars), total)
                if up_count:
                    upstream.add_metric(values, list(zip(bounds, _cumulative(up_buckets))), up_total)
        yield from (requests, duration, upstream, received, sent, retries)

        active = GaugeMetricFamily("pyngress_active_connections", "Open client connections.", labels=["listener"])
        total = CounterMetricFamily("pyngress_connections", "Client connections accepted.", labels=["listener"])
        for scheme, (open_now, accepted) in sorted(snapshot["listeners"].items()):
            active.add_metric([scheme], open_now)
            total.add_metric([scheme], accepted)
        yield active
        yield total
        rejected = snapshot.get("proxy_protocol_rejected")
        if rejected:  # only with --proxy-protocol
            refused = CounterMetricFamily("pyngress_proxy_protocol_rejected", "Connections closed for a missing, "
                                          "malformed or late PROXY protocol header.", labels=["listener"])
            for scheme, count in sorted(rejected.items()):
                refused.add_metric([scheme], count)
            yield refused
        handshakes = snapshot.get("handshakes") or {"completed": 0, "failures": {}}
        yield CounterMetricFamily("pyngress_ssl_handshakes", "TLS handshakes completed on the HTTPS listener.",
                                  value=handshakes["completed"])
        failures = CounterMetricFamily("pyngress_ssl_handshake_failures", "TLS handshakes that failed, by reason "
                                       "(timeout, plain_http, not_tls, unsupported_protocol, no_shared_cipher, "
                                       "unknown_ca, bad_certificate, client_closed, other).", labels=["reason"])
        for reason, count in sorted(handshakes["failures"].items()):
            failures.add_metric([reason], count)
        yield failures
        mirrors = CounterMetricFamily("pyngress_mirror_requests", "Request copies for mirror backends (Gateway API "
                                      "RequestMirror): sent; answered or failed (no answer in time, refused); "
                                      "dropped unsent (too many in flight, a body over the copy limit).",
                                      labels=["result"])
        counts = snapshot.get("mirrors") or {}
        for result in MIRROR_RESULTS:
            mirrors.add_metric([result], counts.get(result, 0))
        yield mirrors
        backend = snapshot.get("upstream_tls") or {"completed": 0, "failures": {}}
        yield CounterMetricFamily("pyngress_upstream_tls_handshakes", "TLS handshakes completed with pods (clusters "
                                  "whose policy has TLS to the backends).", value=backend["completed"])
        backend_failures = CounterMetricFamily(
            "pyngress_upstream_tls_handshake_failures", "TLS handshakes with pods that failed (each a connect "
            "failure: 502 or the next endpoint), by reason (unknown_ca, expired, not_yet_valid, name_mismatch, "
            "bad_certificate, refused, not_tls, closed, timeout, config, other).", labels=["reason"])
        for reason, count in sorted(backend["failures"].items()):
            backend_failures.add_metric([reason], count)
        yield backend_failures
        yield from _policy_metrics(snapshot)
        yield from _tracing_metrics(snapshot)
        yield from _passthrough_metrics(snapshot)


def _with_exemplars(bounds: list[str], counts: list[int], exemplars: list[Any]) -> list[Any]:
    """Histogram buckets with the trace of a sampled request where there is one (OpenMetrics exemplars: only
    the OpenMetrics exposition shows them)."""
    buckets: list[Any] = []
    for bound, count, exemplar in zip(bounds, counts, exemplars):
        if exemplar is None:
            buckets.append((bound, count))
        else:
            trace_id, span_id, value, when = exemplar
            buckets.append((bound, count, Exemplar({"trace_id": trace_id, "span_id": span_id}, value, when)))
    return buckets


def _tracing_metrics(snapshot: Snapshot) -> Iterator[Metric]:
    """The span exporter's counts (only with --otlp-endpoint)."""
    tracing = snapshot.get("tracing")
    if not tracing:
        return
    yield CounterMetricFamily("pyngress_trace_spans_exported", "Spans the OTLP collector accepted.",
                              value=tracing["exported"])
    dropped = CounterMetricFamily("pyngress_trace_spans_dropped", "Spans of sampled requests that were never "
                                  "exported, by reason (queue-full: the export queue was full, the collector "
                                  "being slow or down; export-failed: the collector refused or never got their "
                                  "batch).", labels=["reason"])
    for reason in (SPANS_QUEUE_FULL, SPANS_EXPORT_FAILED):
        dropped.add_metric([reason], tracing["dropped"].get(reason, 0))
    yield dropped


def _passthrough_metrics(snapshot: Snapshot) -> Iterator[Metric]:
    """SSL passthrough (only with --enable-ssl-passthrough): spliced connections and bytes per host."""
    passthrough = snapshot.get("passthrough")
    if not passthrough:
        return
    connections = CounterMetricFamily("pyngress_ssl_passthrough_connections", "TLS connections spliced to a pod "
                                      "undecrypted, by passthrough host (as written in the Ingress or TLSRoute).",
                                      labels=["host"])
    transferred = CounterMetricFamily("pyngress_ssl_passthrough_bytes", "Bytes of spliced TLS connections, by "
                                      "passthrough host and direction (received: from clients; sent: to clients).",
                                      labels=["host", "direction"])
    for host, (count, received, sent) in sorted(passthrough["hosts"].items()):
        connections.add_metric([host], count)
        transferred.add_metric([host, "received"], received)
        transferred.add_metric([host, "sent"], sent)
    yield connections
    yield transferred
    yield GaugeMetricFamily("pyngress_ssl_passthrough_active_connections", "Spliced TLS connections open now.",
                            value=passthrough["active"])
    failures = CounterMetricFamily("pyngress_ssl_passthrough_failures", "Connections closed before a splice, by "
                                   "reason (timeout, malformed, client_closed: no complete ClientHello; no_route: "
                                   "a passthrough-only port and a name none of its TLSRoutes has; no_endpoint, "
                                   "connect_failed: no pod to send it to).", labels=["reason"])
    for reason, count in sorted(passthrough["failures"].items()):
        failures.add_metric([reason], count)
    yield failures


def _policy_metrics(snapshot: Snapshot) -> Iterator[Metric]:
    """Traffic policies: per route (rate limits, faults) and per cluster (ejection, breaker, retries)."""
    limited = CounterMetricFamily("pyngress_rate_limited_requests", "Requests refused by a route's local rate limit "
                                  "(per worker process and replica: N of them allow N times the rate).",
                                  labels=POLICY_ROUTE_LABELS)
    faults = CounterMetricFamily("pyngress_fault_injections", "Requests a route's fault injection delayed or "
                                 "aborted, by action.", labels=[*POLICY_ROUTE_LABELS, "action"])
    for labels, (rate_limited, delayed, aborted) in snapshot.get("route_policy") or ():
        limited.add_metric(labels, rate_limited)
        faults.add_metric([*labels, "delay"], delayed)
        faults.add_metric([*labels, "abort"], aborted)
    yield from (limited, faults)
    ejected = GaugeMetricFamily("pyngress_upstream_ejected_endpoints", "Endpoints ejected by passive health now "
                                "(summed over worker processes, which eject independently).", labels=CLUSTER_LABELS)
    ejections = CounterMetricFamily("pyngress_upstream_ejections", "Endpoint ejections by passive health (outlier "
                                    "detection).", labels=CLUSTER_LABELS)
    overloaded = CounterMetricFamily("pyngress_upstream_overloaded", "Requests (or retries) a circuit breaker "
                                     "refused, by limit.", labels=[*CLUSTER_LABELS, "limit"])
    retries = CounterMetricFamily("pyngress_upstream_retry_attempts", "Retries made under a traffic policy, by "
                                  "reason (connect-failure, reset, timeout, status).",
                                  labels=[*CLUSTER_LABELS, "reason"])
    budget = CounterMetricFamily("pyngress_upstream_retry_budget_exhausted", "Retries not made because the "
                                 "cluster's retry budget was spent.", labels=CLUSTER_LABELS)
    for labels, counts in snapshot.get("clusters") or ():
        ejected.add_metric(labels, counts.get("ejected", 0))
        ejections.add_metric(labels, counts.get("ejections", 0))
        for limit in LIMITS:
            overloaded.add_metric([*labels, limit], counts.get("overloaded", {}).get(limit, 0))
        for reason in RETRY_REASONS:
            retries.add_metric([*labels, reason], counts.get("retries", {}).get(reason, 0))
        budget.add_metric(labels, counts.get("budget_exhausted", 0))
    yield from (ejected, ejections, overloaded, retries, budget)


def _cumulative(counts: list[int]) -> list[int]:
    out = []
    running = 0
    for count in counts:
        running += count
        out.append(running)
    return out


class StateCollector(Collector):
    """Samples the controller, the running configuration and the server when scraped."""

    def __init__(self, *, holder: RuntimeHolder, controller: Controller | None = None,
                 server: ServerCounters | None = None) -> None:
        self.holder = holder
        self.controller = controller
        self.server = server

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("pyngress_build", "pyngress version, Python runtime, and whether the hot path runs "
                                                  "compiled (mode: compiled or pure-python).")
        info.add_metric([], {"version": __version__, "python": platform.python_version(), "mode": extensions.mode()})
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
            if controller.checker is not None:
                yield from _health_metrics(controller.checker)

        runtime = self.holder.current
        routes = clusters = ready = 0
        if runtime is not None:
            routes = (controller.stats.routes if controller is not None
                      else sum(1 for _ in runtime.config.routes()))
            clusters = len(runtime.config.clusters)
            ready = sum(len(upstream.endpoints) for upstream in runtime.upstreams.values())
        yield GaugeMetricFamily(
            "pyngress_config_generation", "Generation of the running configuration (0 before the first).",
            value=runtime.generation if runtime is not None else 0)
        yield GaugeMetricFamily("pyngress_routes", "Routes in the running configuration.", value=routes)
        yield GaugeMetricFamily("pyngress_backends", "Backend clusters (Service ports) in the running configuration.",
                                value=clusters)
        yield GaugeMetricFamily("pyngress_ready_endpoints", "Ready endpoints over all backend clusters.", value=ready)


def _health_metrics(checker: HealthChecker) -> Iterator[Metric]:
    """Active health checks: probe results, and per Service port the endpoints checked and found unhealthy."""
    results = CounterMetricFamily("pyngress_health_checks", "Active health check probes, by result (ok, "
                                  "unexpected_status, timeout, connect_failure, tls_failure, bad_response).",
                                  labels=["result"])
    for result, count in checker.results.items():
        results.add_metric([result], count)
    yield results
    labels = ["namespace", "service", "port"]
    checked = GaugeMetricFamily("pyngress_health_checked_endpoints", "Endpoints under active health checks.",
                                labels=labels)
    unhealthy = GaugeMetricFamily("pyngress_unhealthy_endpoints", "Endpoints failing active health checks now "
                                  "(the balancers skip them).", labels=labels)
    totals: dict[tuple[str, str, str], list[int]] = {}
    for upstream, count, bad in checker.clusters():  # clusters of one Service port under several policies add up
        cluster = upstream.cluster
        total = totals.setdefault((cluster.namespace, cluster.service, cluster.port), [0, 0])
        total[0] += count
        total[1] += bad
    for key, (count, bad) in sorted(totals.items()):
        checked.add_metric(list(key), count)
        unhealthy.add_metric(list(key), bad)
    yield checked
    yield unhealthy


class KindHealth(Protocol):
    """One kind's watch health (see proxy.kube.watch_status.KindStatus); read only."""

    @property
    def kind(self) -> str: ...
    @property
    def synced(self) -> bool: ...
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def errors_total(self) -> int: ...
    @property
    def relists_total(self) -> int: ...
    @property
    def events_total(self) -> int: ...


class WatchHealth(Protocol):
    """Per-kind watch health (see proxy.kube.watch_status.WatchStatus); read only."""

    @property
    def kinds(self) -> Mapping[str, KindHealth]: ...


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...


class WriteCounters(Protocol):
    """A status writer's counters (proxy.kube.status.StatusWriter, proxy.kube.gateway_status.GatewayStatusWriter)."""

    writes_total: int
    errors_total: int


class EventCounters(Protocol):
    """The event recorder's counters (see proxy.kube.events.EventRecorder)."""

    posted_total: int
    errors_total: int
    dropped_total: int


class ClusterCollector(Collector):
    """Cluster mode's health, read when scraped: watch errors and relists per kind, leadership,
    status writes and Events. Which kind fails, and since when, is what an outage alert needs."""

    def __init__(self, *, watch: WatchHealth, elector: Leadership | None = None,
                 status_writer: WriteCounters | None = None, events: EventCounters | None = None,
                 gateway_status_writer: WriteCounters | None = None,
                 policy_status_writer: WriteCounters | None = None) -> None:
        self.watch = watch
        self.elector = elector
        self.status_writer = status_writer
        self.gateway_status_writer = gateway_status_writer
        self.policy_status_writer = policy_status_writer
        self.events = events

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily("pyngress_watch_errors", "Failed LIST or WATCH requests to the API server.",
                                     labels=["kind"])
        failing = GaugeMetricFamily("pyngress_watch_failing", "1 while the watch of this kind cannot reach the API "
                                    "server (the last good configuration keeps serving).", labels=["kind"])
        relists = CounterMetricFamily("pyngress_watch_relists", "LISTs after the first (410 Expired: history lost).",
                                      labels=["kind"])
        events = CounterMetricFamily("pyngress_watch_events", "ADDED, MODIFIED and DELETED watch events applied.",
                                     labels=["kind"])
        synced = GaugeMetricFamily("pyngress_watch_synced", "1 once the first LIST of this kind is in the cache.",
                                   labels=["kind"])
        for kind in list(self.watch.kinds.values()):
            errors.add_metric([kind.kind], kind.errors_total)
            failing.add_metric([kind.kind], 1 if kind.consecutive_failures else 0)
            relists.add_metric([kind.kind], kind.relists_total)
            events.add_metric([kind.kind], kind.events_total)
            synced.add_metric([kind.kind], 1 if kind.synced else 0)
        yield from (errors, failing, relists, events, synced)
        if self.elector is not None:
            yield GaugeMetricFamily("pyngress_leader", "1 while this replica holds the leader Lease (writes status "
                                    "and Events).", value=1 if self.elector.is_leader else 0)
        writers = [(api, writer) for api, writer in (("Ingress", self.status_writer),
                                                     ("Gateway", self.gateway_status_writer),
                                                     ("Policy", self.policy_status_writer)) if writer is not None]
        if writers:
            # kind: Ingress (status.loadBalancer of Ingresses), Gateway (GatewayClass, Gateway, HTTPRoute status) or
            # Policy (BackendTrafficPolicy and BackendTLSPolicy status.ancestors).
            writes = CounterMetricFamily("pyngress_status_writes", "Status updates written, by API.", labels=["kind"])
            failed = CounterMetricFamily("pyngress_status_errors", "Status passes that failed (retried), by API.",
                                         labels=["kind"])
            for api, writer in writers:
                writes.add_metric([api], writer.writes_total)
                failed.add_metric([api], writer.errors_total)
            yield from (writes, failed)
        recorder = self.events
        if recorder is not None:
            yield CounterMetricFamily("pyngress_events_posted", "Warning Events created or counted up.",
                                      value=recorder.posted_total)
            yield CounterMetricFamily("pyngress_events_errors", "Warning Events the API server refused or never got.",
                                      value=recorder.errors_total)
            yield CounterMetricFamily("pyngress_events_dropped", "Warning Events dropped because the queue was full.",
                                      value=recorder.dropped_total)


class TlsCollector(Collector):
    """Expiry of the certificates the HTTPS listener serves, read from the current store at scrape time."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        expiry = GaugeMetricFamily(
            "pyngress_ssl_certificate_expiry_timestamp_seconds",
            "Unix time at which the certificate served for this TLS host expires (host \"\": the default).",
            labels=["host", "secret"])
        tls = self.controller.tls
        if tls is not None:
            store = tls.current
            default = store.default
            default_source = self.controller.settings.default_ssl_certificate
            expiry.add_metric(["", default_source], default.not_after.timestamp())
            sources = self.controller.tls_sources
            for host, cert in sorted(store.certificates.items()):
                namespace, name = sources.get(host, ("", ""))
                secret = default_source if cert is default or not name else f"{namespace}/{name}"
                expiry.add_metric([host, secret], cert.not_after.timestamp())
        yield expiry


def _bound(value: float) -> str:
    return repr(float(value))


class Metrics:
    """The process's own registry (no global state, so tests can build as many as they like).

    Traffic series come from ``server.traffic`` of this process, or, in the control process of
    several workers, from ``gather``: an async callable returning one snapshot per worker, called
    by :meth:`refresh` before each scrape. ``process=False`` leaves out prometheus-client's
    process collector (for a caller that exports CPU and memory summed over its workers instead).
    """

    def __init__(self, *, holder: RuntimeHolder, controller: Controller | None = None,
                 server: ServerCounters | None = None, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
            # python_gc_collections_total{generation}: full collections ("2") are the ones that stall the loop
            # (README, "Garbage collection and latency"); read from gc.get_stats() at scrape time.
            GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.server = server
        self.gather: Callable[[], Awaitable[list[Snapshot]]] | None = None
        self._latest: Snapshot | None = None
        self.state = StateCollector(holder=holder, controller=controller, server=server)
        self.registry.register(self.state)
        self.registry.register(TrafficCollector(self._snapshot))
        if controller is not None:
            self.registry.register(TlsCollector(controller))

    async def refresh(self) -> None:
        """Collect the workers' traffic snapshots (a no-op in a single process: read at render time)."""
        if self.gather is not None:
            self._latest = merge(await self.gather())

    def _snapshot(self) -> Snapshot | None:
        if self.gather is not None:
            return self._latest
        return self.server.traffic.snapshot() if self.server is not None else None

    def add_cluster(self, *, watch: WatchHealth, elector: Leadership | None = None,
                    status_writer: WriteCounters | None = None, events: EventCounters | None = None,
                    gateway_status_writer: WriteCounters | None = None,
                    policy_status_writer: WriteCounters | None = None) -> None:
        """Export cluster mode's health (watch, leadership, status writers, Events) from now on."""
        self.registry.register(ClusterCollector(watch=watch, elector=elector, status_writer=status_writer,
                                                events=events, gateway_status_writer=gateway_status_writer,
                                                policy_status_writer=policy_status_writer))

    def render(self) -> bytes:
        """The Prometheus text exposition of every collector."""
        return generate_latest(self.registry)

    def render_for(self, accept: str) -> tuple[bytes, str]:
        """The exposition a scraper's Accept header asks for, and its content type: OpenMetrics (with the
        request-duration exemplars) for ``application/openmetrics-text``, else the Prometheus text format."""
        encoder, content_type = choose_encoder(accept)
        if encoder is generate_latest:
            return generate_latest(self.registry), CONTENT_TYPE
        return encoder(self.registry), content_type
