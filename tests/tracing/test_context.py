"""W3C trace context as bytes: what is valid, what is not, and the sampler's threshold."""

from __future__ import annotations

import pytest

from proxy.tracing.context import (
    clean_tracestate,
    format_traceparent,
    is_sampled,
    parse_traceparent,
    ratio_bound,
    trace_ids,
)

TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = b"00f067aa0ba902b7"


@pytest.mark.parametrize(("value", "expected"), [
    (b"00-" + TRACE + b"-" + PARENT + b"-01", (TRACE, PARENT, True)),
    (b"00-" + TRACE + b"-" + PARENT + b"-00", (TRACE, PARENT, False)),
    (b"00-" + TRACE + b"-" + PARENT + b"-09", (TRACE, PARENT, True)),  # other flag bits are not ours to read
    (b"cc-" + TRACE + b"-" + PARENT + b"-01-what-the-future-holds", (TRACE, PARENT, True)),  # a later version
    (b"cc-" + TRACE + b"-" + PARENT + b"-01", (TRACE, PARENT, True)),
])
def test_valid_traceparents(value, expected):
    assert parse_traceparent(value) == expected


@pytest.mark.parametrize("value", [
    b"", b"garbage", b"00-" + TRACE + b"-" + PARENT + b"-1",
    b"00-" + TRACE.upper() + b"-" + PARENT + b"-01",
    b"00-" + b"0" * 32 + b"-" + PARENT + b"-01", b"00-" + TRACE + b"-" + b"0" * 16 + b"-01",
    b"ff-" + TRACE + b"-" + PARENT + b"-01",
    b"00-" + TRACE + b"-" + PARENT + b"-01-",  # version 00: exactly 55 characters
    b"cc-" + TRACE + b"-" + PARENT + b"-01x",  # a later version's extra fields follow a "-"
    b"cc-" + TRACE + b"-" + PARENT + b"-01-" + b"x" * 300,  # oversized
    b"00_" + TRACE + b"-" + PARENT + b"-01", b" 00-" + TRACE + b"-" + PARENT + b"-0",
    b"00-" + TRACE + b"-" + PARENT + b"-0g",
])
def test_invalid_traceparents(value):
    assert parse_traceparent(value) is None


def test_format_and_read_back():
    value = format_traceparent(TRACE, PARENT, True)
    assert value == b"00-" + TRACE + b"-" + PARENT + b"-01" and is_sampled(value)
    assert not is_sampled(format_traceparent(TRACE, PARENT, False))
    assert trace_ids(value) == (TRACE, PARENT)


@pytest.mark.parametrize(("value", "expected"), [
    (b"congo=t61rcWkgMzE", b"congo=t61rcWkgMzE"),
    (b"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE ,,", b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    (b"tenant@vendor=x y", b"tenant@vendor=x y"),
    (b"a=1,a=2", None),  # duplicate key
    (b"Upper=1", None), (b"a=", None), (b"=1", None), (b"a=b,c", None), (b"a=x=y", None), (b"a=tail ", b"a=tail"),
    (b",".join(b"k%d=v" % i for i in range(33)), None),  # more than 32 members
    (b"k=" + b"v" * 511, None),  # over 512 bytes
    (b"", None), (b" , ", None),
])
def test_tracestate(value, expected):
    assert clean_tracestate(value) == expected


def test_ratio_bound():
    assert ratio_bound(0.0) == 0 and ratio_bound(-1) == 0
    assert ratio_bound(1.0) == 1 << 64 and ratio_bound(2.0) == 1 << 64
    assert ratio_bound(0.5) == 1 << 63
