"""A real HTTP/2 client for the tests: the `h2` library's client state machine driving a real socket.

It can be a polite client (acknowledges what it reads, respects the proxy's windows) or a rude one (stops
reading a stream, writes raw frames the state machine would refuse), which is what the defences are tested
with. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

TIMEOUT = 10.0


@dataclass
class Stream:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    interim: list[list[tuple[bytes, bytes]]] = field(default_factory=list)  # 1xx answers' headers, in order
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reset: int | None = None  # the RST_STREAM error code the proxy sent
    done: asyncio.Event = field(default_factory=asyncio.Event)
    data: asyncio.Event = field(default_factory=asyncio.Event)  # set at each DATA frame
    unacked: int = 0

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers).get(name)

    def json(self) -> dict:
        import json

        return json.loads(bytes(self.body))


class H2Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, read: bool = True) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.streams: dict[int, Stream] = {}
        # False: DATA is not acknowledged (the client's windows close), until read() is called for a stream.
        self.acknowledging = read
        self.goaway: ConnectionTerminated | None = None
        self.got_goaway = asyncio.Event()
        self.closed = asyncio.Event()
        self.window = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int, *, context: ssl.SSLContext | None = None, server_hostname: str | None = None,
                      read: bool = True, host: str = "127.0.0.1") -> H2Client:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=server_hostname), TIMEOUT)
        client = cls(reader, writer, read=read)
        client.conn.initiate_connection()
        client.flush()
        client.task = asyncio.get_running_loop().create_task(client._read_loop())
        return client

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    events = self.conn.receive_data(data)
                except ProtocolError:
                    break
                for event in events:
                    self._on(event)
                self.flush()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed.set()
            for stream in self.streams.values():
                stream.done.set()
                stream.data.set()

    def _on(self, event: object) -> None:
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, ResponseReceived) and stream is not None:
            stream.headers = list(event.headers)  # type: ignore[arg-type]
        elif isinstance(event, InformationalResponseReceived) and stream is not None:
            stream.interim.append(list(event.headers))  # type: ignore[arg-type]
        elif isinstance(event, DataReceived) and stream is not None:
            stream.body += event.data
            if self.acknowledging:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif event.flow_controlled_length:
                # A slow reader of this stream only: the connection's window stays open for the others.
                self.conn.increment_flow_control_window(event.flow_controlled_length)
                stream.unacked += event.flow_controlled_length
            stream.data.set()
        elif isinstance(event, TrailersReceived) and stream is not None:
            stream.trailers = list(event.headers)  # type: ignore[arg-type]
        elif isinstance(event, StreamEnded) and stream is not None:
            stream.done.set()
        elif isinstance(event, StreamReset) and stream is not None:
            stream.reset = int(event.error_code)
            stream.done.set()
        elif isinstance(event, WindowUpdated):
            self.window.set()
        elif isinstance(event, ConnectionTerminated):
            self.goaway = event
            self.got_goaway.set()

    def request(self, path: str = "/", *, method: str = "GET", authority: str = "app.example",
                body: bytes | None = None, headers: list[tuple[str, str]] = (), end: bool = True,
                scheme: str = "http") -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.streams[stream_id] = Stream()
        fields = [(":method", method), (":path", path), (":scheme", scheme), (":authority", authority), *headers]
        self.conn.send_headers(stream_id, fields, end_stream=end and not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.flush()
        return stream_id

    async def send_body(self, stream_id: int, data: bytes, *, end: bool = True) -> None:
        """Send `data` as the proxy's windows allow (waits for its WINDOW_UPDATEs)."""
        view = memoryview(data)
        async with asyncio.timeout(TIMEOUT):
            while view:
                room = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                if room <= 0:
                    self.window.clear()
                    await self.window.wait()
                    continue
                piece, view = view[:room], view[room:]
                self.conn.send_data(stream_id, bytes(piece), end_stream=end and not view)
                self.flush()
            if end and not data:
                self.conn.end_stream(stream_id)
                self.flush()

    def reset(self, stream_id: int, code: int = 8) -> None:
        self.conn.reset_stream(stream_id, code)
        self.flush()

    def read(self, stream_id: int) -> None:
        """Acknowledge what this stream received so far (a slow reader catching up)."""
        stream = self.streams[stream_id]
        if stream.unacked:
            self.conn.increment_flow_control_window(stream.unacked, stream_id=stream_id)
            stream.unacked = 0
            self.flush()

    async def response(self, stream_id: int, timeout: float = TIMEOUT) -> Stream:
        stream = self.streams[stream_id]
        await asyncio.wait_for(stream.done.wait(), timeout)
        return stream

    async def get(self, path: str = "/", **kwargs: object) -> Stream:
        return await self.response(self.request(path, **kwargs))  # type: ignore[arg-type]

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass


