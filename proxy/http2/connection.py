"""The HTTP/2 client side: one asyncio protocol per client connection that chose h2.

A connection becomes HTTP/2 in one of two ways, decided once when it starts (the HTTP/1.1 class does no
per-request work for it): on a TLS listener the client picked ``h2`` by ALPN (ClientConnection.connection_made
hands the connection over), on a plain listener its first bytes are the HTTP/2 connection preface (h2c with
prior knowledge, see proxy/http2/preface.py). ``Upgrade: h2c`` is not honoured: such requests are served as
HTTP/1.1, as before.

The frame state machine, HPACK and the flow-control bookkeeping are the ``h2`` library's; this class turns
its events into `H2Stream`s (proxy/http2/stream.py), each of which runs the same pipeline and exchange as an
HTTP/1.1 request. Output of one callback is written with one ``transport.write``.

The client's GOAWAY (RFC 9113 6.8) means it opens no more streams: the ones it already opened are answered,
then the connection closes. (h2 would close its side at once and drop those answers: see `GracefulH2`.)

Defences (the 2023 rapid-reset and 2024 CONTINUATION-flood attacks, as nginx and Envoy bound them); a client
over a limit gets GOAWAY and the connection closes, other connections are not touched:

* at most MAX_STREAMS concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS): a stream over it is refused alone
  (RST_STREAM REFUSED_STREAM, RFC 9113 5.1.2, as nginx does), the connection goes on;
* at most RESET_LIMIT streams reset by the client, or refused by us, per second (ENHANCE_YOUR_CALM): a client
  that keeps opening streams over the limit is treated as a rapid reset;
* header blocks: SETTINGS_MAX_HEADER_LIST_SIZE, enforced by h2's HPACK decoder (a connection error), and each
  request's fields against --max-header-bytes / --max-headers as on HTTP/1.1 (431 on that stream); h2 buffers
  at most CONTINUATION_BACKLOG CONTINUATION frames of one block (a connection error beyond);
* at most EMPTY_LIMIT DATA frames without data and without END_STREAM per second (ENHANCE_YOUR_CALM).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import h2.frame_buffer
from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from proxy.http.downstream import connection_closed, connection_opened, connection_replaced
from proxy.http.ids import REQUEST_ID, ids
from proxy.http.request_fields import add_field
from proxy.http2.framing import AdvertisedSettings, ServerH2
from proxy.http2.stream import H2Stream, fields_of
from proxy.tls.client_auth import client_certificate
from proxy.upstream.errors import BadRequest
from proxy.upstream.h2_batching import BatchedWrites
from proxy.upstream.hpack_encoder import PairEncoder

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.http.h1_connection import ClientConnection
    from proxy.http.listener import Listener
    from proxy.http.pipeline import Pipeline
    from proxy.routing.request import ClientCertificate
    from proxy.server import ProxyServer

logger = logging.getLogger("pyngress.proxy")

# nginx's http2_max_concurrent_streams.
MAX_STREAMS = 128
# Client resets per second before the connection is closed: far above what a browser cancelling navigations
# sends, far below a rapid-reset attack (which resets thousands of streams per second on one connection).
RESET_LIMIT = 100
# Empty DATA frames per second (they cost a frame's work and carry nothing; nghttp2 bounds them the same way).
EMPTY_LIMIT = 100
# Each stream's receive window (the most request body the proxy holds for one stream), and the connection's:
# large enough that streams blocked on their upstream never starve the others (MAX_STREAMS full windows fit).
STREAM_WINDOW = 65535
CONNECTION_WINDOW = 16 * 1024 * 1024

# CONTINUATION frames h2 buffers for one header block before it calls the connection broken (its default is
# 64, a megabyte of 16 KiB frames to HPACK-decode in Python): with the HEADERS frame, a block of at most
# 9 x 16 KiB, far above what a compressed request head of --max-header-bytes needs.
h2.frame_buffer.CONTINUATION_BACKLOG = 8

_NO_ERROR = ErrorCodes.NO_ERROR
_REFUSED_STREAM = ErrorCodes.REFUSED_STREAM
_CALM = ErrorCodes.ENHANCE_YOUR_CALM


def take_over(conn: ClientConnection, data: bytes) -> None:
    """Serve `conn`'s transport as HTTP/2 from now on (`data`: what was already read of it).

    Called by the HTTP/1.1 connection once, before it read any request: from connection_made (ALPN chose h2;
    not yet registered with the server) or from the preface sniffer's first read (registered: replaced)."""
    server = conn.server
    h2 = H2ClientConnection(server, conn.listener, conn.pipeline)
    h2.client_ip = conn.client_ip
    h2.scheme = conn.scheme
    h2.forwarded = conn.forwarded
    h2.forwarded_ip_end = conn.forwarded_ip_end
    h2.server_name = conn.server_name
    transport = conn.transport
    transport.set_protocol(h2)
    registered = connection_replaced(server, conn, h2)  # registered: the counts stay (it is the same connection)
    h2.start(transport)
    if not registered:
        connection_opened(server, h2, h2.listener)
    conn.parser = None  # (it refers back to conn)
    if data and not h2.closed:
        h2.data_received(data)


