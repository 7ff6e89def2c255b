"""Request mirroring (Gateway API RequestMirror): copies of requests sent to another backend, answers discarded.

A mirror never delays or fails the real request: the copy is sent once the real request is
complete (its body included, up to `MIRROR_BODY_LIMIT`), on its own upstream connection, and
whatever the mirror backend answers (or fails to) is dropped after counting. Its cost is
bounded: at most `MAX_IN_FLIGHT` copies per process are outstanding (more are dropped and
counted), each gets the connect timeout and `MIRROR_TIMEOUT` to answer, and bodies larger
than the limit are not copied (the copy is dropped, not truncated).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpResponseParser

from proxy.upstream.errors import ConnectError

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.routing.filters import Mirror
    from proxy.upstream.cluster import Upstream
    from proxy.upstream.connection import UpstreamConnection
    from proxy.upstream.pool import EndpointPool

logger = logging.getLogger("pyngress.proxy")

# Request body bytes copied for a mirror; a larger body is not mirrored at all.
MIRROR_BODY_LIMIT = 64 * 1024
# Mirror copies outstanding at once in one process; beyond, copies are dropped.
MAX_IN_FLIGHT = 256
# Seconds a mirror backend has to answer a copy.
MIRROR_TIMEOUT = 10.0


class MirrorStats:
    """Counts for /metrics: copies sent, answered, and dropped (over a limit, or failed)."""

    __slots__ = ("sent", "answered", "dropped", "failed", "in_flight")

    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.dropped = 0  # not sent: too many in flight, or a body over the limit
        self.failed = 0  # sent (or tried) but the mirror backend did not answer in time or refused
        self.in_flight = 0


STATS = MirrorStats()


def chosen(percent: float) -> bool:
    """Whether this request is mirrored (`percent` of requests, 0-100)."""
    return percent >= 100.0 or (percent > 0.0 and random.random() * 100.0 < percent)


def send_copy(upstream: Upstream, request: list[bytes]) -> None:
    """Send one copy of a complete request (head and body bytes, ready to write) and forget it."""
    if STATS.in_flight >= MAX_IN_FLIGHT:
        STATS.dropped += 1
        return
    pool = upstream.balancer.pick()
    if pool is None:
        STATS.failed += 1
        return
    STATS.in_flight += 1
    STATS.sent += 1
    copy = _MirrorCopy(pool, b"".join(request))
    task = asyncio.get_running_loop().create_task(copy.run())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


_TASKS: set[asyncio.Task[None]] = set()


def copy_request(ex: Exchange, targets: list[tuple[Upstream, Mirror]], request: list[bytes]) -> None:
    """Copy `ex`'s request (`request`: the head sent to the pod) to mirror backends: as is, or as the mirror's
    `copy` makes it (ingress-nginx's mirror-target). A copy without body goes at once; the others once the
    request is complete (`ex.mirrors`, sent by the exchange)."""
    copies: list[tuple[Upstream, list[bytes]]] = []
    for upstream, spec in targets:
        copy = spec.copy
        if copy is None:
            copies.append((upstream, list(request)))
            continue
        target = ex.target
        uri = target.decode("latin-1") if target[:1] == b"/" else ex.path + (
            "?" + ex.query.decode("latin-1") if ex.query else "")
        head = copy.head(ex, uri, request)
        if copy.body:
            copies.append((upstream, head))
        else:
            send_copy(upstream, head)
    if not copies:
        return
    if not ex.has_body:
        for upstream, head in copies:
            send_copy(upstream, head)
        return
    ex.mirrors = Copies([(upstream, head + ex.up_out) for upstream, head in copies])


class Copies:
    """Copies of one request that wait for its body: each collects the body as it streams (framed as sent
    upstream), and is dropped, not truncated, once the body passes MIRROR_BODY_LIMIT."""

    __slots__ = ("pending",)

    def __init__(self, copies: list[tuple[Upstream, list[bytes]]]) -> None:
        self.pending = [(upstream, request, 0) for upstream, request in copies]

    def add(self, framed: tuple[bytes, ...], size: int) -> bool:
        """A piece of the body; False once no copy is left."""
        kept = []
        for upstream, request, copied in self.pending:
            copied += size
            if copied > MIRROR_BODY_LIMIT:
                STATS.dropped += 1
                continue
            request += framed
            kept.append((upstream, request, copied))
        self.pending = kept
        return bool(kept)

    def send(self, end: bytes = b"") -> None:
        """The request is complete: send every copy (with `end`, a chunked body's last chunk)."""
        for upstream, request, _ in self.pending:
            if end:
                request.append(end)
            send_copy(upstream, request)
        self.pending = []


class _MirrorCopy:
    """One mirrored request on its own connection: write it, read the answer to its end, then let go."""

    __slots__ = ("pool", "data", "conn", "parser", "done")

    def __init__(self, pool: EndpointPool, data: bytes) -> None:
        self.pool = pool
        self.data = data
        self.conn: UpstreamConnection | None = None
        self.parser = HttpResponseParser(self)
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def run(self) -> None:
        answered = False
        try:
            async with asyncio.timeout(MIRROR_TIMEOUT):
                conn = self.pool.acquire() or await self.pool.connect()
                self.conn = conn
                conn.user = self
                conn.transport.write(self.data)
                answered = await self.done
        except (ConnectError, TimeoutError, OSError) as error:
            logger.debug("mirror to %s failed: %s", self.pool, error)
        finally:
            STATS.in_flight -= 1
            if answered:
                STATS.answered += 1
            else:
                STATS.failed += 1
            used = self.conn
            self.conn = None
            self.parser = None  # type: ignore[assignment]
            if used is not None:
                used.user = None
                if answered and not used.closed:
                    self.pool.release(used)
                else:
                    used.close()

    # ConnectionUser (proxy.upstream.connection)

    def upstream_data(self, data: bytes | memoryview) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            self._finish(False)

    def upstream_eof(self) -> None:
        self._finish(False)

    def upstream_lost(self, exc: Exception | None) -> None:
        self.conn = None
        self._finish(False)

    def upstream_write_paused(self) -> None:
        pass

    def upstream_write_resumed(self) -> None:
        pass

    # response parser callbacks: only the end matters

    def on_message_complete(self) -> None:
        self._finish(True)

    def _finish(self, answered: bool) -> None:
        if not self.done.done():
            self.done.set_result(answered)
