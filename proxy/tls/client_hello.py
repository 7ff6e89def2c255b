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

import re
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
        return ClientHello(server_name(bytes(handshake[4:self._needed])))


def server_name(body: bytes) -> str:
    """The host_name of the server_name extension of a ClientHello body ("" when there is none).

    Plain index arithmetic on bytes, every length checked against its enclosing one: this runs once per
    connection with passthrough on, and a reader object per field costs several times more."""
    end = len(body)
    at = 2 + 32  # legacy_version, random
    if at >= end:
        raise MalformedHello("ClientHello too short")
    at += 1 + body[at]  # legacy_session_id
    if at + 2 > end:
        raise MalformedHello("ClientHello too short")
    suites = body[at] << 8 | body[at + 1]
    at += 2
    if suites == 0 or suites % 2 or at + suites >= end:
        raise MalformedHello("cipher_suites length")
    at += suites
    at += 1 + body[at]  # legacy_compression_methods
    if at > end:
        raise MalformedHello("compression_methods length")
    if at == end:
        return ""  # no extensions at all (TLS 1.2 allows it)
    if at + 2 > end:
        raise MalformedHello("extensions length")
    stop = at + 2 + (body[at] << 8 | body[at + 1])
    at += 2
    if stop != end:
        raise MalformedHello("extensions length does not match the ClientHello")
    found = ""
    seen = False
    while at < stop:
        if at + 4 > stop:
            raise MalformedHello("a length runs past the end of the extensions")
        kind = body[at] << 8 | body[at + 1]
        size = body[at + 2] << 8 | body[at + 3]
        at += 4
        if at + size > stop:
            raise MalformedHello("a length runs past the end of the extensions")
        if kind == SERVER_NAME_EXTENSION:
            if seen:
                raise MalformedHello("two server_name extensions")
            seen = True
            found = _host_name(body, at, at + size)
        at += size
    return found


def _host_name(body: bytes, at: int, stop: int) -> str:
    if at + 2 > stop or at + 2 + (body[at] << 8 | body[at + 1]) != stop:
        raise MalformedHello("server name list length")
    at += 2
    found = ""
    while at < stop:
        if at + 3 > stop:
            raise MalformedHello("a length runs past the end of the server name list")
        kind = body[at]
        size = body[at + 1] << 8 | body[at + 2]
        at += 3
        if at + size > stop:
            raise MalformedHello("a length runs past the end of the server name list")
        if kind == HOST_NAME and not found:
            name = body[at:at + size]
            if not name or not _NAME_CHARS.fullmatch(name):
                raise MalformedHello("server name is empty or has characters other than printable ASCII")
            found = name.decode("ascii").lower().rstrip(".")
        at += size
    return found


# Printable ASCII without space: what a host name can hold (validation of the name itself is the table's:
# a name no rule has is simply not passed through).
_NAME_CHARS = re.compile(rb"[\x21-\x7e]+")
