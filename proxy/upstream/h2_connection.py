"""HTTP/2 to a pod: one multiplexed connection (`H2Connection`) carrying many exchanges' streams (`H2Stream`, in
proxy/upstream/h2_stream.py).

The exchange (proxy/http/exchange.py) is written for HTTP/1.1 upstream connections. An `H2Stream` stands in
for one: the exchange writes its HTTP/1.1 request bytes to ``stream.transport`` (the stream itself), which
parses them (httptools, C) into an HTTP/2 request (pseudo-headers, hop-by-hop fields dropped, the body as
DATA); the response comes back as calls on the exchange (`response_head`, the writer's body, trailers, the
end). So every policy of the HTTP/1.1 path (retries, breakers, timeouts, accounting) works unchanged, and an
HTTP/1.1 cluster never meets any of this: only an h2 cluster's pools (proxy/upstream/h2_pool.py) hand out
streams. The translation costs an h2 request one request parse more than an HTTP/1.1 one; the downstream
HTTP/2 side may later hand heads over without it.

Flow control, both ways and per stream:

- request bodies: DATA is sent within the pod's stream and connection windows; what does not fit waits in the
  stream, and past ``_PENDING_HIGH`` bytes the exchange is told the upstream is not writable (it stops
  reading that client), until the pod's WINDOW_UPDATEs drain it;
- response bodies: the connection window is large (``CONNECTION_WINDOW``) and given back as data arrives; a
  stream's window (``STREAM_WINDOW``, 64 KiB) is given back only while its client reads, so a slow client stops its
  own stream and no other, and holds at most one stream window of buffered bytes.

A stream the pod refuses (RST_STREAM REFUSED_STREAM, or above a GOAWAY's last-stream-id) was not processed:
it is sent again on another connection while its request bytes are still held (``_REPLAY_LIMIT``), else
fails as a closed connection would (502, or the retry policy's next attempt).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from proxy.upstream.errors import ProtocolError, UpstreamClosed
from proxy.upstream.h2_batching import BatchedWrites
from proxy.upstream.h2_graceful import GracefulH2
from proxy.upstream.hpack_encoder import PairEncoder

if TYPE_CHECKING:
    from proxy.upstream.h2_pool import H2EndpointPool

from proxy.upstream.h2_stream import (
    CONNECTION_WINDOW,
    STREAM_WINDOW,
    H2Stream,
    error_name,
)

logger = logging.getLogger("pyngress.proxy")


class H2Connection(BatchedWrites, asyncio.Protocol):
    """One HTTP/2 connection to a pod: its frames, its streams, and the streams waiting for a slot under the pod's
    SETTINGS_MAX_CONCURRENT_STREAMS."""

    __slots__ = ("pool", "h2", "transport", "streams", "waiting", "ready", "closed", "going_away", "writing_paused",
                 "idle_timer", "unacked")

    def __init__(self, pool: H2EndpointPool) -> None:
        self.pool = pool
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           validate_outbound_headers=False, normalize_outbound_headers=False)
        # A pod's GOAWAY leaves the streams up to its last-stream-id to finish (see _goaway).
        self.h2 = GracefulH2(config=config)
        # Request headers without a dynamic table, each field's bytes made once (proxy/upstream/hpack_encoder.py).
        self.h2.encoder = PairEncoder()  # type: ignore[assignment]
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.waiting: deque[H2Stream] = deque()
        # Resolved with the pod's first SETTINGS (streams are opened within its limits only).
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.going_away = False
        self.writing_paused = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self.unacked = 0  # response bytes not yet given back to the connection's window
        self.flushing = False  # a write is scheduled for the end of this loop iteration (flush_soon)

    def __repr__(self) -> str:
        return f"<H2Connection streams={len(self.streams)} waiting={len(self.waiting)} of {self.pool!r}>"

    # ------------------------------------------------------------------ capacity

    @property
    def load(self) -> int:
        return len(self.streams) + len(self.waiting)

    def has_room(self) -> bool:
        return len(self.streams) + len(self.waiting) < self.h2.remote_settings.max_concurrent_streams

    def usable(self) -> bool:
        return not self.closed and not self.going_away

    def add(self, stream: H2Stream) -> None:
        """Open `stream` now, or when a slot frees up."""
        self._cancel_idle()
        stream.connection = self
        if not self.ready.done() or len(self.streams) >= self.h2.remote_settings.max_concurrent_streams:
            self.waiting.append(stream)
            return
        self._open(stream)
        self.flush_soon()

    def _open(self, stream: H2Stream) -> None:
        stream_id = self.h2.get_next_available_stream_id()
        self.streams[stream_id] = stream
        stream.opened(self, stream_id)

    def _start_waiting(self) -> None:
        limit = self.h2.remote_settings.max_concurrent_streams
        waiting = self.waiting
        while waiting and len(self.streams) < limit and not self.going_away:
            stream = waiting.popleft()
            if not stream.closed:
                self._open(stream)

    def drop(self, stream: H2Stream, *, reset: bool) -> None:
        """A stream the exchange is done with: reset it (CANCEL) unless it ended both ways, free its slot."""
        stream_id = stream.stream_id
        if not stream_id:
            try:
                self.waiting.remove(stream)
            except ValueError:
                pass
            return
        known = self.streams.pop(stream_id, None) is not None
        if self.closed:
            return
        if reset:
            try:
                self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.ProtocolError:
                pass  # (already closed: StreamClosedError)
        if known:
            self._start_waiting()
            self._maybe_idle()
        self.flush()

    # ------------------------------------------------------------------ transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (create_connection)
        self.pool.open += 1
        if self.pool.tls is None:
            self.start()  # h2c with prior knowledge; over TLS, once the handshake chose h2

    def start(self) -> None:
        """The connection preface and our SETTINGS (the stream window), and the connection window raised."""
        conn = self.h2
        conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.flush()  # h2's GOAWAY
            self._fail_all(ProtocolError(f"HTTP/2 protocol error from the pod: {exc}"))
            self.close()
            return
        streams = self.streams
        for event in events:
            try:
                self._event(event, streams)
            except Exception as exc:  # a bug costs the request, never the loop
                logger.exception("error handling an HTTP/2 event from a pod")
                stream = streams.get(getattr(event, "stream_id", 0) or 0)
                if stream is not None:
                    stream.connection_lost(ProtocolError(f"internal error: {exc!r}"))
        self.flush()

    def _event(self, event: h2.events.Event, streams: dict[int, H2Stream]) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._ack(event.flow_controlled_length)
            stream = streams.get(event.stream_id)
            if stream is not None:
                stream.data(event.data, event.flow_controlled_length)
        elif isinstance(event, h2.events.ResponseReceived):
            stream = streams.get(event.stream_id)
            if stream is not None:
                stream.response(event.headers, event.stream_ended is not None)
        elif isinstance(event, h2.events.InformationalResponseReceived):
            stream = streams.get(event.stream_id)
            if stream is not None:
                stream.informational(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            stream = streams.get(event.stream_id)
            if stream is not None:
                stream.trailers_received(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            stream = streams.pop(event.stream_id, None)
            if stream is not None:
                stream.ended_by_pod()
                self._start_waiting()
                self._maybe_idle()
        elif isinstance(event, h2.events.StreamReset):
            stream = streams.pop(event.stream_id, None)
            if stream is not None:
                stream.reset_by_pod(event.error_code)
                self._start_waiting()
                self._maybe_idle()
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._pump()
            else:
                for stream in list(streams.values()):
                    stream._pump()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            if not self.ready.done():
                self.ready.set_result(None)
            self._start_waiting()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._goaway(event.last_stream_id or 0, event.error_code or 0)

    def _ack(self, flow: int) -> None:
        unacked = self.unacked + flow
        if unacked >= CONNECTION_WINDOW // 4:
            self.unacked = 0
            self.h2.increment_flow_control_window(unacked)
        else:
            self.unacked = unacked

    def _goaway(self, last_stream_id: int, code: int) -> None:
        """GOAWAY: no new streams here; streams above `last_stream_id` were not processed and go elsewhere."""
        self.going_away = True
        self.pool.retire(self)
        for stream_id in sorted(self.streams):
            if stream_id > last_stream_id:
                stream = self.streams.pop(stream_id)
                if not stream.refused():
                    stream.connection_lost(UpstreamClosed(f"the pod sent GOAWAY ({error_name(code)}) before "
                                                          "answering"))
        waiting = list(self.waiting)
        self.waiting.clear()
        for stream in waiting:
            stream.connection = None
            self.pool.place(stream)
        if not self.streams:
            self.close()

    def _fail_all(self, error: Exception) -> None:
        streams = list(self.streams.values())
        self.streams.clear()
        waiting = list(self.waiting)
        self.waiting.clear()
        for stream in streams:
            stream.connection_lost(error)
        for stream in waiting:
            stream.connection = None
            self.pool.place(stream)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        first = not self.closed
        self.closed = True
        self._cancel_idle()
        if first or self.transport is not None:
            self.pool.open -= 1
            self.transport = None
        self.pool.retire(self)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("the pod closed the connection before its SETTINGS"))
            self.ready.exception()  # retrieved: the dialer sees it through wait_ready
        error = UpstreamClosed("the HTTP/2 connection to the pod closed")
        error.__cause__ = exc
        self._fail_all(error)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        for stream in list(self.streams.values()):
            stream._pump()
        self.flush()

    # ------------------------------------------------------------------ idle and closing

    def _maybe_idle(self) -> None:
        if self.streams or self.waiting or self.closed:
            return
        if self.going_away or self.pool.retired:
            self.close()
            return
        timeout = self.pool.idle_timeout
        if timeout > 0 and self.idle_timer is None:
            self.idle_timer = asyncio.get_running_loop().call_later(timeout, self._idle_expired)

    def _cancel_idle(self) -> None:
        timer = self.idle_timer
        if timer is not None:
            self.idle_timer = None
            timer.cancel()

    def _idle_expired(self) -> None:
        self.idle_timer = None
        if not self.streams and not self.waiting:
            self.close()

    def close(self) -> None:
        """Close: GOAWAY, then the transport (streams still on it fail as with a lost connection)."""
        if self.closed:
            return
        self._cancel_idle()
        self.pool.retire(self)
        transport = self.transport
        if transport is not None:
            try:
                self.h2.close_connection()
                self.flush()
            except h2.exceptions.ProtocolError:
                pass
            self.closed = True
            transport.close()
        else:
            self.closed = True


__all__ = ["H2Connection"]
