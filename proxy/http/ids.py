"""Request ids made in bulk: 32 random hex digits per request (ingress-nginx's $req_id), and 32 more that a
traced request takes its span id from.

Formatting an id per request (``b"%032x" % getrandbits(128)``) cost more instructions than cutting it from
a pool of OS random bytes turned into hex at once, 256 requests at a time: ``hexlify(urandom(8192), b"-",
-16)`` is groups of 32 digits joined by "-", and each request takes two groups (STEP characters). The
protocol cuts the request id (the first group) and leaves the pool and the position on the head
(``id_pool``, ``id_at``) so that tracing, when the route is traced, reads ``pool[at:at + 49]``,
"<trace id>-<span id>", without a pool of its own: a new trace's id is the request's generated id (as
Envoy ties tracing to x-request-id), which the access log already carries. Ids are unique, not secret;
the OS bytes are drawn once per 256 requests.
"""

from __future__ import annotations

from binascii import hexlify
from os import urandom

POOL_IDS = 256
# Two 32-digit groups and their separators per request.
STEP = 66
POOL_END = POOL_IDS * STEP
# "<trace id>-<span id>" from a request's position: its own group, "-", the next group's first 16 digits.
TRACE_IDS = 49
REQUEST_ID = 32


class IdPool:
    """One per process: the current pool and the position of the next request's ids in it."""

    __slots__ = ("pool", "at")

    def __init__(self) -> None:
        self.pool = b""
        self.at = POOL_END

    def refill(self) -> int:
        """A new pool; the position of its first ids (0)."""
        self.pool = hexlify(urandom(POOL_IDS * 32), b"-", -16)
        self.at = 0
        return 0

    def take(self) -> tuple[bytes, int]:
        """The pool and position of a new request's ids (the request path inlines this)."""
        at = self.at
        if at >= POOL_END:
            at = self.refill()
        self.at = at + STEP
        return self.pool, at


# The process's pool (worker processes are spawned, never forked: each draws its own bytes).
ids = IdPool()

__all__ = ["POOL_END", "REQUEST_ID", "STEP", "TRACE_IDS", "IdPool", "ids"]
