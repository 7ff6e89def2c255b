"""Timeouts of a request in flight, checked by the server's clock tick (no timer per request).

nginx's set: the client must read the response (send_timeout) and keep sending its body
(client_body_timeout); the upstream must answer and make progress (proxy_read_timeout, also
used for reading our request body); a tunnel is closed when both sides stay silent that long.
Route timeouts (Gateway API `timeouts`) bound the whole request and each upstream attempt.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from proxy.upstream.errors import AttemptTimeout, RequestTimeout, UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange

logger = logging.getLogger("pyngress.proxy")


def check_timeouts(ex: Exchange, now: float) -> None:
    """Act on whichever timeout of an unfinished exchange has passed at loop time `now`."""
    client = ex.client
    server = client.server
    if client.write_paused:
        if now - client.write_paused_since > server.send_timeout:
            ex.finished = True
            logger.warning(
                "request %s: client did not read the response for %gs, closing",
                ex.request_id.decode("latin-1") or "-",
                server.send_timeout,
            )
            if ex.conn is not None:
                ex.conn.abort()
                ex.conn = None
            ex.account()
            client.abort()
        return
    if ex.tunnel:
        if now - max(ex.last_up, client.last_read) > server.read_timeout:
            ex.finished = True
            if ex.conn is not None:
                ex.conn.close()
                ex.conn = None
            client.close()
        return
    if ex.timeouts is not None:
        if ex.deadline and now > ex.deadline:
            ex.fail(RequestTimeout("the route's request timeout passed before the response was complete"))
            return
        if ex.attempt_deadline and now > ex.attempt_deadline:
            ex.fail(AttemptTimeout("the attempt's timeout (backendRequest or per try) passed before the "
                                   "response was complete"))
            return
    conn = ex.conn
    if conn is not None and (ex.req_done or conn.writing_paused):
        # Waiting on the upstream: for its response, or for it to read the body we send (nginx's
        # proxy_read_timeout and proxy_send_timeout: one setting globally, a route may set each).
        read_timeout = server.read_timeout if ex.req_done else server.upstream_send_timeout
        timeouts = ex.timeouts
        if timeouts is not None and (timeouts.read or timeouts.send):
            read_timeout = (timeouts.read if ex.req_done else timeouts.send) or read_timeout
        if not conn.reading_paused and now - ex.last_up > read_timeout:
            if ex.resp_head_done:
                what = "response body progress"
            elif ex.req_done:
                what = "response headers"
            else:
                what = "reading of the request body"
            ex.fail(UpstreamTimeout(f"no {what} from upstream within {read_timeout:g}s"))
    elif (ex.head_done and not ex.req_done and not client.blocked
          and now - client.last_read > server.body_timeout):
        if ex.resp_head_done:
            ex.fail(UpstreamError("client stopped sending the request body"))
        else:
            client.client_timeout(ex)