class RawH2:
    """A rude client: the preface, the settings exchange, then frames as the test writes them (hyperframe and
    hpack, no state machine to stop it); reads the proxy's frames until it closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.encoder = Encoder()
        self.buffer = b""
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, port: int) -> RawH2:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        raw = cls(reader, writer)
        writer.write(PREFACE + SettingsFrame(0).serialize())
        async with asyncio.timeout(TIMEOUT):
            while not any(isinstance(f, SettingsFrame) and "ACK" not in f.flags for f in raw.frames):
                await raw._read()
        writer.write(SettingsFrame(0, flags=["ACK"]).serialize())
        await writer.drain()
        return raw

    async def _read(self) -> bool:
        data = await self.reader.read(65536)
        if not data:
            return False
        self.buffer += data
        while len(self.buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
            if len(self.buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
            self.buffer = self.buffer[9 + length :]
            self.frames.append(frame)
        return True

    async def read_until(self, condition: Callable[[Frame], bool], timeout: float = TIMEOUT) -> Frame:
        """Read frames until one satisfies `condition` (the connection must stay open until then)."""
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames:
                    if condition(frame):
                        return frame
                assert await self._read(), f"closed before the frame came: {self.frames[-5:]}"

    def header_block(self, path: str, *, method: str = "GET", authority: str = "app.example",
                     extra: list[tuple[str, str]] = ()) -> bytes:
        return self.encoder.encode([(":method", method), (":path", path), (":scheme", "http"),
                                    (":authority", authority), *extra], huffman=False)

    def headers(self, stream_id: int, path: str = "/", *, end_stream: bool = True, **kwargs: object) -> bytes:
        frame = HeadersFrame(stream_id)
        frame.data = self.header_block(path, **kwargs)  # type: ignore[arg-type]
        frame.flags = {"END_HEADERS", *(["END_STREAM"] if end_stream else [])}
        return frame.serialize()

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    async def goaway(self, timeout: float = TIMEOUT) -> GoAwayFrame:
        """Read until the proxy closes the connection; its GOAWAY (which must have come)."""
        await self.closed(timeout)
        goaways = [frame for frame in self.frames if isinstance(frame, GoAwayFrame)]
        assert goaways, f"closed without GOAWAY: {self.frames[-5:]}"
        return goaways[-1]

    async def ping(self, opaque: bytes = b"pingpong", timeout: float = TIMEOUT) -> None:
        """PING and wait for its ACK: every frame sent before it has been processed by the proxy."""
        frame = PingFrame(0)
        frame.opaque_data = opaque
        self.send(frame.serialize())
        await self.read_until(lambda f: isinstance(f, PingFrame) and "ACK" in f.flags
                              and f.opaque_data == opaque, timeout)

    async def closed(self, timeout: float = TIMEOUT) -> None:
        """Read until the proxy closes the connection."""
        async with asyncio.timeout(timeout):
            try:
                while await self._read():
                    pass
            except ConnectionError:
                pass

    def stream_frames(self, stream_id: int) -> list[Frame]:
        return [frame for frame in self.frames if frame.stream_id == stream_id]

    def ended(self, stream_id: int) -> bool:
        """The proxy ended the stream (END_STREAM, or RST_STREAM)."""
        return any(isinstance(frame, RstStreamFrame) or "END_STREAM" in frame.flags
                   for frame in self.stream_frames(stream_id))

    def response(self, stream_id: int) -> tuple[dict[bytes, bytes], bytes]:
        """A stream's response as read so far: its first header block (decoded in arrival order with every
        other block, as HPACK requires), and its DATA."""
        decoder = Decoder()
        heads: dict[int, dict[bytes, bytes]] = {}
        body = bytearray()
        for frame in self.frames:
            if isinstance(frame, HeadersFrame):  # (the proxy sends whole blocks: no CONTINUATION)
                fields = dict(decoder.decode(bytes(frame.data), raw=True))
                heads.setdefault(frame.stream_id, fields)
            elif isinstance(frame, DataFrame) and frame.stream_id == stream_id:
                body += frame.data
        return heads.get(stream_id, {}), bytes(body)

    def close(self) -> None:
        self.writer.close()


def goaway_frame(last_stream_id: int = 0, code: int = 0) -> bytes:
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = code
    return frame.serialize()


def rst_stream(stream_id: int, code: int = 8) -> bytes:
    frame = RstStreamFrame(stream_id)
    frame.error_code = code
    return frame.serialize()


def data_frame(stream_id: int, data: bytes = b"", *, end_stream: bool = False) -> bytes:
    frame = DataFrame(stream_id)
    frame.data = data
    frame.flags = {"END_STREAM"} if end_stream else set()
    return frame.serialize()


def continuation(stream_id: int, data: bytes, *, end_headers: bool = False) -> bytes:
    frame = ContinuationFrame(stream_id)
    frame.data = data
    frame.flags = {"END_HEADERS"} if end_headers else set()
    return frame.serialize()
