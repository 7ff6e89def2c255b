"""Log lines for upstream framing faults the client never sees: a pod that sends more than its Content-Length, or
bytes after a complete response. The client keeps its whole, well-framed answer; the extra bytes are dropped and
the pod connection, out of step, is closed (proxy.http.exchange). The operator still wants to know which pod of
which route does it, but a pod that does it on every response must not flood the log from the request path: one
warning per pod (its pool) a minute, naming the route and the pod, and the rest at debug.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange

logger = logging.getLogger("pyngress.proxy")

# Seconds between two warnings about one pod: enough to see a misbehaving pod at once and to bound the lines it
# can cause to one a minute, whatever its request rate.
WARNING_INTERVAL = 60.0
_clock = time.monotonic


def log_fault(ex: Exchange, what: str) -> None:
    """One line about `ex`'s pod having sent `what`: a warning unless that pod had one less than
    WARNING_INTERVAL ago (then debug)."""
    pool = ex.pool
    now = _clock()
    level = logging.DEBUG
    if pool is None or pool.faulted_at is None or now - pool.faulted_at >= WARNING_INTERVAL:
        level = logging.WARNING
        if pool is not None:
            pool.faulted_at = now
    if not logger.isEnabledFor(level):
        return
    stats = ex.route_stats
    if stats is not None:
        namespace, ingress, host, path, service, kind = stats.labels
        route = f"{kind or 'Ingress'} {namespace}/{ingress} host={host or '*'} path={path or '-'} service={service}"
    else:
        route = "none"
    upstream = f"{pool.endpoint.address}:{pool.endpoint.port}" if pool is not None else "-"
    logger.log(level, "request %s: upstream %s sent %s (route: %s); the extra bytes are dropped and its connection "
               "closed%s", ex.request_id.decode("latin-1") or "-", upstream, what, route,
               " (more from this pod within a minute are logged at debug)" if level == logging.WARNING else "")
