"""A stateless HPACK encoder for the headers we send (responses to clients, requests to pods): no dynamic table,
each field's encoding made once and reused.

h2's own encoder (the ``hpack`` package) searches and updates the dynamic table for every field of every
response in Python; it was the largest single cost of an HTTP/2 request. A proxy's responses repeat the same
fields (``:status: 200``, ``content-type``, ``server``) and carry unique ones (``x-request-id``, ``date``) that only
churn a dynamic table. This encoder never uses the dynamic table (RFC 7541 6.2.2 literals without indexing, and
static-table references, 6.1), so the bytes of a field do not depend on what was sent before: each field's
bytes are cached and a header block is a join of cached pieces.

The peer's decoder starts with a 4096-byte dynamic table; the first block (and the first after each
SETTINGS_HEADER_TABLE_SIZE change) begins with a dynamic table size update to 0 (RFC 7541 6.3), so nothing the
peer does with the setting can leave its decoder expecting entries from us.

Set as ``H2Connection.encoder`` (h2 calls only ``encode`` and sets ``header_table_size``); h2's state machine is
unchanged. Used by both HTTP/2 sides (proxy/http2/connection.py, proxy/upstream/h2_connection.py); costs only HTTP/2.
"""

from __future__ import annotations

from collections.abc import Iterable

from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode

# Static table (RFC 7541 Appendix A): full pairs and first index of each name (1-based).
_STATIC_PAIRS: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAMES: dict[bytes, int] = {}
for _index, _pair in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_PAIRS.setdefault(_pair, _index)
    _STATIC_NAMES.setdefault(_pair[0], _index)

# Fields whose values are unique per response (or secrets): encoded each time, never kept in the cache.
UNCACHED = frozenset((b"x-request-id", b"set-cookie", b"traceparent", b"grpc-message", b"grpc-timeout",
                      b"authorization", b"cookie"))
# Field encodings kept (shared by every connection of the process: an encoding depends on nothing but the
# field) before the cache starts over: a bound on memory, not a tuning knob.
CACHE_LIMIT = 2048
_cache: dict[tuple[bytes, bytes], bytes] = {}
_names: dict[bytes, bytes] = {}
# Dynamic table size update to 0 (pattern 001, 5-bit prefix).
TABLE_SIZE_ZERO = b"\x20"


def integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 5.1: `value` with an N-bit prefix, `first` the pattern bits of the first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def string(data: bytes, *, huffman: bool = True) -> bytes:
    """RFC 7541 5.2: a string literal, Huffman-coded when that is shorter."""
    if huffman and data:
        coded = _huffman(data)
        if len(coded) < len(data):
            return integer(len(coded), 7, 0x80) + coded
    return integer(len(data), 7, 0) + data


def field(name: bytes, value: bytes, *, huffman: bool = True) -> bytes:
    """One field: a static-table reference when the pair is there, else a literal without indexing
    (with the static table's name index when it has the name)."""
    index = _STATIC_PAIRS.get((name, value))
    if index is not None:
        return integer(index, 7, 0x80)
    return name_prefix(name) + string(value, huffman=huffman)


def name_prefix(name: bytes) -> bytes:
    """The start of a literal without indexing for `name` (its static index, or its string), made once."""
    prefix = _names.get(name)
    if prefix is None:
        index = _STATIC_NAMES.get(name)
        prefix = integer(index, 4, 0) if index is not None else b"\x00" + string(name)
        if len(_names) >= CACHE_LIMIT:
            _names.clear()
        _names[name] = prefix
    return prefix


class PairEncoder:
    """h2's encoder seat, filled without a dynamic table (see the module)."""

    __slots__ = ("size_update", "_table_size")

    def __init__(self) -> None:
        self.size_update = True  # the next block starts with a table size update to 0
        self._table_size = 4096

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        # The peer's limit changed; we use none of it, and say so again at the next block.
        self._table_size = value
        self.size_update = True

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        cache = _cache
        parts = []
        if self.size_update:
            self.size_update = False
            parts.append(TABLE_SIZE_ZERO)
        for pair in headers:
            piece = cache.get(pair)
            if piece is None:
                name, value = pair[0], pair[1]
                if name in UNCACHED:
                    # Unique values: no Huffman coding either (it costs Python time for a few bytes).
                    piece = field(name, value, huffman=False)
                else:
                    piece = field(name, value)
                    if len(cache) >= CACHE_LIMIT:
                        cache.clear()
                    cache[(name, value)] = piece
            parts.append(piece)
        return b"".join(parts)
