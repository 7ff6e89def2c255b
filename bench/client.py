"""Small HTTP/1.1 clients of the harness: a blocking keep-alive connection (change propagation,
idle connections) and an asyncio one (the smoke test, no wrk needed).

Only what the harness needs: Content-Length and chunked responses, keep-alive, bounded timeouts.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass


class ResponseError(Exception):
    """The server closed the connection or sent something that is not an HTTP/1.1 response."""


def _request_bytes(method: str, path: str, host: str, body: bytes,
                   headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if body or method in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("ascii") + b"\r\n" + body


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ResponseError(f"bad status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class HttpConnection:
    """A blocking keep-alive connection; reconnects after the server closes it."""

    __slots__ = ("address", "buffer", "sock", "timeout")

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, path: str, *, host: str, body: bytes = b"",
                headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, bytes]:
        """(status, body); raises OSError/ResponseError on failure (the connection is then closed)."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        try:
            self.sock.sendall(_request_bytes(method, path, host, body, headers))
            status, headers = _parse_head(self._read_until(b"\r\n\r\n"))
            if headers.get("transfer-encoding", "").lower() == "chunked":
                payload = self._read_chunked()
            else:
                payload = self._read_exactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, payload
        except (OSError, ResponseError, ValueError):
            self.close()
            raise

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise ResponseError("connection closed by the server")
        self.buffer += data

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end], self.buffer[end + len(marker):]
        return head

    def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self._read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                while self._read_until(b"\r\n"):  # trailers, then the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            self._read_until(b"\r\n")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body_bytes: int


async def _read_response(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = _parse_head(head[:-4])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return Answer(status, total)
            total += len(await reader.readexactly(size))
            await reader.readexactly(2)
    return Answer(status, len(await reader.readexactly(int(headers.get("content-length", "0")))))


async def fetch_many(host: str, port: int, *, method: str = "GET", path: str = "/", host_header: str,
                     body: bytes = b"", count: int, connections: int = 4, timeout: float = 10.0) -> list[Answer]:
    """`count` requests over `connections` keep-alive connections (a tiny load, no wrk needed)."""
    request = _request_bytes(method, path, host_header, body)
    answers: list[Answer] = []
    shares = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]

    async def one_connection(share: int) -> None:
        if share == 0:
            return
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(share):
                writer.write(request)
                answers.append(await _read_response(reader))
        finally:
            writer.close()

    async with asyncio.timeout(timeout):
        await asyncio.gather(*(one_connection(share) for share in shares))
    return answers
