"""HTTP/2 pods for the upstream HTTP/2 tests: an h2c echo pod written with `h2` on a real socket, a real grpcio
server with a tiny service (bytes in, bytes out: no protoc), and an HTTP/1.1 gRPC client's framing.

The echo pod answers by path: ``/echo`` (the request's headers and body, as JSON), ``/trailers`` (a body, then
trailer fields), ``/hints`` (103 Early Hints, then a body; any request with Expect: 100-continue gets a 100 first),
``/big?n=N`` (N bytes), ``/hold`` (answers when `release` is set), ``/hang`` (never answers),
``/refuse`` (RST_STREAM REFUSED_STREAM, see `refuse_first`), ``/partial`` (a gRPC answer begun, then reset),
``/unavailable`` (a plain 503, no grpc-status), ``/bad-status`` (a gRPC answer whose trailer grpc-status is not
a number).
It records what the proxy did: connections, the most streams open at once on one connection, resets.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

from server_harness import TIMEOUT, connect

_BIG = memoryview(b"b" * (64 << 20))


class H2Pod:
    """An h2c server (prior knowledge) on its own loopback address."""

    def __init__(self, host: str = "127.0.0.6", *, max_streams: int = 100, goaway_on: int = 0,
                 context: ssl.SSLContext | None = None) -> None:
        self.host = host
        # TLS (its ALPN set to h2 here: what an HTTP/2 pod over TLS offers); None: h2c with prior knowledge.
        self.context = context
        if context is not None:
            context.set_alpn_protocols(["h2"])
        self.port = 0
        self.max_streams = max_streams
        # The n-th request (over the pod's life, counted from 1) gets GOAWAY instead of an answer: its stream and
        # the ones after it are above the GOAWAY's last-stream-id, so the proxy must send them again elsewhere.
        self.goaway_on = goaway_on
        # Requests to /refuse... get RST_STREAM REFUSED_STREAM: the first `refuse_first` of them (-1: all).
        self.refuse_first = -1
        self.refused = 0
        # While True, request bodies are not acknowledged: the proxy's window runs out (see release_window).
        self.hold_window = False
        self.received = 0  # request body bytes received, all streams
        self.requests = 0
        self.connections = 0
        self.most_streams = 0  # the most streams open at once on one connection
        self.resets: list[int] = []  # error codes of RST_STREAMs the proxy sent
        self.seen: list[dict[str, str]] = []  # the headers of every request (pseudo-headers included)
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.transports: list[asyncio.Transport] = []
        self.protocols: list[_H2PodConnection] = []

    @property
    def held_back(self) -> int:
        """Response bytes the pod cannot send for want of the proxy's flow-control window."""
        return sum(len(data) for protocol in self.protocols for data in protocol.outgoing.values())

    @staticmethod
    def path_of(head: dict[str, str]) -> str:
        return head.get(":path", "")

    def release_window(self) -> None:
        """Acknowledge what was held back and from now on everything (the proxy may send the rest)."""
        self.hold_window = False
        for protocol in self.protocols:
            for length, stream_id in protocol.unacked:
                try:
                    protocol.conn.acknowledge_received_data(length, stream_id)
                except h2.exceptions.StreamClosedError:
                    pass
            protocol.unacked.clear()
            protocol.flush()

    async def start(self) -> H2Pod:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _H2PodConnection(self), self.host, 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.close()
            for transport in self.transports:
                transport.abort()
            await self.server.wait_closed()


