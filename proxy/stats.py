# cython: annotation_typing=False
"""Per-route traffic statistics: plain numbers bumped on the hot path, turned into metrics at scrape time.

Each route of the running table gets one :class:`RouteStats` when the runtime is assembled
(the label values are fixed then), so a request only does a dict lookup by route identity
and a few integer additions; no label resolution, no lock, no metric object per request.
Series of a route survive rebuilds while the route exists (same labels) and disappear with it.
Compiled (stats.pxd), `RouteStats.record` is a C method that record.py calls directly, on C counters and C arrays
of bucket counts, with the bucket found by literal comparisons and the last request's series remembered: about 130
instructions per request under callgrind, from 3,500 with bisect calls, a (method, status) key per request and
Python lists (`python -m bench.instructions --observability`). prometheus_client sees none of it until a scrape.

``TrafficStats.snapshot()`` turns everything into plain data (lists, strings, numbers), the
form in which worker processes hand their counts to the control process, which adds them up
with :func:`merge` before rendering one /metrics for the pod.

Traffic policies add two parts: per route, the requests rate limited and the faults injected
(`RouteStats`); per cluster (namespace, service, port), what its upstream counted: endpoints
ejected now and ejections so far, circuit-breaker rejections by limit, retries by reason, retry
budget exhaustion (`proxy.upstream.cluster.ClusterCounters`). Counts of several clusters with the
same labels (one Service port under different policies) and of several workers are added up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from proxy.upstream import tls as upstream_tls

# ingress-nginx's request-time buckets (seconds): what existing dashboards and SLO rules expect.
DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def bucket(seconds: float) -> int:
    """The index of the first bound of DURATION_BUCKETS that is >= ``seconds`` (bisect_left; 11: +Inf), as
    literal comparisons: compiled (stats.pxd) they are a few C instructions, where a bisect_left call on the
    tuple boxed the float and cost as much as the rest of a request's metrics (tests check it agrees)."""
    if seconds <= 0.1:
        if seconds <= 0.01:
            return 0 if seconds <= 0.005 else 1
        return 2 if seconds <= 0.025 else 3 if seconds <= 0.05 else 4
    if seconds <= 1.0:
        return 5 if seconds <= 0.25 else 6 if seconds <= 0.5 else 7
    return 8 if seconds <= 2.5 else 9 if seconds <= 5.0 else 10 if seconds <= 10.0 else 11


# namespace, ingress (the object: an Ingress or an HTTPRoute), host (rule host, "" for host-less rules),
# path (the pattern), service, kind (of the object: "Ingress" or "HTTPRoute")
RouteLabels = tuple[str, str, str, str, str, str]
UNMATCHED: RouteLabels = ("", "", "", "", "", "")
# What happened to request copies sent to mirror backends (see proxy.http.mirror).
MIRROR_RESULTS = ("sent", "answered", "dropped", "failed")
# Route policy counts, in snapshot order.
ROUTE_POLICY_COUNTS = ("rate_limited", "faults_delayed", "faults_aborted")
# Why spans were dropped (pyngress_trace_spans_dropped_total's reason): the exporter's queue was full, or the
# collector did not take their batch.
SPANS_QUEUE_FULL = "queue-full"
SPANS_EXPORT_FAILED = "export-failed"
# namespace, service, port (the Service port as written) of a cluster.
ClusterLabels = tuple[str, str, str]

# One (method, status) series in snapshot form:
# [method, status, requests, received, sent, retries, duration_sum, duration_buckets,
#  upstream_count, upstream_sum, upstream_buckets, duration_exemplars] (buckets non-cumulative, last = +Inf;
#  exemplars: None, or per duration bucket None or [trace id, span id, duration, unix time]).
SeriesData = list[Any]
# {"routes": [[labels, [series, ...]], ...], "listeners": {scheme: [active, total]},
#  "handshakes": {"completed": n, "failures": {reason: n}}, "mirrors": {result: n},
#  "proxy_protocol_rejected": {scheme: n} (connections closed for a missing or bad PROXY header),
#  "upstream_tls": {"completed": n, "failures": {reason: n}}}
Snapshot = dict[str, Any]


