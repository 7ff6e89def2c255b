"""One keep-alive TCP connection to an upstream endpoint.

The protocol object only routes transport events to the request currently using
the connection (an ``Exchange``) or, while idle in a pool, notices that the
upstream closed it so the pool never hands out a dead connection.

Reads: on uvloop the connection is a buffered protocol (``get_buffer``/``buffer_updated``): the socket is read
into one buffer the process owns and the user gets a memoryview of what was read, so a long body's bytes go
from that buffer to the client's transport without the copy into a fresh ``bytes`` per read that
``data_received`` costs. Every upstream connection of the process reads into the same buffer (uvloop's own read
buffer is shared the same way): a read is handed out and consumed within one callback, so only a view that
outlives it matters, and only the exchange's raw body makes one (a client transport that could not write a
piece at once keeps a view of it): it calls `keep_last_read()`, and the next read gets a new buffer. Asyncio's
loop calls ``data_received`` (it checks for ``asyncio.BufferedProtocol`` by class, which an extension type
cannot derive from); users get ``bytes`` then.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from proxy.upstream.pool import EndpointPool

logger = logging.getLogger("pyngress.proxy")

# The size of the shared read buffer: uvloop's own (a 64 KiB body and its head fit one read).
READ_SIZE = 256 * 1024

# The shared read buffer, a memoryview of a bytearray (None until the first read, and after keep_last_read()).
# One event loop per process reads upstream connections (workers are processes).
_view: memoryview | None = None


def keep_last_read() -> None:
    """A view of the last read outlives its callback (a client transport buffered it): leave that buffer to it."""
    global _view
    _view = None


class ConnectionUser(Protocol):
    """What a connection reports to the request using it (implemented by the HTTP exchange)."""

    def upstream_data(self, data: bytes | memoryview) -> None: ...
    def upstream_eof(self) -> None: ...
    def upstream_lost(self, exc: Exception | None) -> None: ...
    def upstream_write_paused(self) -> None: ...
    def upstream_write_resumed(self) -> None: ...


class ResponseReader(Protocol):
    """The parser state a connection keeps between its requests (proxy.http.h1_response.H1Response)."""

    def close(self) -> None: ...


# An asyncio protocol by its methods, without asyncio.Protocol as base: compiled, it is an extension type (see
# the .pxd beside this module), which cannot derive from a Python class. Factories handing it to the loop say so.
class UpstreamConnection:
    """A connection owned either by a pool (idle) or by one exchange (busy)."""

    __slots__ = ("pool", "transport", "user", "requests", "idle_since", "reading_paused", "writing_paused", "closed",
                 "reader")

    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.user: ConnectionUser | None = None
        # Requests sent on this connection; >0 when it came from the pool (a reused connection).
        self.requests = 0
        self.idle_since = 0.0
        self.reading_paused = False
        self.writing_paused = False
        self.closed = False
        # The response parser of this connection, kept from one request to the next (made by the first user).
        self.reader: ResponseReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (create_connection)
        self.pool.open += 1

    def data_received(self, data: bytes) -> None:
        user = self.user
        if user is not None:
            try:
                user.upstream_data(data)
            except Exception as exc:  # a bug must cost one request, never the event loop's protocol
                logger.exception("error handling upstream data")
                self.user = None
                self.abort()
                user.upstream_lost(exc)
        else:
            # Bytes nobody asked for: the connection is out of sync, never reuse it.
            self.close()

    def get_buffer(self, sizehint: int) -> memoryview:
        """uvloop reads into this (the shared buffer, whatever `sizehint` says: a short read is no harm)."""
        global _view
        view = _view
        if view is None:
            view = _view = memoryview(bytearray(READ_SIZE))
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` were read into the buffer `get_buffer` gave: the user gets a view of them (as data_received)."""
        user = self.user
        if user is not None:
            try:
                user.upstream_data(_view[:nbytes])  # type: ignore[index]  # get_buffer made it
            except Exception as exc:  # a bug must cost one request, never the event loop's protocol
                logger.exception("error handling upstream data")
                self.user = None
                self.abort()
                user.upstream_lost(exc)
        else:
            self.close()  # as data_received

    def eof_received(self) -> bool:
        user = self.user
        if user is not None:
            user.upstream_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.pool.open -= 1
        self._drop_reader()
        user = self.user
        if user is not None:
            self.user = None
            user.upstream_lost(exc)
        else:
            self.pool.discard(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        user = self.user
        if user is not None:
            user.upstream_write_paused()

    def resume_writing(self) -> None:
        self.writing_paused = False
        user = self.user
        if user is not None:
            user.upstream_write_resumed()

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    @property
    def usable(self) -> bool:
        return not self.closed and not self.transport.is_closing()

    def _drop_reader(self) -> None:
        reader = self.reader
        if reader is not None:
            self.reader = None
            reader.close()

    def close(self) -> None:
        """Close without waiting for buffered bytes (used for broken or surplus connections)."""
        self.user = None
        self._drop_reader()
        if not self.closed:
            self.closed = True
            self.pool.open -= 1
            self.pool.discard(self)
            self.transport.close()

    def abort(self) -> None:
        self.user = None
        self._drop_reader()
        if not self.closed:
            self.closed = True
            self.pool.open -= 1
            self.pool.discard(self)
            self.transport.abort()
