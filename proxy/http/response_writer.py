# cython: annotation_typing=False
"""The base class of the writers responses reach a client through: `H1Writer` (HTTP/1.1) and
`proxy.http2.stream.H2Writer` (one HTTP/2 stream).

Compiled (proxy/extensions.py) it is an extension type, so the exchange and the response reader hold their writer
as a typed field: its fields are read as a struct and the methods the `.pxd` declares `cpdef` (a response's head,
body, end and flush) are called through a C table on an `H1Writer` instead of an attribute lookup and a Python
call. H2Writer, a Python subclass, still overrides them (Cython looks the override up on such a type).
`annotation_typing=False`: the `.pxd` declares the cpdef signatures (a cpdef method takes no keyword-only
parameters; callers still pass `length=` and the rest by name).
"""

from __future__ import annotations

from collections.abc import Sized
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.http.listener import Listener


class ResponseWriter:
    """How a response reaches the client; a callback's output is collected here and `flush()`ed once."""

    __slots__ = ("listener", "out", "passthrough", "chunked")

    listener: Listener
    # What is collected and not yet written (the exchange flushes when it is not empty).
    out: Sized
    # A list body chunks may be appended to as they are (None: call body() and end()).
    passthrough: list[bytes] | None
    # The response body under way can end with trailers (HTTP/1.1 chunked encoding; HTTP/2 always).
    chunked: bool

    def head(self, ex: Exchange, status: int, reason: bytes, fields: list[bytes], length: int, chunked: bool,
             own_hsts: bool, draining: bool) -> bool:
        """Frame a final response head; returns False when no body follows (HEAD). Callers pass `length` and the
        flags after it by name."""
        raise NotImplementedError

    def body(self, chunk: bytes) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError

    def flush(self) -> int:
        """Write what was collected; returns the bytes written."""
        raise NotImplementedError

    def interim(self, ex: Exchange, status: int, reason: bytes, fields: list[bytes]) -> None:
        raise NotImplementedError

    def switching(self, ex: Exchange, reason: bytes, fields: list[bytes], upgrade: bytes) -> None:
        raise NotImplementedError

    def end_with_trailers(self, trailers: list[bytes]) -> None:
        """End the body with trailer fields (flat ready bytes: an HTTP/2 pod's trailers, gRPC's status)."""
        raise NotImplementedError

    def answer(self, status: int, request_id: bytes, *, close: bool, http10: bool, detail: str, head_only: bool,
               location: bytes, fields: bytes = b"") -> int:
        """The proxy's own answer (an error, a redirect), written at once; returns the bytes written."""
        raise NotImplementedError

    def grpc_answer(self, status: int, request_id: bytes, *, close: bool, message: str, fields: bytes = b"") -> int:
        """The proxy's own answer to a gRPC request (HTTP 200, grpc-status); returns the bytes written."""
        raise NotImplementedError

    def raw(self, data: bytes) -> int:
        """Tunnelled bytes (after a 101), written as they are."""
        raise NotImplementedError
