# cython: annotation_typing=False
"""The access log: one JSON object per request on stdout, written in batches that never block the event loop.

A finished request is formatted on the loop, straight into bytes, and queued: the route's fields
are encoded once per route, the line's start (date and time) once per millisecond, small numbers and
sub-second durations come from digit tables (with the key before them), header values that need no JSON
escaping are copied as they are, and the line is one join of twelve fragments: the constant text around
the fields that repeat from line to line (client, method and host; protocol and status; upstream, route
and user agent) is kept from the line before, since bytes.join pays about 60-100 instructions per fragment.
Compiled (accesslog.pxd), `add` is a typed C method that record.py calls directly (callgrind: see `python
-m bench.instructions --observability`; about 13k instructions per line with a join of some forty
fragments, 19.5k with a %-format of the whole line, 7.8k with two joins of twenty, 6.6k now, each with the
~2k of a call from Python). Past ``limit`` waiting lines, new ones are dropped and counted:
a slow stdout reader never stalls the proxy. (Formatting in a thread instead was measured: its batches
hold the GIL and tripled the p99.)

Queued lines go out every ``interval``, one of two ways:

- stdout a pipe or FIFO (a container runtime's, a shell's `|`; given the loop): written from the loop
  itself, through a non-blocking descriptor of our own for the same pipe (opened again by /proc/self/fd,
  so the O_NONBLOCK does not reach the runtime's or a print's). When the pipe is full the rest waits for
  it to drain (`add_writer`) while new lines queue. No thread: a writer thread needs the GIL back after
  every write (35k lines of ~530 bytes a second: some 4,500 PIPE_BUF writes a second), competing with the
  loop thread for it; the loop pays for the same writes only the system calls (`python -m
  bench.accesslog_writer`: some 0.2-0.6 µs less process CPU per line, on a busy 2-core box).
- anything else (a regular file, a terminal, a socket; or no /proc): a daemon thread writes, since
  ``os.write`` releases the GIL and a slow device stalls the thread, never the proxy. One write per
  batch on a regular file or a terminal (on a file, one description's writes do not interleave).

Into a pipe shared with other processes (``shared``: worker processes), writes go in pieces of at most
PIPE_BUF bytes cut at line ends: such writes are atomic (all or nothing when non-blocking), so lines never
interleave. A line longer than PIPE_BUF goes alone (and may interleave). A process alone on the pipe
writes each batch in one write (the rest, when the pipe is full, once it drains): each write wakes the
reader, and the pieces (some 7 lines each) made the bench's reader read 4 KiB at a time, 2.5 µs of its
CPU per line against 0.8 µs for whole batches (`python -m bench.logcost`). The loop grows the pipe to
PIPE_SIZE when it may, so that a batch rarely waits for the reader.

Fields (ingress-nginx users will recognise most of them from its JSON log formats):
``time`` (UTC, ms), ``request_id``, ``client``, ``method``, ``host`` (Host header), ``path``,
``query``, ``protocol``, ``status``, ``bytes_in`` (request line, header and body),
``bytes_out``, ``duration`` (seconds, first request byte to last response byte),
``upstream_duration`` (to the upstream's response head; null when none), ``upstream``
(address:port; null when none), ``namespace``, ``ingress`` (an Ingress or HTTPRoute name),
``route_host``, ``route_path``, ``service`` and ``route_kind`` ("Ingress" or "HTTPRoute") of the
matched route (empty when none matched), ``user_agent``, ``retries``, ``reason`` (why the proxy
answered itself: ``no-route``, ``no-endpoints``, ``connect-failure``, ``upstream-timeout``,
``overloaded``, ``rate-limited``, ``fault-abort``, ``redirect``...; null when the upstream answered),
``trace_id`` and ``span_id`` (the W3C trace context of a traced request: the trace, and the proxy's span
sent upstream as the parent; null when the request was not traced), ``grpc_status`` (the gRPC status a
gRPC request got, as Envoy's %GRPC_STATUS%: the pod's grpc-status from its trailers or trailers-only head,
else what its HTTP status means; or the proxy's own answer's, sent as HTTP 200 and logged with ``status`` 200:
12 no route, 14 no endpoints or unavailable, 4 deadline...; null for requests that are not gRPC).
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import logging
import os
import re
import stat
import threading
import time
from collections import deque
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _quote

logger = logging.getLogger("pyngress.access")

# Lines waiting for the writer thread; at 30k requests/s this is over 3 s of traffic.
DEFAULT_LIMIT = 100_000
# How often the writer thread wakes: the longest a line waits before it is written.
DEFAULT_INTERVAL = 0.1
# Largest write that a pipe keeps atomic (POSIX PIPE_BUF on Linux).
PIPE_BUF = 4096
# What the log's pipe is grown to (loop mode), when smaller: Linux's default limit for unprivileged processes
# (/proc/sys/fs/pipe-max-size), some 2,000 lines; a pipe holds 64 KiB by default.
PIPE_SIZE = 1 << 20

# Bytes that a JSON string cannot carry as they are: controls, '"', '\\' and everything past ASCII.
_UNSAFE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')
# A bytes.translate table mapping each byte _UNSAFE matches to NUL and every other byte to itself: a NUL in the
# result means escaping (a table without a delete argument: translate builds no table of its own per call).
_MARKS = bytes(0 if _UNSAFE.match(bytes((byte,))) else byte for byte in range(256))
# Ready digits: numbers below _NUMBERS_END (statuses, small sizes, retries), three-digit groups (".417" ms after
# the second, and the two halves of a duration's microseconds).
_NUMBERS_END = 4096
_NUMBERS = tuple(b"%d" % number for number in range(_NUMBERS_END))
_MILLIS = (*(b".%03d" % ms for ms in range(1000)), b".999")  # (a float product may reach 1000.0)
# The same, followed by what comes up to the request id's value (a line's start is its second's stamp and one of these).
_MILLIS_ID = tuple(millis + b'Z","request_id":"' for millis in _MILLIS)
_DIGITS3 = tuple(b"%03d" % number for number in range(1000))
# The same with the key before them: the bytes sent, and the milliseconds of a duration under a second.
_BYTES_OUT = tuple(b',"bytes_out":%d' % number for number in range(_NUMBERS_END))
_DURATION_MS = tuple(b',"duration":0.%03d' % ms for ms in range(1000))
_UPSTREAM_MS = tuple(b',"upstream_duration":0.%03d' % ms for ms in range(1000))
# The stamp (self._stamp) holds '{"time":"' and the whole second; this line goes on from the '.'.
_LINE = (b'%s.%03dZ","request_id":%s,"client":"%s","method":"%s","host":%s,"path":%s,"query":%s,'
         b'"protocol":"%s","status":%d,"bytes_in":%d,"bytes_out":%d,"duration":%.6f,"upstream_duration":%s,'
         b'"upstream":%s,%s,"user_agent":%s,"retries":%d,"reason":%s,%s,"grpc_status":%s}\n')
_NO_TRACE = b'"trace_id":null,"span_id":null'
_TRACE = b'"trace_id":"%s","span_id":"%s"'
# bytes.translate called as a function (a method call looks the name up on each line).
_translate = bytes.translate
# A line's end from its "retries" on for a request answered at the first try by the upstream, not traced, not gRPC.
_PLAIN_END = b'","retries":0,"reason":null,"trace_id":null,"span_id":null,"grpc_status":null}\n'


def _end(retries: int, reason: str, trace: bytes | None, grpc_status: int) -> bytes:
    """The end of a line from its "retries" on, when it is not _PLAIN_END."""
    return b"".join((
        b'","retries":', _NUMBERS[retries] if retries < _NUMBERS_END else b"%d" % retries,
        b',"reason":', b'"%s"' % reason.encode("ascii") if reason else b"null", b",",
        _TRACE % (trace[3:35], trace[36:52]) if trace is not None else _NO_TRACE, b',"grpc_status":',
        b"null" if grpc_status < 0 else _NUMBERS[grpc_status] if grpc_status < _NUMBERS_END else b"%d" % grpc_status,
        b"}\n"))


def json_text(value: bytes | None) -> bytes:
    """A JSON string for raw bytes (latin-1: every byte kept; escapes keep the line ASCII)."""
    if not value:
        return b'""'
    if _UNSAFE.search(value) is None:
        return b'"' + value + b'"'
    return _quote(value.decode("latin-1")).encode("ascii")


def route_fields(labels: Sequence[str]) -> bytes:
    """The route part of a line, encoded once per route: namespace, ingress, route host, path, service, kind."""
    namespace, ingress, host, path, service, kind = labels
    return (b'"namespace":%s,"ingress":%s,"route_host":%s,"route_path":%s,"service":%s,"route_kind":%s'
            % tuple(_quote(value).encode("ascii") for value in (namespace, ingress, host, path, service, kind)))


def address_text(address: str, port: int) -> bytes:
    """An upstream address as a JSON string (IPv6 in brackets)."""
    return (b'"[%s]:%d"' if ":" in address else b'"%s:%d"') % (address.encode("ascii", "replace"), port)


class AccessLog:
    """Formats lines on the caller's thread (the loop); the loop (into a pipe) or a daemon thread writes them."""

    __slots__ = ("fd", "limit", "interval", "pending", "dropped", "written", "_wake", "_stop", "_thread",
                 "_lock", "_failed", "_reported", "_whole", "_loop", "_out", "_timer", "_rest", "_taken", "_batch",
                 "_append", "_agent",
                 "_second", "_stamp", "_millisecond", "_start", "_client", "_method", "_host", "_who", "_status",
                 "_protocol", "_answer", "_bare_answer", "_upstream", "_route", "_where", "_plain_tail")

    def __init__(self, fd: int = 1, *, limit: int = DEFAULT_LIMIT, interval: float = DEFAULT_INTERVAL,
                 loop: asyncio.AbstractEventLoop | None = None, shared: bool = True) -> None:
        """``loop``: the running loop that calls add, to write from it when ``fd`` is a pipe (see the module).
        ``shared``: other processes write lines into the same pipe (worker processes): writes then go in whole-line
        pieces of at most PIPE_BUF; False (a process alone): each batch in one write."""
        self.fd = fd
        self.limit = limit
        self.interval = interval
        # deque: append (loop) and popleft (thread) are atomic, so no line is lost between them.
        self.pending: deque[bytes] = deque()
        self._append = self.pending.append  # (a method call on a deque looks the name up each time)
        self.dropped = 0
        self.written = 0
        self._failed = False
        self._reported = 0  # dropped count last logged (from the writer thread)
        self._second = -1  # the whole second `_stamp` shows
        self._stamp = b""
        self._millisecond = -1  # the millisecond (of that second) `_start` shows
        self._start = b""
        # Parts of the last line kept for the next (see add), and the fields they were made from.
        self._client = self._method = self._host = self._who = self._agent = b""
        self._status = 0
        self._protocol = self._answer = self._bare_answer = b""
        self._upstream: bytes | None = None
        self._route = self._where = self._plain_tail = b""
        self._stop = False
        self._lock = threading.Lock()  # one writer at a time (the thread, or close())
        self._whole = not shared or _whole_writes(fd)
        self._rest: bytes | None = None  # (loop) a batch the pipe has not taken whole yet
        self._taken = 0  # (loop) how much of it it has
        self._batch = 0  # (loop) its lines
        self._out = _own_nonblocking(fd) if loop is not None else -1
        # Loop mode: the loop, its timer; thread mode: the thread and the lock it waits on.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._wake: threading.Lock | None = None
        self._thread: threading.Thread | None = None
        if loop is not None and self._out >= 0:
            self._loop = loop
            self._timer = loop.call_later(interval, self._tick)
        else:
            # Held from here until close(): the writer's timed acquire is its wait of ``interval`` (a C lock; an
            # Event's wait runs threading's Python code, which cost more per wake than a few hundred lines' writing).
            self._wake = wake = threading.Lock()
            wake.acquire()
            self._thread = thread = threading.Thread(target=self._run, name="pyngress-access-log", daemon=True)
            thread.start()
        atexit.register(self.close)

    def add(self, when: float, request_id: bytes, client: bytes, method: bytes, host: bytes | None, target: bytes,
            protocol: bytes, status: int, bytes_in: int, bytes_out: int, duration: float, upstream_duration: float,
            upstream: bytes | None, route: bytes, user_agent: bytes | None, retries: int, reason: str = "",
            trace: bytes | None = None, grpc_status: int = -1) -> None:
        """Queue one request's line (on the event loop; never blocks). ``upstream_duration`` < 0: none;
        ``upstream``: see address_text; ``route``: see route_fields; ``reason``: a token of ours ("": null);
        ``trace``: the traceparent value the proxy sent upstream (None: not traced); ``grpc_status``: see the
        module (-1: null)."""
        pending = self.pending
        if len(pending) >= self.limit:
            self.dropped += 1
            return
        # The line starts with its time to the millisecond and the request id's key: made once per millisecond.
        second = int(when)
        millisecond = int((when - second) * 1000)  # (a float product may reach 1000: _MILLIS[1000] is ".999")
        if second != self._second or millisecond != self._millisecond:
            self._start_millisecond(second, millisecond)
        if 0x3F in target:  # b"?" (compiled: a memchr)
            path, _, query = target.partition(b"?")
        else:  # (no tuple, no copies)
            path, query = target, b""
        if host is None:
            host = b""
        if user_agent is None:
            user_agent = b""
        # client (an IP address) and method (a token the parser checked) never need escaping; the others need none
        # when the table, which maps every byte that needs it to NUL, leaves no NUL in them. Host and user agent are
        # checked only when they differ from the last usual line's (usually they do not: a concatenation of two
        # instead of a join of four).
        fresh = request_id + target
        if host != self._host:
            fresh += host
        if user_agent != self._agent:
            fresh += user_agent
        # (`0 in`, not `b"\0" in`: on what Cython does not know is bytes, `in` is bytes.__contains__, which tries a
        # bytes operand as an int first and formats a TypeError, some 800 instructions on CPython 3.11)
        if 0 in _translate(fresh, _MARKS):
            self._append(self._escaped(when, request_id, client, method, host, path, query, protocol,
                                       status, bytes_in, bytes_out, duration, upstream_duration, upstream, route,
                                       user_agent, retries, reason, trace, grpc_status))
            return
        # The usual line: one join of twelve fragments (fourteen with a query). bytes.join pays some 100 instructions
        # per fragment (a buffer each), so the constant text around the fields that stay the same from one line to
        # the next (client, method and host; protocol and status; upstream, route and user agent) is joined when they
        # change and kept; numbers below _NUMBERS_END and durations under a second come from tables.
        if client != self._client or method != self._method or host != self._host:
            self._client, self._method, self._host = client, method, host
            self._who = b"".join((b'","client":"', client, b'","method":"', method, b'","host":"', host,
                                  b'","path":"'))
        if status != self._status or protocol != self._protocol:
            self._status, self._protocol = status, protocol
            self._answer = b"".join((b'","protocol":"', protocol, b'","status":',
                                     _NUMBERS[status] if status < _NUMBERS_END else b"%d" % status,
                                     b',"bytes_in":'))
            self._bare_answer = b'","query":"' + self._answer  # (the same after an empty query)
        if upstream is not self._upstream or route is not self._route or user_agent != self._agent:
            self._upstream, self._route, self._agent = upstream, route, user_agent
            self._where = b"".join((b',"upstream":', upstream or b"null", b",", route, b',"user_agent":"',
                                    user_agent))
            self._plain_tail = self._where + _PLAIN_END
        # Numbers and durations under a second come from tables that hold the key before them too (the line's
        # fragments are fewer: bytes.join's cost is per fragment).
        if bytes_out < _NUMBERS_END:
            sent = _BYTES_OUT[bytes_out]
        else:
            sent = b',"bytes_out":%d' % bytes_out
        micros = int(duration * 1e6 + 0.5)
        if micros < 1000000:
            took, took_us = _DURATION_MS[micros // 1000], _DIGITS3[micros % 1000]
        else:
            took, took_us = b',"duration":%.6f' % duration, b""
        if upstream_duration < 0:
            waited, waited_us = b',"upstream_duration":null', b""
        else:
            micros = int(upstream_duration * 1e6 + 0.5)
            if micros < 1000000:
                waited, waited_us = _UPSTREAM_MS[micros // 1000], _DIGITS3[micros % 1000]
            else:
                waited, waited_us = b',"upstream_duration":%.6f' % upstream_duration, b""
        # The tail (upstream, route, user agent and the line's end) is one kept fragment for a request answered at the
        # first try by the upstream, not traced, not gRPC.
        if retries or reason or trace is not None or grpc_status >= 0:
            tail = self._where + _end(retries, reason, trace, grpc_status)
        else:
            tail = self._plain_tail
        received = _NUMBERS[bytes_in] if bytes_in < _NUMBERS_END else b"%d" % bytes_in
        if query:
            line = b"".join((self._start, request_id, self._who, path, b'","query":"', query, self._answer, received,
                             sent, took, took_us, waited, waited_us, tail))
        else:
            line = b"".join((self._start, request_id, self._who, path, self._bare_answer, received, sent, took,
                             took_us, waited, waited_us, tail))
        self._append(line)

    def _start_millisecond(self, second: int, millisecond: int) -> None:
        """The start of the lines of this millisecond of this second (the date formatted once per second)."""
        if second != self._second:
            self._second = second
            self._stamp = b'{"time":"' + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode("ascii")
        self._millisecond = millisecond
        self._start = self._stamp + _MILLIS_ID[millisecond]

    def _escaped(self, when: float, request_id: bytes, client: bytes, method: bytes, host: bytes,
                 path: bytes, query: bytes, protocol: bytes, status: int, bytes_in: int, bytes_out: int,
                 duration: float, upstream_duration: float, upstream: bytes | None, route: bytes, user_agent: bytes,
                 retries: int, reason: str, trace: bytes | None, grpc_status: int) -> bytes:
        """The line of a request with a field that needs JSON escaping (quotes, backslashes, controls, non-ASCII)."""
        return _LINE % (
            self._stamp, self._millisecond, json_text(request_id), client, method, json_text(host),
            json_text(path), json_text(query), protocol, status, bytes_in,
            bytes_out, duration, b"%.6f" % upstream_duration if upstream_duration >= 0 else b"null",
            upstream or b"null", route, json_text(user_agent), retries,
            b'"%s"' % reason.encode("ascii") if reason else b"null",
            _TRACE % (trace[3:35], trace[36:52]) if trace is not None else _NO_TRACE,
            b"%d" % grpc_status if grpc_status >= 0 else b"null")

    def flush(self) -> None:
        """Write everything queued so far (in the calling thread, blocking: the thread's batch, and close())."""
        with self._lock:
            rest = self._rest
            pending = self.pending
            if rest is None and not pending:
                return
            popleft = pending.popleft
            lines = [popleft() for _ in range(len(pending))]
            count = len(lines)
            if rest is not None:  # (close(), loop mode) the part of a batch the pipe had not taken comes first
                self._rest = None
                lines.insert(0, rest[self._taken:])
                count += self._batch
            try:
                self._write(b"".join(lines))
            except OSError as error:  # stdout gone: count the loss, keep the proxy running
                self._lost(count, error)
                return
            self._done(count)

    def close(self) -> None:
        """Write what is queued and stop writing (also run at interpreter exit)."""
        if self._stop:
            return
        self._stop = True
        loop, timer, wake, thread = self._loop, self._timer, self._wake, self._thread
        if loop is not None and timer is not None:
            timer.cancel()
            if self._rest is not None and not loop.is_closed():
                loop.remove_writer(self._out)
            os.close(self._out)
            self._out = -1
        elif wake is not None and thread is not None:
            wake.release()  # the writer's wait ends now
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=5)
        self.flush()  # (loop mode too: through ``fd``, blocking, what the pipe had not taken)
        atexit.unregister(self.close)

    def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._stop:
            wake.acquire(timeout=self.interval)
            self.flush()

    def _write(self, data: bytes) -> None:
        """The thread's batch: one write into a file or a terminal, else pieces (see _piece_end)."""
        if self._whole or len(data) <= PIPE_BUF:
            _write_all(self.fd, data)
            return
        view = memoryview(data)
        start, end = 0, len(data)
        while start < end:
            stop = _piece_end(data, start)
            _write_all(self.fd, view[start:stop])
            start = stop

    def _tick(self) -> None:
        """(loop) Every ``interval``: the queued lines into the pipe, unless it is still taking the last batch."""
        loop = self._loop
        assert loop is not None
        self._timer = loop.call_later(self.interval, self._tick)
        if self._rest is None and self.pending:
            self._send()

    def _send(self) -> None:
        """(loop) Write the rest of the batch, then the queued lines, until done or the pipe is full."""
        loop = self._loop
        assert loop is not None
        while True:
            rest = self._rest
            taken = self._taken
            if rest is None:
                pending = self.pending
                if not pending:
                    return
                # (the loop's own queue: add runs on the loop too, so nothing comes in between the join and the
                # clear; no popleft per line)
                self._batch = len(pending)
                rest = b"".join(pending)
                pending.clear()
                taken = 0
            try:
                taken = _write_pieces(self._out, rest, taken, self._whole)
            except OSError as error:
                if self._rest is not None:
                    loop.remove_writer(self._out)
                    self._rest = None
                self._lost(self._batch, error)
                return
            if taken < len(rest):  # full: the rest when the pipe drains
                if self._rest is None:
                    loop.add_writer(self._out, self._send)
                self._rest = rest
                self._taken = taken
                return
            if self._rest is not None:
                loop.remove_writer(self._out)
                self._rest = None
            self._done(self._batch)

    def _done(self, count: int) -> None:
        self.written += count
        if self.dropped > self._reported:
            logger.warning("access log: %d lines dropped so far (stdout is not read fast enough)", self.dropped)
            self._reported = self.dropped

    def _lost(self, count: int, error: OSError) -> None:
        self.dropped += count
        if not self._failed:
            self._failed = True
            logger.error("access log: writing to stdout failed (%s); lines are dropped", error)


def _whole_writes(fd: int) -> bool:
    """Whether a batch goes to ``fd`` in one write: a regular file (where one description's writes never
    interleave) or a terminal; not a pipe (see the module), a socket, or what fstat cannot tell."""
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) or os.isatty(fd)
    except OSError:
        return False


