"""The access log: one JSON object per request on stdout, written off the event loop.

A finished request costs the loop one tuple appended to a list (the values it already has,
unformatted). A writer thread takes the whole list every ``interval``, formats the lines and
writes them, so a slow stdout reader (a full pipe) stalls the thread, never the proxy; past
``limit`` waiting records, new ones are dropped and counted instead of growing memory.

Writes go out in pieces of at most PIPE_BUF bytes cut at line ends: several worker processes
share one stdout pipe, and such writes are atomic, so lines never interleave.

Fields (ingress-nginx users will recognise most of them from its JSON log formats):
``time`` (UTC, ms), ``request_id``, ``client``, ``method``, ``host`` (Host header), ``path``,
``query``, ``protocol``, ``status``, ``bytes_in`` (request line, header and body),
``bytes_out``, ``duration`` (seconds, first request byte to last response byte),
``upstream_duration`` (to the upstream's response head; null when none), ``upstream``
(address:port; null when none), ``namespace``, ``ingress``, ``route_host``, ``route_path``
and ``service`` of the matched route (empty when none matched), ``user_agent``, ``retries``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from json.encoder import encode_basestring_ascii as _quote  # type: ignore[attr-defined]
from typing import Any

logger = logging.getLogger("pyngress.access")

# Records waiting for the writer thread; at 30k requests/s this is over 3 s of traffic.
DEFAULT_LIMIT = 100_000
# How often the writer thread wakes: the longest a line waits before it is written.
DEFAULT_INTERVAL = 0.1
# Largest write that a pipe keeps atomic (POSIX PIPE_BUF on Linux).
PIPE_BUF = 4096

# (time, request_id, client, method, host, target, http10, status, bytes_in, bytes_out, duration,
#  upstream_duration (<0: none), upstream (Endpoint or None), route labels, user_agent, retries)
Record = tuple[Any, ...]


class AccessLog:
    """Collects request records on the loop; a daemon thread formats and writes them."""

    __slots__ = ("fd", "limit", "interval", "pending", "dropped", "written", "_wake", "_stop", "_thread",
                 "_lock", "_failed", "_reported")

    def __init__(self, fd: int = 1, *, limit: int = DEFAULT_LIMIT, interval: float = DEFAULT_INTERVAL) -> None:
        self.fd = fd
        self.limit = limit
        self.interval = interval
        # deque: append (loop) and popleft (thread) are atomic, so no record is lost between them.
        self.pending: deque[Record] = deque()
        self.dropped = 0
        self.written = 0
        self._failed = False
        self._reported = 0  # dropped count last logged (from the writer thread, at most once per flush)
        self._wake = threading.Event()
        self._stop = False
        self._lock = threading.Lock()  # one writer at a time (the thread, or close())
        self._thread = threading.Thread(target=self._run, name="pyngress-access-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def add(self, record: Record) -> None:
        """Queue one record (called on the event loop; never blocks)."""
        pending = self.pending
        if len(pending) < self.limit:
            pending.append(record)
        else:
            self.dropped += 1

    def flush(self) -> None:
        """Format and write everything queued so far (in the calling thread)."""
        with self._lock:
            pending = self.pending
            if not pending:
                return
            popleft = pending.popleft
            batch = [popleft() for _ in range(len(pending))]
            try:
                self._write(format_lines(batch))
            except OSError as error:  # stdout gone: count the loss, keep the proxy running
                self.dropped += len(batch)
                if not self._failed:
                    self._failed = True
                    logger.error("access log: writing to stdout failed (%s); lines are dropped", error)
                return
            self.written += len(batch)
            if self.dropped > self._reported:
                logger.warning("access log: %d lines dropped so far (stdout is not read fast enough)",
                               self.dropped)
                self._reported = self.dropped

    def close(self) -> None:
        """Write what is queued and stop the thread (also run at interpreter exit)."""
        if self._stop:
            return
        self._stop = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
        atexit.unregister(self.close)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self.flush()

    def _write(self, lines: list[bytes]) -> None:
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if size + len(line) > PIPE_BUF and chunk:
                _write_all(self.fd, b"".join(chunk))
                chunk.clear()
                size = 0
            chunk.append(line)
            size += len(line)
        if chunk:
            _write_all(self.fd, b"".join(chunk))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def format_lines(records: list[Record]) -> list[bytes]:
    """JSON lines for ``records`` (ASCII-only JSON: bytes outside ASCII become \\u escapes)."""
    out = []
    for (when, request_id, client, method, host, target, http10, status, bytes_in, bytes_out, duration,
         upstream_duration, upstream, labels, user_agent, retries) in records:
        query_at = target.find(b"?")
        path = target if query_at < 0 else target[:query_at]
        query = b"" if query_at < 0 else target[query_at + 1 :]
        seconds = int(when)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % int((when - seconds) * 1000)
        if upstream is None:
            upstream_text = "null"
        elif ":" in upstream.address:
            upstream_text = '"[%s]:%d"' % (upstream.address, upstream.port)
        else:
            upstream_text = '"%s:%d"' % (upstream.address, upstream.port)
        namespace, ingress, route_host, route_path, service = labels
        line = (
            '{"time":"%s","request_id":%s,"client":%s,"method":%s,"host":%s,"path":%s,"query":%s,'
            '"protocol":"%s","status":%d,"bytes_in":%d,"bytes_out":%d,"duration":%.6f,"upstream_duration":%s,'
            '"upstream":%s,"namespace":%s,"ingress":%s,"route_host":%s,"route_path":%s,"service":%s,'
            '"user_agent":%s,"retries":%d}\n'
            % (
                stamp, _text(request_id), _text(client), _text(method), _text(host), _text(path), _text(query),
                "HTTP/1.0" if http10 else "HTTP/1.1", status, bytes_in, bytes_out, duration,
                "%.6f" % upstream_duration if upstream_duration >= 0 else "null", upstream_text,
                _quote(namespace), _quote(ingress), _quote(route_host), _quote(route_path), _quote(service),
                _text(user_agent), retries,
            )
        )
        out.append(line.encode("ascii"))
    return out


def _text(value: bytes | None) -> str:
    """A JSON string for raw header bytes (latin-1 keeps every byte; escapes keep the line ASCII)."""
    return _quote(value.decode("latin-1")) if value else '""'


__all__ = ["AccessLog", "format_lines"]