class Series:
    """Counts for one method and status of one route."""

    __slots__ = ("requests", "received", "sent", "retries", "duration_sum", "duration_buckets",
                 "upstream_count", "upstream_sum", "upstream_buckets", "exemplars")

    def __init__(self) -> None:
        self.requests = 0
        self.received = 0
        self.sent = 0
        self.retries = 0
        self.duration_sum = 0.0
        self.duration_buckets = [0] * 12  # len(DURATION_BUCKETS) + 1 (+Inf): compiled, stats.pxd's C arrays
        self.upstream_count = 0
        self.upstream_sum = 0.0
        self.upstream_buckets = [0] * 12
        # The latest sampled request of each duration bucket, as an OpenMetrics exemplar:
        # [traceparent we sent, duration, unix time]; None until a sampled request falls there.
        self.exemplars: list[Exemplar | None] | None = None


# [traceparent (bytes: the trace and span ids are read from it), duration (s), unix time (s)]
Exemplar = list[Any]


class RouteStats:
    """Everything counted for one route label set (or for requests that matched no route)."""

    __slots__ = ("labels", "series", "log_fields", "log", "rate_limited", "faults_delayed", "faults_aborted",
                 "last_method", "last_status", "last_series")

    def __init__(self, labels: RouteLabels) -> None:
        self.labels = labels
        self.series: dict[tuple[bytes, int], Series] = {}
        # The labels as the access log writes them, made on first use (proxy.accesslog.route_fields).
        self.log_fields: bytes | None = None
        # False: no access log line for these requests (ingress-nginx's enable-access-log "false"; set by the
        # server for each published table).
        self.log = True
        # Route policies: requests refused by the rate limit, delayed and aborted by fault injection.
        self.rate_limited = 0
        self.faults_delayed = 0
        self.faults_aborted = 0
        # The series the last request went to: a route's requests are mostly one method and status, and comparing
        # two values costs less than hashing a (method, status) key for the dict.
        # (A placeholder series under status 0, which no request has, until the first request.)
        self.last_method = b""
        self.last_status = 0
        self.last_series = Series()

    def record(self, method: bytes, status: int, duration: float, upstream: float, received: int, sent: int,
               retries: int) -> None:
        """One finished request; ``upstream`` < 0 when no upstream response head was received."""
        series = self.last_series
        if status != self.last_status or method != self.last_method:
            key = (method, status)
            known = self.series.get(key)
            if known is None:
                known = self.series[key] = Series()
            series = self.last_series = known
            self.last_method = method
            self.last_status = status
        series.requests += 1
        series.received += received
        series.sent += sent
        series.retries += retries
        series.duration_sum += duration
        # Compiled, the counters are C arrays and bucket() a few C comparisons; the first bucket (most requests)
        # is taken without the call.
        series.duration_buckets[0 if duration <= 0.005 else bucket(duration)] += 1
        if upstream >= 0.0:
            series.upstream_count += 1
            series.upstream_sum += upstream
            series.upstream_buckets[0 if upstream <= 0.005 else bucket(upstream)] += 1

    def exemplar(self, method: bytes, status: int, duration: float, traceparent: bytes, when: float) -> None:
        """A sampled request's trace as the exemplar of its duration bucket (after `record` counted it)."""
        series = self.series.get((method, status))
        if series is None:
            return
        exemplars = series.exemplars
        if exemplars is None:
            exemplars = series.exemplars = [None] * (len(DURATION_BUCKETS) + 1)
        exemplars[bucket(duration)] = [traceparent, duration, when]

    def snapshot(self) -> list[SeriesData]:
        data: list[SeriesData] = []
        for (method, status), s in list(self.series.items()):  # (s: a Series, typed in stats.pxd)
            data.append([method.decode("latin-1"), status, s.requests, s.received, s.sent, s.retries, s.duration_sum,
                         list(s.duration_buckets), s.upstream_count, s.upstream_sum, list(s.upstream_buckets),
                         _exemplars(s.exemplars)])
        return data


