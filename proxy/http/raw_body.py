# cython: annotation_typing=False
"""A raw response body: a long Content-Length body the exchange forwards itself, without the parser.

The response reader leaves the parser after such a body's head (proxy.http.h1_response.RawBody); from then on the
exchange hands each upstream read here: `start` for the read the head ended in, `take` and `flush` for the reads
after it. The body's bytes reach the client's writer as they were read (the read itself, or a memoryview of it:
uvloop writes both without a copy), counted down in the reader's `remaining`; bytes past the Content-Length are not
forwarded and leave the upstream connection out of step (not reused).

Compiled (proxy/extensions.py), these are C functions of a typed `Exchange` (raw_body.pxd), which the exchange
calls through its module cimport (exchange.pxd) without an attribute lookup or a Python call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.upstream import connection as _connection

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.http.h1_response import H1Response

# The most bytes of a head's end (CR LF CR of its blank line) a read can leave for the next one to complete.
_TAIL = 3


def start(ex: Exchange, data: bytes | memoryview) -> None:
    """The head of a raw body ended in `data`: the rest is body.

    The parser accepted the head, so its end is the first blank line (CRLF CRLF: the parser takes no bare LF),
    counted from where the head began; one that began in an earlier read left its last bytes in `tail`
    (keep_tail)."""
    response: H1Response = ex.response  # type: ignore[assignment]  # raw: our H1Response
    tail = response.tail
    response.tail = b""
    begin = -1
    if tail:
        end = (tail + data[:_TAIL]).find(b"\r\n\r\n")
        if end >= 0:
            begin = end + 4 - len(tail)
    if begin < 0:
        # A view is of the read buffer from its start (UpstreamConnection.buffer_updated): search the buffer.
        found: bytes | bytearray = data.obj if isinstance(data, memoryview) else data  # type: ignore[assignment]
        begin = found.find(b"\r\n\r\n", 0, len(data)) + 4
    if begin < len(data):
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
