"""Request ids made in bulk: 32 random hex digits per request (ingress-nginx's $req_id), laid out in the pool
as the middle of a W3C traceparent value so that a traced request's upstream traceparent is one slice.

Formatting an id per request (``b"%032x" % getrandbits(128)``) cost more instructions than cutting it from
a pool of OS random bytes turned into hex at once, 256 requests at a time. Each request has STEP (56)
characters of the pool, a version 00 traceparent of an unsampled new trace and one spare digit::

    00-<32 hex: the request id, the trace id>-<16 hex: the span id>-00?
       ^ at (the position the protocol leaves on the head)

``hexlify(urandom(...))`` fills the pool with digits and, once a tracer asked for it (`lay_out_traceparents`,
when the server has --otlp-endpoint), seven strided stores write the fixed characters (``00-``, ``-``,
``-00``), once per refill; without tracing the pool is digits only (nothing reads the other characters).
The protocol cuts the request id, ``pool[at:at + 32]``, and leaves the pool and the position on the head
(``id_pool``, ``id_at``), so that tracing, when the route is traced, takes its whole traceparent value with
``pool[at - 3:at + 52]`` (TRACEPARENT_BEFORE, TRACEPARENT_AFTER: no formatting per request), or "<trace
id>-<span id>" with ``pool[at:at + 49]`` for a continued trace's span id. A new trace's id is the request's
generated id (as Envoy ties tracing to x-request-id), which the access log already carries. Ids are unique,
not secret; the OS bytes are drawn once per 256 requests.
"""

from __future__ import annotations

from binascii import hexlify
from os import urandom

from proxy.tracing.context import TRACE_ID_AT, TRACEPARENT_LENGTH

POOL_IDS = 256
# Characters per request: "00-", 32 digits, "-", 16 digits, "-00", a spare digit (a multiple of 8).
STEP = 56
POOL_END = POOL_IDS * STEP
# The request id's (trace id's) place in its request's part of the pool: the first request's position.
FIRST = TRACE_ID_AT
# "<trace id>-<span id>" from a request's position.
TRACE_IDS = 49
REQUEST_ID = 32
# The traceparent value of an unsampled new trace: pool[at - TRACEPARENT_BEFORE : at + TRACEPARENT_AFTER].
TRACEPARENT_BEFORE = TRACE_ID_AT
TRACEPARENT_AFTER = TRACEPARENT_LENGTH - TRACE_ID_AT

# The fixed characters of each request's part: (offset in the part, the character repeated once per request; a
# bytearray, as compiled, a strided store into a bytearray takes no bytes).
_FIXED = tuple((offset, bytearray(char * POOL_IDS)) for offset, char in (
    (0, b"0"), (1, b"0"), (2, b"-"), (35, b"-"), (52, b"-"), (53, b"0"), (54, b"0")))


def fill(traceparents: bool = True) -> bytes:
    """A new pool of POOL_IDS requests' parts (see the module docstring); digits only unless `traceparents`."""
    digits = hexlify(urandom(POOL_END // 2))
    if not traceparents:
        return digits
    laid_out = bytearray(digits)
    for offset, chars in _FIXED:
        laid_out[offset::STEP] = chars
    return bytes(laid_out)


class IdPool:
    """One per process: the current pool and the position of the next request's ids in it."""

    __slots__ = ("pool", "at", "traceparents")

    def __init__(self) -> None:
        self.pool = b""
        self.at = POOL_END
        self.traceparents = False

    def lay_out_traceparents(self) -> None:
        """From now on each request's part of the pool is a traceparent value (tracing reads it: see the
        module docstring); the next request starts a new pool."""
        self.traceparents = True
        self.at = POOL_END

    def refill(self) -> int:
        """A new pool; the position of its first ids (FIRST)."""
        self.pool = fill(self.traceparents)
        self.at = FIRST
        return FIRST

    def take(self) -> tuple[bytes, int]:
        """The pool and position of a new request's ids (the request path inlines this)."""
        at = self.at
        if at >= POOL_END:
            at = self.refill()
        self.at = at + STEP
        return self.pool, at


# The process's pool (worker processes are spawned, never forked: each draws its own bytes).
ids = IdPool()

__all__ = ["FIRST", "POOL_END", "REQUEST_ID", "STEP", "TRACEPARENT_AFTER", "TRACEPARENT_BEFORE", "TRACE_IDS",
           "IdPool", "fill", "ids"]
