# cython: annotation_typing=False
"""A raw response body: a long Content-Length body the exchange forwards itself, without the parser.

The response reader leaves the parser after such a body's head; from then on the exchange hands each upstream read
here: `feed` parses a long read the head may end in (the parser gets it only up to the head's end), `start`
takes the body after a head the parser announced raw by its exception (proxy.http.h1_response.RawBody: a short
read), `take` and `flush` forward the reads after it. The body's bytes reach the client's writer as they were
read (the read itself, or a memoryview of it: uvloop writes both without a copy), counted down in the reader's
`remaining`; bytes past the Content-Length are not forwarded and leave the upstream connection out of step (not
reused).

Compiled (proxy/extensions.py), these are C functions of a typed `Exchange` (raw_body.pxd), which the exchange
calls through its module cimport (exchange.pxd) without an attribute lookup or a Python call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from httptools import HttpParserUpgrade

from proxy.http.upstream_faults import log_fault
from proxy.upstream import connection as _connection

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.http.h1_response import H1Response

# A read at least this long in which a response head ends is parsed only up to that end (feed); a shorter one
# whole, a raw body after its head then announced by RawBody. (A literal: this module and h1_response, compiled,
# import each other's types at import time.)
SPLIT_MIN = 16384
# The most bytes of a head's end (CR LF CR of its blank line) a read can leave for the next one to complete.
_TAIL = 3


def feed(ex: Exchange, data: bytes | memoryview) -> bool:
    """Parse a read in which a response head may end. A long one (SPLIT_MIN bytes or more) goes to the parser only
    up to the head's end, so a raw body after it is announced by `remaining` rather than by RawBody (an exception
    raised through the parser: its objects and tracebacks cost more than this split), and is taken and written
    here: returns True then. False: the parser had what it was given, and the exchange carries on as after a
    `feed_data` of the whole read, whose exceptions these are (the head goes on in the next read, or it ended and
    no body follows yet, or what follows is no raw body: a small or chunked one, the final answer after a 1xx)."""
    response: H1Response = ex.response  # type: ignore[assignment]  # attached: our H1Response
    parser = response.parser
    size = len(data)
    if size < SPLIT_MIN:
        parser.feed_data(data)  # type: ignore[union-attr]
        return False
    end = head_end(response, data)
    if end < 0:
        parser.feed_data(data)  # type: ignore[union-attr]  # the head goes on in the next read
        return False
    response.split = True
    parser.feed_data(data if end == size else data[:end])  # type: ignore[union-attr]
    response.split = False
    if not response.remaining:
        if end < size:
            try:
                parser.feed_data(memoryview(data)[end:])  # type: ignore[union-attr]
            except HttpParserUpgrade as exc:  # (a 101 after a 1xx): where its bytes begin in `data`
                raise HttpParserUpgrade(exc.args[0] + end) from None
        return False
    # The parser stopped at the head's end, inside its message: the next response gets a new one.
    response.parser = None
    response.tail = b""
    if end == size:
        return False  # (the exchange writes the head)
    take(ex, data, end)
    flush(ex, data)
    return True


def head_end(response: H1Response, data: bytes | memoryview) -> int:
    """Where the response head ends in `data` (the index after its blank line), or -1 when not in it.

    A head the parser accepts ends at its first blank line (CRLF CRLF: the parser takes no bare LF), counted from
    where the head began; one that began in an earlier read left its last bytes in `tail` (keep_tail)."""
    tail = response.tail
    if tail:
        end = (tail + data[:_TAIL]).find(b"\r\n\r\n")
        if end >= 0:
            return end + 4 - len(tail)
    # A view is of the read buffer from its start (UpstreamConnection.buffer_updated): search the buffer.
    found: bytes | bytearray = data.obj if isinstance(data, memoryview) else data  # type: ignore[assignment]
    end = found.find(b"\r\n\r\n", 0, len(data))
    return end + 4 if end >= 0 else -1


def start(ex: Exchange, data: bytes | memoryview) -> None:
    """The parser announced a raw body (RawBody) in `data`, a read it had whole: the body starts after the head."""
    response: H1Response = ex.response  # type: ignore[assignment]  # raw: our H1Response
    begin = head_end(response, data)
    response.tail = b""
    if 0 <= begin < len(data):
        take(ex, data, begin)
        flush(ex, data)


def keep_tail(response: H1Response, data: bytes | memoryview) -> None:
    """A response head goes on in the next read: keep this read's last bytes, where its blank line may begin
    (start); a reader past an interim (1xx) answer keeps none (its tail is None)."""
    tail = response.tail
    if tail is not None:
        response.tail = (tail + data[-_TAIL:])[-_TAIL:]


def take(ex: Exchange, data: bytes | memoryview, begin: int) -> None:
    """Body bytes of a raw response, data[begin:] (up to what remains), handed to the writer as they were read."""
    response: H1Response = ex.response  # type: ignore[assignment]
    remaining = response.remaining
    size = len(data) - begin
    piece: bytes | memoryview = data
    if size < remaining:
        response.remaining = remaining - size
        if begin:
            piece = memoryview(data)[begin:]
    else:
        response.remaining = 0
        ex.resp_done = True
        if size > remaining:
            # Bytes beyond Content-Length are not forwarded, and the connection is out of step: not reused.
            ex.reusable = False
            log_fault(ex, "more than its Content-Length")
            piece = memoryview(data)[begin:begin + remaining]
        elif begin:
            piece = memoryview(data)[begin:]
    ex.writer.passthrough.append(piece)  # type: ignore[union-attr,arg-type]  # raw: a pass-through writer


def flush(ex: Exchange, data: bytes | memoryview) -> None:
    """Write a raw body's piece. A piece of a view the client's transport could not write at once stays in its
    buffer: the connection's read buffer is then left to it (the next read gets another)."""
    writer = ex.writer
    ex.sent += writer.flush()
    if type(data) is not bytes and writer.transport.get_write_buffer_size():  # type: ignore[attr-defined]
        _connection.keep_last_read()
