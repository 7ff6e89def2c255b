"""The fallback backend when nginx is not installed: a small asyncio HTTP/1.1 server, run as its own process.

`python -m bench.backend --port 0 --port 0` serves, on every port it is given (0 = free port):
`/64k` (65,536 bytes), `POST /upload` (reads the whole body, answers "ok"), anything else
SMALL_BODY (100 bytes). Keep-alive, Content-Length or chunked request bodies (httptools does the
parsing). It prints `bench-backend listening 127.0.0.1:A 127.0.0.1:B` once every port is bound.
It is slower than nginx, so with it the numbers say more about the backend than the proxy.

A failure switch for the chaos scenario: `--fail-ratio R` answers a random share R of requests
with `--fail-status` (503) instead, and `GET /_bench/fail?ratio=R` changes R while it runs (it
answers "ok"; ratio 0 heals it).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys

import httptools

SMALL_BODY = b"pyngress-bench " + b"x" * 84 + b"\n"  # 100 bytes, like a small JSON answer
LARGE_BODY = bytes(range(256)) * 256  # 64 KiB
UPLOAD_REPLY = b"ok\n"
assert len(SMALL_BODY) == 100 and len(LARGE_BODY) == 65536


def _response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


_SMALL = _response(SMALL_BODY)
_LARGE = _response(LARGE_BODY)
_UPLOAD = _response(UPLOAD_REPLY)
_OK = _response(b"ok\n")


class Failures:
    """The share of requests answered with an error (the chaos scenario's failing pod)."""

    ratio = 0.0
    answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    draw = random.Random(11).random


class BackendProtocol(asyncio.Protocol):
    """One client connection; answers each request once its body has been read completely."""

    __slots__ = ("parser", "received", "transport", "url")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self._close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.received = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.received += len(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        path, _, query = self.url.partition(b"?")
        if Failures.ratio and Failures.draw() < Failures.ratio:
            transport.write(Failures.answer)
        elif path == b"/_bench/fail":
            Failures.ratio = float(query.partition(b"ratio=")[2].split(b"&")[0] or b"0")
            transport.write(_OK)
        elif path == b"/upload":
            transport.write(_UPLOAD)
        elif path == b"/64k":
            transport.write(_LARGE)
        else:
            transport.write(_SMALL)
        if not self.parser.should_keep_alive():
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(bind: str, ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(BackendProtocol, bind, port, backlog=4096) for port in ports]
    bound = [s.sockets[0].getsockname()[1] for s in servers]
    print("bench-backend listening " + " ".join(f"{bind}:{p}" for p in bound), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backend", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, action="append", default=[], help="repeatable; 0 = a free port")
    parser.add_argument("--fail-ratio", type=float, default=0.0, help="share of requests answered with an error")
    parser.add_argument("--fail-status", type=int, default=503, help="the status of those answers")
    args = parser.parse_args(argv)
    Failures.ratio = args.fail_ratio
    Failures.answer = b"HTTP/1.1 %d Failing\r\nContent-Length: 0\r\n\r\n" % args.fail_status
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.bind, args.port or [0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