def _exemplars(exemplars: list[Exemplar | None] | None) -> list[list[Any] | None] | None:
    """Snapshot form: per bucket None or [trace id, span id, duration, unix time] (plain strings and numbers)."""
    if exemplars is None:
        return None
    return [None if e is None else [e[0][3:35].decode("ascii"), e[0][36:52].decode("ascii"), e[1], e[2]]
            for e in exemplars]


class TrafficStats:
    """The process's RouteStats, one per label set of the running table, plus one for unmatched requests."""

    __slots__ = ("unmatched", "default_server", "_routes", "listeners", "mirrors", "upstream_tls", "upstreams", "spans",
                 "passthrough")

    def __init__(self) -> None:
        self.unmatched = RouteStats(UNMATCHED)
        # The proxy's own 404 for an unknown host without --default-backend-service: counted in the unmatched
        # series (the same dict), access-logged only with enable-access-log-for-default-backend (the server sets
        # `log` from the ConfigMap), as ingress-nginx's default server "_" logs its root location.
        default_server = self.default_server = RouteStats(UNMATCHED)
        default_server.series = self.unmatched.series
        default_server.log = False
        self._routes: dict[RouteLabels, RouteStats] = {}
        # Listeners whose connection counts go into snapshots (objects with scheme, active_connections,
        # total_connections: proxy.server.Listener); set by whoever owns the server.
        self.listeners: Iterable[Any] = ()
        # Mirror copies counted (an object with sent, answered, dropped, failed: proxy.http.mirror.STATS).
        self.mirrors: Any = None
        # TLS handshakes with pods (the process's proxy.upstream.tls.STATS: completed, failures by reason).
        self.upstream_tls: Any = upstream_tls.STATS
        # The running upstreams (proxy.upstream.cluster.Upstream), for their policy counters; set by the server.
        self.upstreams: Callable[[], Iterable[Any]] = lambda: ()
        # SSL passthrough counts (proxy.passthrough.PassthroughStats); None without --enable-ssl-passthrough.
        self.passthrough: Any = None
        # The span exporter (proxy.tracing.exporter.SpanExporter: exported, dropped, failed); None: no tracing.
        self.spans: Any = None

    def bind(self, routes: Iterable[tuple[int, RouteLabels]]) -> dict[int, RouteStats]:
        """RouteStats for each (route id, labels); stats of label sets no longer present are dropped.

        Called once per published table; the result is what requests look routes up in
        (by ``id(route)``: route objects live as long as the table that holds them).
        """
        previous = self._routes
        current: dict[RouteLabels, RouteStats] = {}
        by_route: dict[int, RouteStats] = {}
        for route_id, labels in routes:
            stats = current.get(labels)
            if stats is None:
                stats = previous.get(labels)
                if stats is None:
                    stats = RouteStats(labels)
                current[labels] = stats
            by_route[route_id] = stats
        self._routes = current
        return by_route

    def routes(self) -> list[RouteStats]:
        return [self.unmatched, *self._routes.values()]

    def snapshot(self) -> Snapshot:
        routes = [[list(stats.labels), stats.snapshot()] for stats in self.routes()]
        listeners: dict[str, list[int]] = {}
        handshakes: dict[str, Any] = {"completed": 0, "failures": {}}
        rejected: dict[str, int] = {}
        for listener in list(self.listeners):
            counts = listeners.setdefault(listener.scheme, [0, 0])
            counts[0] += listener.active_connections
            counts[1] += listener.total_connections
            refused = getattr(listener.server, "rejected", None)  # a PROXY protocol listener's
            if refused is not None:
                rejected[listener.scheme] = rejected.get(listener.scheme, 0) + refused
            stats = getattr(listener, "handshakes", None)
            if stats is not None:
                _add_handshakes(handshakes, stats.completed, stats.failures)
        mirrors = self.mirrors
        copies = {result: getattr(mirrors, result) for result in MIRROR_RESULTS} if mirrors is not None else {}
        backend: dict[str, Any] = {"completed": 0, "failures": {}}
        if self.upstream_tls is not None:
            _add_handshakes(backend, self.upstream_tls.completed, dict(self.upstream_tls.failures))
        policed = [[list(stats.labels), [getattr(stats, name) for name in ROUTE_POLICY_COUNTS]]
                   for stats in self.routes() if stats.rate_limited or stats.faults_delayed or stats.faults_aborted]
        spans = self.spans
        tracing = {"exported": spans.exported, "dropped": {SPANS_QUEUE_FULL: spans.dropped,
                                                          SPANS_EXPORT_FAILED: spans.failed}} if spans else None
        return {"routes": routes, "listeners": listeners, "handshakes": handshakes, "mirrors": copies,
                "proxy_protocol_rejected": rejected, "upstream_tls": backend, "route_policy": policed,
                "clusters": cluster_counts(self.upstreams()), "tracing": tracing,
                "passthrough": self.passthrough.snapshot() if self.passthrough is not None else None}


