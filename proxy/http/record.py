"""What a finished request leaves behind: its route's series counts, its access log line, and when it was
sampled for tracing, its span and its duration bucket's exemplar.

Run once per exchange (Exchange.account), on the loop: the counters are plain numbers bound to the
route when its table was published, and the log line is formatted into bytes here and written by
the access log's thread. It also releases what the exchange still holds of its upstream (the
connection's response reader, the endpoint's in-flight count, a policy's cluster counts), so
reference counting frees every exchange at once instead of leaving cycles to the collector.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from proxy.accesslog import address_text, route_fields

if TYPE_CHECKING:
    from proxy.accesslog import AccessLog
    from proxy.http.exchange import Exchange
    from proxy.stats import RouteStats

# Durations: a monotonic clock with sub-microsecond resolution (uvloop's loop.time() is the cached
# millisecond time of the loop iteration); the log's timestamps: the wall clock.
_clock = time.perf_counter
_wall = time.time
_wall_ns = time.time_ns


def record(ex: Exchange) -> None:
    """Count one finished request: its route's series, and the access log when on."""
    response = ex.response
    if response is not None:
        ex.response = None
        if response.exchange is ex:  # the reader (kept by the connection) lets go of this exchange
            response.exchange = response.writer = None  # type: ignore[assignment]  # H1Response.end, inline
    pool = ex.pool
    if pool is not None:
        pool.in_flight -= 1
    policy = ex.policy
    if policy is not None:
        # The Attempts refers back to its exchange (and is one of its response filters): let go of it here,
        # or every such exchange would be left to the cyclic collector.
        ex.policy = None
        ex.response_filters = ()
        policy.done()
    status = ex.status
    if not status:
        if not ex.head_done:
            return  # the connection closed before a request was complete: nothing to count
        status = 499  # nginx's "client closed request"
    client = ex.client
    server = client.server
    head = ex
    duration = _clock() - ex.started
    received = ex.received + len(head.method) + len(head.target) + head.header_bytes + 14
    stats: RouteStats = ex.route_stats or server.traffic.unmatched
    if server.route_metrics:
        stats.record(head.method, status, duration, ex.upstream_time, received, ex.sent, ex.retries)
    trace = head.trace
    # Sampled: its flags' last digit, proxy.tracing.context's SAMPLED_AT and SAMPLED_BYTE as literals (head.pxd types
    # `trace` bytes: compiled, a C byte comparison, no global lookups; tests/tracing check the constants agree).
    if trace is not None and trace[54] == 0x31:
        _span(ex, stats, trace, status, duration, received)
    access_log = server.access_log
    if access_log is not None and stats.log:
        log: AccessLog = access_log  # (compiled: add is a typed C method, called directly)
        address = None
        if pool is not None:
            address = pool.log_address
            if address is None:
                address = pool.log_address = address_text(pool.endpoint.address, pool.endpoint.port)
        route = stats.log_fields
        if route is None:
            route = stats.log_fields = route_fields(stats.labels)
        log.add(_wall(), head.request_id, ex.client_ip, head.method, head.authority, head.target,
                b"HTTP/1.0" if head.http10 else client.protocol, status, received, ex.sent, duration,
                ex.upstream_time, address, route, head.user_agent, ex.retries, ex.reason, trace, ex.grpc_status)


def _span(ex: Exchange, stats: RouteStats, trace: bytes, status: int, duration: float, received: int) -> None:
    """A sampled request: its span to the exporter, its trace as its duration bucket's exemplar."""
    client = ex.client
    server = client.server
    tracer = server.tracer
    end = _wall_ns()
    if server.route_metrics:
        stats.exemplar(ex.method, status, duration, trace, end / 1e9)
    if tracer is not None:
        listener = client.listener
        pool = ex.pool
        tracer.finish((trace, ex.traceparent, ex.tracestate, end - int(duration * 1e9), end, ex.method, ex.target,
                       listener.scheme, listener.public_port, ex.authority, ex.client_ip,
                       status, received, ex.sent, pool.endpoint if pool is not None else None, ex.retries,
                       stats.labels, ex.reason, ex.user_agent, ex.request_id,
                       b"HTTP/1.0" if ex.http10 else client.protocol))

