"""What a finished request leaves behind: its route's series counts and its access log line.

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
    from proxy.http.exchange import Exchange

# Durations: a monotonic clock with sub-microsecond resolution (uvloop's loop.time() is the cached
# millisecond time of the loop iteration); the log's timestamps: the wall clock.
_clock = time.perf_counter
_wall = time.time


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
    stats = ex.route_stats or server.traffic.unmatched
    if server.route_metrics:
        stats.record(head.method, status, duration, ex.upstream_time, received, ex.sent, ex.retries)
    access_log = server.access_log
    if access_log is not None:
        address = None
        if pool is not None:
            address = pool.log_address
            if address is None:
                address = pool.log_address = address_text(pool.endpoint.address, pool.endpoint.port)
        route = stats.log_fields
        if route is None:
            route = stats.log_fields = route_fields(stats.labels)
        access_log.add(_wall(), head.request_id, client.client_ip, head.method, head.authority, head.target,
                       head.http10, status, received, ex.sent, duration, ex.upstream_time, address, route,
                       head.user_agent, ex.retries, ex.reason)

