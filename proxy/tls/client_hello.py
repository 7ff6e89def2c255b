"""The server name of a TLS ClientHello, read without terminating TLS (for SSL passthrough).

`ClientHelloReader` is fed the connection's bytes as they arrive and keeps all of them (they are
replayed to whoever serves the connection). It follows the record layer: a ClientHello may come
in several TCP segments and span several handshake records (RFC 8446 5.1 allows a handshake
message split over records), so handshake payload is collected record by record until the whole
message is in. It is bounded: a ClientHello larger than `MAX_HELLO` is refused.

Outcomes of `feed()`: `None` (more bytes needed), a `ClientHello` (the server name, or "" when the
client sent none), or `NOT_TLS` (the first byte is not a handshake record: the TLS terminator
reads it and reports it as today, e.g. a plain HTTP request). A record that starts like TLS but
breaks its own rules raises `MalformedHello`.
"""

from __future__ import annotations

from typing import Final

HANDSHAKE_RECORD = 0x16
CLIENT_HELLO = 0x01
SERVER_NAME_EXTENSION = 0x0000
HOST_NAME = 0x00
# TLSPlaintext.length may not exceed 2^14 (RFC 8446 5.1).
MAX_RECORD = 1 << 14
# The largest ClientHello accepted. Real ones are 0.2-2 KiB (a post-quantum key share adds ~1.2 KiB);
# this leaves room for large session tickets and many extensions while bounding what one
# connection can make us buffer before it says where it goes.
MAX_HELLO = 1 << 16
_RECORD_HEADER = 5


class MalformedHello(ValueError):
    """The bytes claim to be a TLS handshake but are not a well-formed ClientHello."""


class ClientHello:
    """A complete ClientHello: its server name (lower case, no trailing dot; "" when absent)."""

    __slots__ = ("server_name",)

    def __init__(self, server_name: str) -> None:
        self.server_name = server_name

    def __repr__(self) -> str:
        return f"ClientHello({self.server_name!r})"


NOT_TLS: Final = "not-tls"


class ClientHelloReader:
    """Accumulates a connection's first bytes until its ClientHello is complete."""

    __slots__ = ("received", "_offset", "_handshake", "_needed")

    def __init__(self) -> None:
        # Every byte received so far, in order (replayed to the TLS terminator or to the pod).
        self.received = bytearray()
        # Where the next record header starts in `received`.
        self._offset = 0
        # The handshake payload gathered from the records read so far.
        self._handshake = bytearray()
        # The handshake message's full length (header included) once its header is in; 0 before.
        self._needed = 0

    def feed(self, data: bytes) -> ClientHello | str | None:
        """Add `data`; the outcome once known (see the module docstring), None while incomplete."""
        received = self.received
        if not received and data and data[0] != HANDSHAKE_RECORD:
            received += data
            return NOT_TLS
        received += data
        while len(received) - self._offset >= _RECORD_HEADER:
            start = self._offset
            kind = received[start]
            length = int.from_bytes(received[start + 3:start + 5], "big")
            if kind != HANDSHAKE_RECORD:
                raise MalformedHello(f"record type {kind} before the ClientHello was complete")
            if received[start + 1] != 0x03:
                raise MalformedHello("record version is not TLS")
            if length == 0 or length > MAX_RECORD:
                raise MalformedHello(f"record length {length}")
            end = start + _RECORD_HEADER + length
            if len(received) < end:
                break
            self._handshake += received[start + _RECORD_HEADER:end]
            self._offset = end
            hello = self._complete()
            if hello is not None:
                return hello
        if len(received) > MAX_HELLO + 64 * _RECORD_HEADER:
            raise MalformedHello("ClientHello too large")
        return None

    def _complete(self) -> ClientHello | None:
        handshake = self._handshake
        if not self._needed:
            if len(handshake) < 4:
                return None
            if handshake[0] != CLIENT_HELLO:
                raise MalformedHello(f"handshake message type {handshake[0]} is not a ClientHello")
            self._needed = 4 + int.from_bytes(handshake[1:4], "big")
            if self._needed > MAX_HELLO:
                raise MalformedHello(f"ClientHello of {self._needed} bytes is over the {MAX_HELLO} limit")
        if len(handshake) < self._needed:
            return None
        return ClientHello(server_name(memoryview(bytes(handshake[4:self._needed]))))


def server_name(body: memoryview) -> str:
    """The host_name of the server_name extension of a ClientHello body ("" when there is none)."""
    reader = _Reader(body)
    reader.skip(2 + 32)  # legacy_version, random
    reader.skip(reader.number(1))  # legacy_session_id
    suites = reader.number(2)
    if suites == 0 or suites % 2:
        raise MalformedHello("cipher_suites length")
    reader.skip(suites)
    reader.skip(reader.number(1))  # legacy_compression_methods
    if reader.left() == 0:
        return ""  # no extensions at all (TLS 1.2 allows it)
    extensions = _Reader(reader.take(reader.number(2)))
    if reader.left():
        raise MalformedHello("bytes after the extensions")
    found = ""
    seen = False
    while extensions.left():
        kind = extensions.number(2)
        data = extensions.take(extensions.number(2))
        if kind != SERVER_NAME_EXTENSION:
            continue
        if seen:
            raise MalformedHello("two server_name extensions")
        seen = True
        found = _host_name(_Reader(data))
    return found


def _host_name(extension: _Reader) -> str:
    names = _Reader(extension.take(extension.number(2)))
    if extension.left():
        raise MalformedHello("bytes after the server name list")
    found = ""
    while names.left():
        kind = names.number(1)
        name = names.take(names.number(2))
        if kind != HOST_NAME or found:
            continue
        try:
            text = bytes(name).decode("ascii")
        except UnicodeDecodeError:
            raise MalformedHello("server name is not ASCII") from None
        if not text or any(c <= " " or c == "\x7f" for c in text):
            raise MalformedHello("server name is empty or has control characters")
        found = text.lower().rstrip(".")
    return found


class _Reader:
    """Bounds-checked reads over a ClientHello's bytes."""

    __slots__ = ("data", "at")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def left(self) -> int:
        return len(self.data) - self.at

    def take(self, size: int) -> memoryview:
        if size > self.left():
            raise MalformedHello("a length runs past the end of the ClientHello")
        start = self.at
        self.at += size
        return self.data[start:self.at]

    def skip(self, size: int) -> None:
        self.take(size)

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")