def _own_nonblocking(fd: int) -> int:
    """A non-blocking descriptor of our own for the pipe or FIFO ``fd`` writes to, or -1 (not one, no /proc, or
    not allowed): O_NONBLOCK on ``fd`` itself would reach everything sharing its description."""
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return -1
        out = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return -1
    _grow(out)
    return out


def _grow(fd: int) -> None:
    """Let the pipe hold PIPE_SIZE bytes, when it holds less and we may (Linux's F_SETPIPE_SZ): a batch then goes in
    one write or a few, waking the reader once, instead of waiting for the reader to drain 64 KiB at a time."""
    try:
        if fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < PIPE_SIZE:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError):  # above /proc/sys/fs/pipe-max-size, or not Linux: the pipe as it is
        pass


def _piece_end(data: bytes, start: int) -> int:
    """Where the write from ``start`` ends: the last line end within PIPE_BUF bytes, or the end of a longer line."""
    end = len(data)
    if end - start <= PIPE_BUF:
        return end
    stop = data.rfind(b"\n", start, start + PIPE_BUF) + 1
    if stop <= start:  # one line longer than PIPE_BUF
        stop = data.find(b"\n", start + PIPE_BUF) + 1 or end
    return stop


def _write_pieces(fd: int, data: bytes, start: int, whole: bool) -> int:
    """Write ``data`` from ``start`` into the non-blocking pipe ``fd`` in pieces (see _piece_end), or ``whole`` in as
    few writes as the pipe takes; where it stopped (the end, or where the pipe was full). A piece up to PIPE_BUF
    goes whole or not at all; a longer line, or a whole batch, may go in part."""
    view = memoryview(data)
    end = len(data)
    while start < end:
        stop = end if whole else _piece_end(data, start)
        try:
            start += os.write(fd, view[start:stop])
        except BlockingIOError:
            break
    return start


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


__all__ = ["AccessLog", "address_text", "json_text", "route_fields"]