def cluster_counts(upstreams: Iterable[Any]) -> list[list[Any]]:
    """The policy counters of upstreams with a policy, by cluster labels, in snapshot form:
    [[namespace, service, port], {"ejected": n, "ejections": n, "overloaded": {limit: n}, "retries": {reason: n},
    "budget_exhausted": n}]."""
    by_labels: dict[ClusterLabels, dict[str, Any]] = {}
    for upstream in upstreams:
        if upstream.policy is None and not any(upstream.counters.retries.values()):
            continue
        cluster = upstream.cluster
        outliers = upstream.outliers
        counters = upstream.counters
        _add_cluster(by_labels, (cluster.namespace, cluster.service, cluster.port), {
            "ejected": len(outliers.ejected) if outliers is not None else 0,
            "ejections": outliers.total if outliers is not None else 0,
            "overloaded": dict(counters.overloaded), "retries": dict(counters.retries),
            "budget_exhausted": counters.budget_exhausted})
    return [[list(labels), counts] for labels, counts in by_labels.items()]


def _add_cluster(total: dict[ClusterLabels, dict[str, Any]], labels: ClusterLabels, counts: dict[str, Any]) -> None:
    known = total.get(labels)
    if known is None:
        total[labels] = {key: dict(value) if isinstance(value, dict) else value for key, value in counts.items()}
        return
    for key, value in counts.items():
        if isinstance(value, dict):
            part = known.setdefault(key, {})
            for name, count in value.items():
                part[name] = part.get(name, 0) + count
        else:
            known[key] = known.get(key, 0) + value


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Add up snapshots of several processes (same label set, method and status: one series)."""
    series: dict[tuple[tuple[str, ...], str, int], SeriesData] = {}
    order: dict[tuple[str, ...], list[SeriesData]] = {}
    listeners: dict[str, list[int]] = {}
    handshakes: dict[str, Any] = {"completed": 0, "failures": {}}
    rejected: dict[str, int] = {}
    mirrors: dict[str, int] = {}
    backend: dict[str, Any] = {"completed": 0, "failures": {}}
    policed: dict[tuple[str, ...], list[int]] = {}
    clusters: dict[ClusterLabels, dict[str, Any]] = {}
    tracing: dict[str, Any] | None = None
    passthrough: list[Any] = []
    for snapshot in snapshots:
        passthrough.append(snapshot.get("passthrough"))
        for labels, entries in snapshot.get("routes", ()):
            key_labels = tuple(labels)
            bucket = order.setdefault(key_labels, [])
            for entry in entries:
                key = (key_labels, entry[0], entry[1])
                known = series.get(key)
                if known is None:
                    known = series[key] = [entry[0], entry[1], 0, 0, 0, 0, 0.0,
                                           [0] * len(entry[7]), 0, 0.0, [0] * len(entry[10]), None]
                    bucket.append(known)
                for index in (2, 3, 4, 5, 6, 8, 9):
                    known[index] += entry[index]
                for index in (7, 10):
                    known[index] = [a + b for a, b in zip(known[index], entry[index])]
                exemplars = entry[11] if len(entry) > 11 else None
                if exemplars is not None:
                    known[11] = _latest(known[11], exemplars)
        for scheme, counts in snapshot.get("listeners", {}).items():
            total = listeners.setdefault(scheme, [0, 0])
            total[0] += counts[0]
            total[1] += counts[1]
        part = snapshot.get("handshakes")
        if part:
            _add_handshakes(handshakes, part["completed"], part["failures"])
        for scheme, count in (snapshot.get("proxy_protocol_rejected") or {}).items():
            rejected[scheme] = rejected.get(scheme, 0) + count
        for result, count in (snapshot.get("mirrors") or {}).items():
            mirrors[result] = mirrors.get(result, 0) + count
        part = snapshot.get("upstream_tls")
        if part:
            _add_handshakes(backend, part["completed"], part["failures"])
        for labels, counts in snapshot.get("route_policy") or ():
            known = policed.setdefault(tuple(labels), [0] * len(ROUTE_POLICY_COUNTS))
            for index, count in enumerate(counts):
                known[index] += count
        for labels, counts in snapshot.get("clusters") or ():
            _add_cluster(clusters, (labels[0], labels[1], labels[2]), counts)
        part = snapshot.get("tracing")
        if part:
            if tracing is None:
                tracing = {"exported": 0, "dropped": {}}
            tracing["exported"] += part["exported"]
            for reason, count in part["dropped"].items():
                tracing["dropped"][reason] = tracing["dropped"].get(reason, 0) + count
    return {"routes": [[list(labels), entries] for labels, entries in order.items()], "listeners": listeners,
            "handshakes": handshakes, "mirrors": mirrors, "proxy_protocol_rejected": rejected, "upstream_tls": backend,
            "route_policy": [[list(labels), counts] for labels, counts in policed.items()],
            "clusters": [[list(labels), counts] for labels, counts in clusters.items()], "tracing": tracing,
            "passthrough": merge_passthrough(passthrough) if any(passthrough) else None}


def merge_passthrough(parts: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The sum of several processes' SSL passthrough counts (proxy.passthrough.PassthroughStats.snapshot:
    {"hosts": {host: [connections, received, sent]}, "failures": {reason: n}, "active": n})."""
    hosts: dict[str, list[int]] = {}
    failures: dict[str, int] = {}
    active = 0
    for part in parts:
        if not part:
            continue
        for name, counts in part.get("hosts", {}).items():
            known = hosts.setdefault(name, [0, 0, 0])
            for index in range(3):
                known[index] += counts[index]
        for reason, count in part.get("failures", {}).items():
            failures[reason] = failures.get(reason, 0) + count
        active += part.get("active", 0)
    return {"hosts": hosts, "failures": failures, "active": active}