class _H2PodConnection(asyncio.Protocol):
    def __init__(self, pod: H2Pod) -> None:
        self.pod = pod
        config = h2.config.H2Configuration(client_side=False, header_encoding="latin-1")
        self.conn = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.bodies: dict[int, bytearray] = {}
        self.heads: dict[int, dict[str, str]] = {}
        self.open: set[int] = set()
        self.outgoing: dict[int, bytes | memoryview] = {}  # response bodies waiting for the proxy's window
        self.unacked: list[tuple[int, int]] = []  # (length, stream) of DATA not acknowledged (hold_window)
        self.gone = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pod.transports.append(self.transport)  # type: ignore[arg-type]
        self.pod.protocols.append(self)
        self.pod.connections += 1
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.pod.max_streams})
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self.heads[event.stream_id] = dict(event.headers)  # type: ignore[arg-type]
                self.bodies[event.stream_id] = bytearray()
                self.open.add(event.stream_id)
                self.pod.most_streams = max(self.pod.most_streams, len(self.open))
                self.pod.seen.append(self.heads[event.stream_id])
                if self.heads[event.stream_id].get("expect", "").lower() == "100-continue":
                    self.conn.send_headers(event.stream_id, [(":status", "100")])
            elif isinstance(event, h2.events.DataReceived):
                self.pod.received += len(event.data)
                if not self.pod.path_of(self.heads[event.stream_id]).startswith("/count"):
                    self.bodies[event.stream_id] += event.data
                if self.pod.hold_window:
                    self.unacked.append((event.flow_controlled_length, event.stream_id))
                else:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.request_complete(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.pod.resets.append(event.error_code)
                self.open.discard(event.stream_id)
                self.outgoing.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated):
                self.send_pending()
        self.flush()

    def request_complete(self, stream_id: int) -> None:
        pod = self.pod
        pod.requests += 1
        head = self.heads[stream_id]
        path = head[":path"]
        if pod.goaway_on and pod.requests == pod.goaway_on:
            pod.goaway_on = 0
            self.conn.close_connection(last_stream_id=stream_id - 2)
            self.flush()
            self.gone = True
            return
        if path.startswith("/refuse") and (pod.refuse_first < 0 or pod.refused < pod.refuse_first):
            pod.refused += 1
            self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            self.open.discard(stream_id)
            return
        if path.startswith("/partial"):  # a gRPC answer begun, then the stream reset (the pod failed)
            self.conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
            self.conn.send_data(stream_id, frame(b"first"))
            self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            self.open.discard(stream_id)
            return
        if path.startswith("/drain"):
            # A graceful GOAWAY naming this stream as the last one it serves, then its answer: written beside the
            # h2 state machine, which would refuse to send anything after its own close_connection.
            goaway = hyperframe.frame.GoAwayFrame(0)
            goaway.last_stream_id = stream_id
            self.flush()
            if self.transport is not None:
                self.transport.write(goaway.serialize())
            self.answer(stream_id)
            return
        if path.startswith("/hold"):
            asyncio.get_running_loop().create_task(self.answer_when_released(stream_id))
        elif path.startswith("/hang"):
            return
        else:
            self.answer(stream_id)

    async def answer_when_released(self, stream_id: int) -> None:
        await self.pod.release.wait()
        if stream_id in self.open and self.transport is not None and not self.transport.is_closing():
            self.answer(stream_id)
            self.flush()

    def answer(self, stream_id: int) -> None:
        head = self.heads[stream_id]
        path = head[":path"]
        body = bytes(self.bodies[stream_id])
        trailers = None
        if path.startswith("/count"):
            data = json.dumps({"received": self.pod.received}).encode()
            headers = [(":status", "200"), ("content-type", "application/json")]
        elif path.startswith("/big"):
            data = _BIG[:int(path.partition("n=")[2])]  # (a view: many big answers cost the pod no memory)
            headers = [(":status", "200"), ("content-length", str(len(data)))]
        elif path.startswith("/hints"):  # 103 Early Hints, then the answer
            self.conn.send_headers(stream_id, [(":status", "103"), ("link", "</style.css>; rel=preload")])
            data = b"hinted"
            headers = [(":status", "200"), ("content-type", "text/plain")]
        elif path.startswith("/unavailable"):
            data = b"overloaded"
            headers = [(":status", "503"), ("content-type", "text/plain")]
        elif path.startswith("/bad-status"):
            data = frame(b"m")
            headers = [(":status", "200"), ("content-type", "application/grpc")]
            trailers = [("grpc-status", "OK")]
        elif path.startswith("/trailers"):
            data = b"some body"
            headers = [(":status", "200"), ("content-type", "text/plain")]
            trailers = [("x-checksum", "abc"), ("grpc-status", "0")]
        else:
            data = json.dumps({"headers": head, "body": body.decode("latin-1")}).encode()
            headers = [(":status", "200"), ("content-type", "application/json"), ("x-pod", self.pod.host)]
        self.conn.send_headers(stream_id, headers)
        self.outgoing[stream_id] = data
        self.send_pending(trailers={stream_id: trailers} if trailers else None)

    def send_pending(self, trailers: dict[int, Any] | None = None) -> None:
        for stream_id in list(self.outgoing):
            data = self.outgoing[stream_id]
            while data:
                window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                if window <= 0:
                    break
                self.conn.send_data(stream_id, bytes(data[:window]))
                data = data[window:]
            self.outgoing[stream_id] = data
            if not data:
                del self.outgoing[stream_id]
                extra = (trailers or {}).get(stream_id)
                if extra:
                    self.conn.send_headers(stream_id, extra, end_stream=True)
                else:
                    self.conn.end_stream(stream_id)
                self.open.discard(stream_id)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