class H2ClientConnection(BatchedWrites, asyncio.Protocol):
    """One HTTP/2 client connection: its streams, the h2 state machine, flow control, defences, draining."""

    __slots__ = ("server", "listener", "pipeline", "transport", "h2", "streams", "client_ip", "scheme", "forwarded",
                 "forwarded_ip_end", "server_name", "peer_certificate", "closed", "write_paused", "draining",
                 "since", "last_read", "resets", "resets_since", "empty_frames", "empty_since", "last_stream_id",
                 "extra", "extra_fields_parsed")

    def __init__(self, server: ProxyServer, listener: Listener, pipeline: Pipeline) -> None:
        self.server = server
        self.listener = listener
        self.pipeline = pipeline
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by start
        self.h2: ServerH2 = None  # type: ignore[assignment]
        self.streams: dict[int, H2Stream] = {}
        self.client_ip = b""
        self.scheme = listener.scheme
        self.forwarded = b""
        self.forwarded_ip_end = 0
        self.server_name: str | None = None
        self.peer_certificate: ClientCertificate | bool | None = False
        self.closed = False
        self.write_paused = False
        self.draining = False  # GOAWAY sent: no new streams, close once the last one is done
        self.since = server.now  # when the connection last had no stream (its idle timeout)
        self.last_read = server.now
        self.resets = 0
        self.resets_since = server.now
        self.empty_frames = 0
        self.empty_since = server.now
        self.last_stream_id = 0
        # The listener's extra answer fields (HSTS, Server) as h2 pairs, for the bytes they were made from.
        self.extra = b""
        self.extra_fields_parsed: list[tuple[bytes, bytes]] = []
        # A write is scheduled for the end of this loop iteration (see flush_soon).
        self.flushing = False

    def start(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        server = self.server
        # Outbound headers are made here already lower-case and without connection-specific fields (the response
        # reader drops them): h2's normalization and validation of them would only repeat that, per response.
        # Inbound headers are validated by h2; its only inbound normalization, joining cookie crumbs, is done by
        # _read_head (which needs to see them anyway).
        h2 = self.h2 = ServerH2(H2Configuration(client_side=False, header_encoding=None,
                                                validate_outbound_headers=False,
                                                normalize_outbound_headers=False,
                                                normalize_inbound_headers=False))
        h2.local_settings = AdvertisedSettings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
            SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            # HPACK-decoded size (32 bytes per field on top of name and value, RFC 9113), a ceiling above the
            # per-request limit that answers 431.
            SettingCodes.MAX_HEADER_LIST_SIZE: server.max_header_bytes + 32 * server.max_headers,
            SettingCodes.ENABLE_PUSH: 0,
        })
        # Response headers without a dynamic table, each field's bytes made once (proxy/upstream/hpack_encoder.py).
        h2.encoder = PairEncoder()  # type: ignore[assignment]
        h2.initiate_connection()
        h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # (take_over calls start instead)
        self.start(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.last_read = self.server.now
        try:
            events = self.h2.receive_data(data)
        except H2ProtocolError as exc:
            # h2 raises for every connection error (too many streams, an oversized or broken header block,
            # too many CONTINUATION frames, flow-control violations): GOAWAY with its code, then close.
            self.fail(int(getattr(exc, "error_code", None) or ErrorCodes.PROTOCOL_ERROR), str(exc))
            return
        for event in events:
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
                if self.closed:
                    return
        # With the answers of this loop iteration (flush_soon): h2's output for this read (SETTINGS and PING
        # acknowledgements, WINDOW_UPDATEs, refusals) shares their write instead of costing a write of its own.
        self.flush_soon()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        """The connection is gone (lost, or closed by us): every stream's exchange is dropped."""
        self.closed = True
        connection_closed(self.server, self, self.listener)
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.reset = True
            stream.exchange.client_lost()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            if stream.writer.out:
                self.pump(stream)
        self.flush()

    def client_certificate(self) -> ClientCertificate | None:
        known = self.peer_certificate
        if known is False:
            ssl_object = self.transport.get_extra_info("ssl_object") if self.listener.tls else None
            known = self.peer_certificate = client_certificate(ssl_object) if ssl_object is not None else None
        return known  # type: ignore[return-value]  # False replaced above

    # ------------------------------------------------------------------ h2 events

    def _request(self, event: RequestReceived) -> None:
        stream_id = event.stream_id
        h2 = self.h2
        if self.draining or len(self.streams) >= MAX_STREAMS:
            # Opened after a GOAWAY (the client may retry it elsewhere), or over SETTINGS_MAX_CONCURRENT_STREAMS:
            # refuse this stream only (RFC 9113 5.1.2; nginx answers the same), counted with the client's resets
            # so that a client doing it on and on gets GOAWAY.
            h2.reset_stream(stream_id, _REFUSED_STREAM)
            self._count_reset("too many streams refused (over the concurrency limit, or after GOAWAY)")
            return
        self.last_stream_id = stream_id
        stream = H2Stream(self, stream_id)
        self.streams[stream_id] = stream
        ex = stream.exchange
        ended = event.stream_ended is not None
        stream.received_end = ended
        try:
            self._read_head(stream, ex, event.headers, ended)
        except BadRequest as error:
            stream.head = None
            ex.head_done = True
            stream.send_error(ex, error.status, error, close=True)
            return
        except ValueError as error:  # an invalid Content-Length
            stream.head = None
            ex.head_done = True
            stream.send_error(ex, 400, BadRequest(f"malformed request: {error}"), close=True)
            return
        try:
            self.pipeline.dispatch(stream, ex)
            if ended and not ex.finished:
                ex.request_complete()
            if ex.conn is not None and ex.up_out:
                ex.flush_upstream()
        except BadRequest as error:
            ex.abandon()
            stream.send_error(ex, error.status, error, close=True)
        except Exception as exc:  # a bug: answer this stream, keep the others
            logger.exception("error handling an HTTP/2 request from %s", self.client_ip.decode())
            if not ex.finished:
                ex.abandon()
                stream.send_error(ex, 500, exc)

    def _read_head(self, stream: H2Stream, ex: Exchange, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        """Fill the exchange's head from a HEADERS block: pseudo-fields, then every field through the HTTP/1.1
        classification (add_field). ``:authority`` is the Host the pipeline routes by and the pod gets."""
        authority: bytes | None = None
        host: bytes | None = None
        cookies: list[bytes] | None = None
        for name, value in headers:
            if name[:1] == b":":
                if name == b":method":
                    ex.method = value
                elif name == b":path":
                    ex.target = value
                elif name == b":authority":
                    authority = value
                elif name == b":protocol":
                    raise BadRequest("extended CONNECT (:protocol) is not supported", status=501)
            elif name == b"cookie":  # HTTP/2 may split it in crumbs; HTTP/1.1 needs one field (RFC 9113 8.2.3)
                if cookies is None:
                    cookies = [value]
                else:
                    cookies.append(value)
            elif name == b"host":
                host = value
            else:
                add_field(stream, name, value)
        if authority is None:
            authority = host
        if not authority:
            raise BadRequest("missing :authority")
        add_field(stream, b"host", authority)
        if cookies is not None:
            add_field(stream, b"cookie", b"; ".join(cookies))
        if ex.method == b"CONNECT":
            raise BadRequest("CONNECT is not supported", status=405)
        if not ended and ex.content_length < 0:
            ex.chunked = True  # a body of unknown length: chunked to the HTTP/1.1 pod
        stream.head = None
        ex.head_done = True
        pool, at = ids.take()
        ex.id_pool = pool
        ex.id_at = at
        if not ex.request_id:
            ex.request_id = pool[at : at + REQUEST_ID]
        ex.server_name = self.server_name
        self.server.total_requests += 1

    def _data(self, event: DataReceived) -> None:
        stream_id = event.stream_id
        size = event.flow_controlled_length
        data = event.data
        if not data and event.stream_ended is None:
            now = self.server.now
            if now - self.empty_since > 1.0:
                self.empty_since = now
                self.empty_frames = 0
            self.empty_frames += 1
            if self.empty_frames > EMPTY_LIMIT:
                self.fail(_CALM, "too many empty DATA frames")
                return
        stream = self.streams.get(stream_id)
        if stream is None or stream.reset or stream.exchange.finished:
            if size:
                self.h2.acknowledge_received_data(size, stream_id)  # discarded: the window reopens at once
            return
        stream.last_read = self.server.now
        ex = stream.exchange
        if data:
            try:
                ex.add_body(data)
            except BadRequest as error:  # a body over proxy-body-size
                ex.abandon()
                stream.send_error(ex, error.status, error, close=True)
                self.h2.acknowledge_received_data(size, stream_id)
                return
            if ex.conn is not None:
                ex.flush_upstream()
        if size:
            if stream.blocked:
                stream.unacked += size  # acknowledged once the exchange can take more (H2Stream.unblock)
            else:
                self.h2.acknowledge_received_data(size, stream_id)

    def _ended(self, event: StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        stream.received_end = True
        ex = stream.exchange
        if not ex.finished and ex.head_done and not ex.req_done:
            ex.request_complete()
            if ex.conn is not None and ex.up_out:
                ex.flush_upstream()
        self.stream_done(stream)

    def _reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            stream.reset = True
            stream.writer.out.clear()
            stream.exchange.client_lost()  # cancels its upstream request (or only accounts a finished one)
            self._idle_check()
        if event.remote_reset:
            self._count_reset("too many streams reset by the client (rapid reset)")

    def _count_reset(self, why: str) -> None:
        """One stream reset by the client or refused by us: over RESET_LIMIT per second, GOAWAY."""
        now = self.server.now
        if now - self.resets_since > 1.0:
            self.resets_since = now
            self.resets = 0
        self.resets += 1
        if self.resets > RESET_LIMIT:
            self.fail(_CALM, why)

    def _window(self, event: WindowUpdated) -> None:
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream.writer.out:
                self.pump(stream)
        else:
            self._pump_all()

    def _settings(self, event: RemoteSettingsChanged) -> None:
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._pump_all()

    def _terminated(self, event: ConnectionTerminated) -> None:
        """The client's GOAWAY: it opens no more streams; the ones it opened are answered, then the connection
        closes (its last-stream-id names streams we opened, and we open none). A GOAWAY with an error code says
        the client gives the connection up: close now."""
        self.draining = True
        if event.error_code:
            self.transport.close()
            self._gone()
            return
        if not self.streams:
            self.flush()
            self.transport.close()

    # ------------------------------------------------------------------ output

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def extra_fields(self, raw: bytes) -> list[tuple[bytes, bytes]]:
        """The listener's extra answer fields as h2 pairs (parsed again only when the listener's change)."""
        if raw is not self.extra:
            self.extra = raw
            self.extra_fields_parsed = fields_of(raw)
        return self.extra_fields_parsed

    def send_headers(self, stream: H2Stream, headers: list[tuple[bytes, bytes]], *, end: bool) -> None:
        if stream.reset or stream.ended:
            return
        try:
            self.h2.send_headers(stream.stream_id, headers, end_stream=end)
        except H2ProtocolError:  # the stream is closed, or the client's GOAWAY closed h2's side of the connection
            stream.reset = True
            return
        if end:
            stream.ending = stream.ended = True
            self.stream_done(stream)

    def pump(self, stream: H2Stream) -> int:
        """Send the stream's queued body as far as the windows allow; pause or resume its upstream to match.
        Returns the DATA bytes sent."""
        out = stream.writer.out
        if stream.reset or stream.ended:
            out.clear()
            return 0
        h2 = self.h2
        stream_id = stream.stream_id
        sent = 0
        try:
            while out:
                chunk = out[0]
                if isinstance(chunk, list):  # the trailers: HEADERS with END_STREAM, after the body
                    out.popleft()
                    h2.send_headers(stream_id, chunk, end_stream=True)
                    stream.ended = True
                    break
                if not chunk:  # the end (after a body sent in an earlier call)
                    out.popleft()
                    h2.end_stream(stream_id)
                    stream.ended = True
                    break
                if self.write_paused:
                    break
                room = min(h2.local_flow_control_window(stream_id), h2.max_outbound_frame_size)
                if room <= 0:
                    break
                if len(chunk) <= room:
                    out.popleft()
                    last = len(out) == 1 and not out[0]
                    h2.send_data(stream_id, chunk, end_stream=last)
                    sent += len(chunk)
                    if last:
                        out.popleft()
                        stream.ended = True
                        break
                else:
                    h2.send_data(stream_id, chunk[:room])
                    out[0] = chunk[room:]
                    sent += room
        except H2ProtocolError:  # (closed: see send_headers)
            stream.reset = True
            out.clear()
        paused = bool(out)
        if paused != stream.write_paused:
            stream.write_paused = paused
            conn = stream.exchange.conn
            if paused:
                stream.write_paused_since = self.server.now
                if conn is not None:
                    conn.pause_reading()
            elif conn is not None:
                conn.resume_reading()
        self.flush_soon()
        if stream.ended:
            self.stream_done(stream)
        return sent

    def _pump_all(self) -> None:
        for stream in list(self.streams.values()):
            if stream.writer.out:
                self.pump(stream)

    def acknowledge(self, stream: H2Stream, size: int) -> None:
        """Reopen the client's window for `size` request body bytes of `stream` (they went upstream)."""
        if not self.closed:
            try:
                self.h2.acknowledge_received_data(size, stream.stream_id)
            except H2ProtocolError:  # (as above)
                return
            self.flush()

    # ------------------------------------------------------------------ stream endings

    def stream_done(self, stream: H2Stream) -> None:
        """Forget a stream whose exchange is over and whose response is sent (or that was reset); write what
        its ending left (a HEAD answer's HEADERS are not followed by a flush of the exchange's)."""
        if not (stream.reset or (stream.ended and stream.exchange.finished)):
            return
        if self.streams.pop(stream.stream_id, None) is None:
            self.flush_soon()
            return
        if not stream.received_end and not stream.reset:
            # Answered before the request body was complete: stop the client sending it (RFC 9113 8.1).
            try:
                self.h2.reset_stream(stream.stream_id, _NO_ERROR)
            except H2ProtocolError:  # (closed: see send_headers)
                pass
        self.flush_soon()
        self._idle_check()

    def reset_stream(self, stream: H2Stream, code: int) -> None:
        if stream.reset:
            return
        stream.reset = True
        stream.writer.out.clear()
        if not stream.ended:
            try:
                self.h2.reset_stream(stream.stream_id, code)
            except H2ProtocolError:  # (closed: see send_headers)
                pass
        self.streams.pop(stream.stream_id, None)
        self.flush()
        self._idle_check()

    def _idle_check(self) -> None:
        if not self.streams:
            self.since = self.server.now
            if self.draining and not self.closed:
                self.flush()
                self.transport.close()

    def fail(self, code: int, why: str) -> None:
        """A connection error: GOAWAY with `code`, then close (the streams' exchanges are dropped)."""
        if self.closed:
            return
        logger.info("HTTP/2 connection from %s closed: %s", self.client_ip.decode("latin-1"), why)
        try:
            self.h2.close_connection(error_code=code, last_stream_id=self.last_stream_id)
        except H2ProtocolError:
            pass
        self.flush()
        self.transport.close()
        self._gone()

    # ------------------------------------------------------------------ the server's clock and draining

    def check(self, now: float) -> None:
        if self.closed:
            return
        if not self.streams:
            if now - self.since > self.server.keepalive_timeout:
                self._goaway()
                self.transport.close()
            return
        send_timeout = self.server.send_timeout
        for stream in list(self.streams.values()):
            ex = stream.exchange
            if not ex.finished:
                ex.check(now)
            elif stream.write_paused and now - stream.write_paused_since > send_timeout:
                # Answered upstream, but the client does not read the rest (nginx's send_timeout): drop the stream.
                self.reset_stream(stream, 8)

    def close_idle(self) -> bool:
        """Draining (SIGTERM, a retired listener): GOAWAY now, so the client opens no more streams; streams in
        flight finish, then the connection closes. True when it closed at once (no stream in flight)."""
        if self.closed:
            return False
        if not self.draining:
            self.draining = True
            self._goaway()
        if not self.streams:
            self.transport.close()
            return True
        return False

    def _goaway(self) -> None:
        """A graceful GOAWAY (NO_ERROR, the last stream this connection will serve), written beside h2's state
        machine, which would refuse to send anything after its own close_connection."""
        if self.closed:
            return
        self.flush()
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.last_stream_id
        frame.error_code = 0
        self.transport.write(frame.serialize())


_HANDLERS: dict[type, Any] = {
    RequestReceived: H2ClientConnection._request,
    DataReceived: H2ClientConnection._data,
    StreamEnded: H2ClientConnection._ended,
    StreamReset: H2ClientConnection._reset,
    WindowUpdated: H2ClientConnection._window,
    RemoteSettingsChanged: H2ClientConnection._settings,
    ConnectionTerminated: H2ClientConnection._terminated,
}