def _latest(known: list[Any] | None, other: list[Any]) -> list[Any]:
    """Per bucket, the more recent of two exemplars (snapshot form)."""
    if known is None:
        return list(other)
    return [b if a is None or (b is not None and b[3] > a[3]) else a for a, b in zip(known, other)]


def _add_handshakes(total: dict[str, Any], completed: int, failures: Mapping[str, int]) -> None:
    total["completed"] += completed
    for reason, count in failures.items():
        total["failures"][reason] = total["failures"].get(reason, 0) + count


def route_labels(route: Any, clusters: Mapping[str, Any]) -> RouteLabels:
    """The label values of one routing.model.Route (the service name from its cluster)."""
    cluster = clusters.get(route.cluster)
    if cluster is not None:
        service = cluster.service
    else:  # "namespace/service:port"
        service = route.cluster.partition("/")[2].rpartition(":")[0]
    return (route.namespace, route.ingress, route.host, route.path, service, route.kind)


def backend_labels(route: Any, backend: Any) -> RouteLabels:
    """The label values of one weighted backend of a routing.model.Route: its own service."""
    return (route.namespace, route.ingress, route.host, route.path, backend.service, route.kind)


__all__ = ["DURATION_BUCKETS", "MIRROR_RESULTS", "ROUTE_POLICY_COUNTS", "SPANS_EXPORT_FAILED", "SPANS_QUEUE_FULL",
           "ClusterLabels", "RouteLabels", "RouteStats",
           "Series", "Snapshot", "TrafficStats", "UNMATCHED", "backend_labels", "cluster_counts", "merge",
           "route_labels"]
