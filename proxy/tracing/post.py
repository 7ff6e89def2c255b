"""One kept-alive HTTP/1.1 connection to the OTLP collector, blocking: the exporter thread's only client.

Smaller than http.client on purpose: the request head is made once, and the answer is read for its status
and framing only (Content-Length, chunked, or until close). http.client parses every response's header
block with the email package, which cost the exporter thread (holding the GIL) several times what
encoding a batch of spans does.
"""

from __future__ import annotations

import socket
import ssl

from proxy import __version__

# Largest response head accepted, and largest body read (OTLP answers are a few bytes: partial success).
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


class CollectorError(Exception):
    """The collector's answer cannot be read (malformed, too large, the connection closed mid-way)."""


class CollectorConnection:
    """POSTs bodies to one URL (scheme, host, port, path) over one connection, opened again when lost."""

    __slots__ = ("scheme", "host", "port", "timeout", "_head", "_sock", "_context")

    def __init__(self, scheme: str, host: str, port: int, path: str, *, timeout: float) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.timeout = timeout
        authority = f"[{host}]" if ":" in host else host
        if (scheme, port) not in (("http", 80), ("https", 443)):
            authority += f":{port}"
        self._head = (f"POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-protobuf\r\n"
                      f"User-Agent: pyngress/{__version__}\r\nContent-Length: ").encode("ascii")
        self._sock: socket.socket | None = None
        self._context: ssl.SSLContext | None = ssl.create_default_context() if scheme == "https" else None

    def post(self, body: bytes) -> int:
        """Send `body`; returns the answer's status. OSError or CollectorError when it did not go through
        (the connection is closed then; the next post opens a new one)."""
        sock = self._sock
        try:
            if sock is None:
                sock = self._sock = self._connect()
            sock.sendall(self._head + b"%d\r\n\r\n" % len(body) + body)
            status, close = _read_answer(sock)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status

    def close(self) -> None:
        sock = self._sock
        if sock is not None:
            self._sock = None
            sock.close()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self._context is not None:
            try:
                return self._context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        return sock


def _read_answer(sock: socket.socket) -> tuple[int, bool]:
    """(status, whether the connection must close) of the next final answer; its body is read and dropped."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        while end < 0:
            if len(data) > MAX_HEAD:
                raise CollectorError("response head too large")
            data += _receive(sock)
            end = data.find(b"\r\n\r\n")
        head, data = data[:end], data[end + 4 :]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise CollectorError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
        status = int(parts[1])
        if status >= 200:
            break  # 1xx: an interim answer, the final one follows
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    close = fields.get(b"connection") == b"close" or (parts[0] == b"HTTP/1.0" and
                                                      fields.get(b"connection") != b"keep-alive")
    if status in (204, 304):
        return status, close
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        _read_chunked(sock, data)
    elif b"content-length" in fields:
        length = fields[b"content-length"]
        if not length.isdigit() or int(length) > MAX_BODY:
            raise CollectorError(f"bad Content-Length {length[:20]!r}")
        remaining = int(length) - len(data)
        while remaining > 0:
            remaining -= len(_receive(sock))
    else:  # delimited by the close
        received = len(data)
        while received <= MAX_BODY:
            chunk = sock.recv(65536)
            if not chunk:
                return status, True
            received += len(chunk)
        raise CollectorError("response body too large")
    return status, close


def _read_chunked(sock: socket.socket, data: bytes) -> None:
    total = 0
    while True:
        end = data.find(b"\r\n")
        while end < 0:
            data += _receive(sock)
            end = data.find(b"\r\n")
        size_text = data[:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise CollectorError(f"bad chunk size {size_text[:20]!r}") from None
        total += size
        if total > MAX_BODY:
            raise CollectorError("response body too large")
        data = data[end + 2 :]
        if size == 0:  # the last chunk; skip trailer fields up to the empty line
            while not (data.startswith(b"\r\n") or b"\r\n\r\n" in data):
                data += _receive(sock)
            return
        while len(data) < size + 2:
            data += _receive(sock)
        data = data[size + 2 :]


def _receive(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise CollectorError("the collector closed the connection before its answer was complete")
    return chunk


__all__ = ["CollectorConnection", "CollectorError", "MAX_BODY", "MAX_HEAD"]