# ------------------------------------------------------------------ gRPC

SERVICE = "test.Echo"


def frame(message: bytes) -> bytes:
    """One gRPC message as the wire carries it: a compressed flag, a 4-byte length, the bytes."""
    return struct.pack(">BI", 0, len(message)) + message


def unframe(data: bytes) -> list[bytes]:
    messages = []
    while data:
        _, length = struct.unpack(">BI", data[:5])
        messages.append(data[5:5 + length])
        data = data[5 + length:]
    return messages


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request.startswith(b"fail:"):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, request[5:].decode())
    if request.startswith(b"sleep:"):
        context.set_trailing_metadata((("x-slept", "yes"),))
        threading.Event().wait(float(request[6:]))  # a slow handler (the proxy's grpc-timeout is tested)
    return b"echo:" + request


def _server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for index in range(int(request)):
        yield b"item-%d" % index


def _client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"+".join(requests)


class GrpcPod:
    """A real grpcio server (its own threads) on a loopback address, serving test.Echo: Unary, ServerStream,
    ClientStream, all bytes in and out."""

    def __init__(self, host: str = "127.0.0.7") -> None:
        self.host = host
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port(f"{host}:0")

    def start(self) -> GrpcPod:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None)


class GrpcAnswer:
    """A gRPC response as an HTTP/1.1 client reads it: status, head, messages, trailers (chunked trailers)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, trailers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.trailers = trailers

    @property
    def messages(self) -> list[bytes]:
        return unframe(self.body)

    @property
    def grpc_status(self) -> str | None:
        """grpc-status from the trailers, or from the head (a trailers-only answer)."""
        return self.trailers.get("grpc-status", self.headers.get("grpc-status"))

    @property
    def grpc_message(self) -> str | None:
        return self.trailers.get("grpc-message", self.headers.get("grpc-message"))


async def read_grpc_answer(reader: asyncio.StreamReader) -> GrpcAnswer:
    """One HTTP/1.1 response, keeping the chunked body's trailer fields (the harness's reader drops them)."""
    async with asyncio.timeout(TIMEOUT):
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        trailers: dict[str, str] = {}
        if headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (line_bytes := await reader.readuntil(b"\r\n")) != b"\r\n":
                        name, _, value = line_bytes.decode("latin-1").partition(":")
                        trailers[name.strip().lower()] = value.strip()
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(parts)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read(-1)  # no length: the body ends with the connection (RFC 9112 6.3)
    return GrpcAnswer(status, headers, body, trailers)


async def grpc_call(port: int, method: str, *messages: bytes, host: str = "grpc.example", te: bool = True,
                    headers: tuple[tuple[str, str], ...] = (), chunked: bool = False) -> GrpcAnswer:
    """A gRPC call made by an HTTP/1.1 client: POST /test.Echo/<method>, application/grpc, TE: trailers, the
    messages length-prefixed (as one body with Content-Length, or as chunks, one per message)."""
    reader, writer = await connect(port)
    try:
        lines = [f"POST /{SERVICE}/{method} HTTP/1.1", f"Host: {host}", "Content-Type: application/grpc"]
        if te:
            lines.append("TE: trailers")
        lines += [f"{name}: {value}" for name, value in headers]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            for message in messages:
                data = frame(message)
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            body = b"".join(frame(m) for m in messages)
            lines.append(f"Content-Length: {len(body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await read_grpc_answer(reader)
    finally:
        writer.close()
