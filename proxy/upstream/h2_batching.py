"""One write per loop iteration for an HTTP/2 connection, used by both sides (proxy/http2/connection.py to clients,
proxy/upstream/h2_connection.py to pods).

`h2` buffers the frames a connection produces; `flush` hands them to the transport. Frames made by several
callbacks of one loop iteration (a request's HEADERS, DATA and END_STREAM written by the exchange in separate
calls; responses of several streams finishing together) go out in one write when those callbacks call
`flush_soon` instead.
"""

from __future__ import annotations

import asyncio


class BatchedWrites:
    """Mixin: `flush_soon` schedules the class's own `flush` once for the end of this loop iteration. The class's
    __init__ sets `flushing` False."""

    __slots__ = ("flushing",)

    flushing: bool  # a write is scheduled for the end of this loop iteration

    def flush(self) -> None:
        raise NotImplementedError

    def flush_soon(self) -> None:
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self.flushing = False
        self.flush()
