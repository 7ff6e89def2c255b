"""W3C Trace Context as bytes: `traceparent` parsing and formatting, `tracestate` checks, ids, the sampler.

https://www.w3.org/TR/trace-context/ : ``traceparent: 00-<trace id, 32 hex>-<parent id, 16 hex>-<flags, 2 hex>``,
lower-case hex, neither id all zeros, version ``ff`` invalid; a later version may append ``-...`` after the
first 55 characters (its first four fields are read as version 00's). Anything else is invalid, and an
invalid header starts a new trace: it is never an error and never forwarded as it came.

`random_bits` draws ids from a generator seeded once per process from the OS (unique, not secret; no system
call per request; worker processes are spawned, never forked, so they never share its state); new traces take
theirs from a pool of OS random bytes (proxy.tracing.tracer).
"""

from __future__ import annotations

import re
from random import Random, SystemRandom

# Values longer than this are not looked at (a later version's extra fields included).
MAX_TRACEPARENT = 256
# tracestate: the spec's limits (32 list members; vendors propagate at least 512 characters). Larger lists
# are dropped rather than cut (which member to drop is the vendor's business, and we are none).
MAX_TRACESTATE = 512
MAX_TRACESTATE_MEMBERS = 32

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_KEY_CHARS = rb"[a-z0-9_\-*/]"
_MEMBER = re.compile(
    rb"(?:[a-z]" + _KEY_CHARS + rb"{0,255}|[a-z0-9]" + _KEY_CHARS + rb"{0,240}@[a-z]" + _KEY_CHARS + rb"{0,13})"
    rb"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16

_ids = Random(SystemRandom().getrandbits(128))
# Public so the request path can make ids inline (b"%016x" % random_bits(64)).
random_bits = _ids.getrandbits

# A version 00 traceparent value's length, where its trace id starts, and where its flags' last character
# sits ("0" or "1"; its byte when sampled). proxy.http.ids lays its pool out around these.
TRACEPARENT_LENGTH = 55
TRACE_ID_AT = 3
SAMPLED_AT = 54
SAMPLED_BYTE = 0x31


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, bool] | None:
    """(trace id, parent id, sampled) of a valid traceparent, ids as lower-case hex; None when invalid."""
    if len(value) != 55:
        # A later version may carry more fields after a "-"; version 00 is exactly 55 characters.
        if len(value) < 55 or len(value) > MAX_TRACEPARENT or value[:2] == b"00" or value[55:56] != b"-":
            return None
        value = value[:55]
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == b"ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, bool(int(flags, 16) & 1)


def clean_tracestate(value: bytes) -> bytes | None:
    """The list members of a valid tracestate, blanks and empty members left out; None when it must be dropped
    (a malformed member, a duplicate key, over MAX_TRACESTATE bytes or MAX_TRACESTATE_MEMBERS members)."""
    if len(value) > MAX_TRACESTATE:
        return None
    members = [member for member in (part.strip(b" \t") for part in value.split(b",")) if member]
    if not members or len(members) > MAX_TRACESTATE_MEMBERS:
        return None
    keys = set()
    for member in members:
        if _MEMBER.fullmatch(member) is None:
            return None
        key = member.partition(b"=")[0]
        if key in keys:
            return None
        keys.add(key)
    return b",".join(members)


def format_traceparent(trace_id: bytes, span_id: bytes, sampled: bool) -> bytes:
    """A version 00 traceparent value (ids as lower-case hex)."""
    return b"00-" + trace_id + b"-" + span_id + (b"-01" if sampled else b"-00")


def ratio_bound(ratio: float) -> int:
    """The sampler's threshold: a new trace is sampled when the high 64 bits of its id are below it (every
    process decides alike for one trace id; see proxy.tracing.tracer)."""
    ratio = min(1.0, max(0.0, ratio))
    return 1 << 64 if ratio >= 1.0 else int(ratio * (1 << 64))


def trace_ids(traceparent: bytes) -> tuple[bytes, bytes]:
    """(trace id, span id) of a traceparent this proxy wrote."""
    return traceparent[3:35], traceparent[36:52]


def is_sampled(traceparent: bytes) -> bool:
    """Whether a traceparent this proxy wrote says sampled."""
    return traceparent[SAMPLED_AT] == SAMPLED_BYTE


__all__ = ["MAX_TRACEPARENT", "MAX_TRACESTATE", "MAX_TRACESTATE_MEMBERS", "SAMPLED_AT", "SAMPLED_BYTE",
           "TRACEPARENT_LENGTH", "TRACE_ID_AT",
           "clean_tracestate", "format_traceparent", "is_sampled", "parse_traceparent", "random_bits", "ratio_bound",
           "trace_ids"]
