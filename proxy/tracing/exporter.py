"""The span exporter: finished spans queued on the loop, encoded and POSTed to an OTLP/HTTP collector by a thread.

The loop only appends a record (a tuple) to a deque; past `limit` waiting spans, new ones are dropped and
counted (`dropped`), so a slow or dead collector never blocks the proxy nor grows its memory. The thread
wakes every `interval` (or when a batch is full), encodes up to `batch` spans into one
ExportTraceServiceRequest (proxy.tracing.otlp) and POSTs it (``Content-Type: application/x-protobuf``) over
a kept-alive connection (proxy.tracing.post), each attempt bounded by `timeout`. A batch the collector refuses
or never gets is dropped and counted (`failed`): no retry, the queue behind it is the backlog that matters.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from proxy import __version__
from proxy.tracing import otlp
from proxy.tracing.post import CollectorConnection, CollectorError

logger = logging.getLogger("pyngress.tracing")

# Spans waiting for the thread (OpenTelemetry's BatchSpanProcessor default): past it, new spans are dropped.
DEFAULT_LIMIT = 2048
# Spans per export request (the BatchSpanProcessor's default).
DEFAULT_BATCH = 512
# Seconds between exports when no batch fills up first (the BatchSpanProcessor's schedule delay): how long a
# span waits at most, give or take a POST. Longer waits make fewer, fuller requests where traffic is light.
DEFAULT_INTERVAL = 5.0
# Seconds one export may take (connect, send, answer).
DEFAULT_TIMEOUT = 10.0
# A failing collector is logged at most this often (seconds).
_REPORT_EVERY = 60.0

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an --otlp-endpoint URL; a URL without a path gets /v1/traces (the OTLP
    exporters' rule for a base endpoint). ValueError when it is not an http(s) URL."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{endpoint!r} is not an http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path if parts.path not in ("", "/") else TRACES_PATH
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def resource_attributes(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """service.name and version, the process id, and the pod and namespace from the downward API environment
    (POD_NAME, POD_NAMESPACE) when set."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {"service.name": "pyngress", "service.version": __version__,
                              "process.pid": os.getpid()}
    if env.get("POD_NAME"):
        values["k8s.pod.name"] = env["POD_NAME"]
    if env.get("POD_NAMESPACE"):
        values["k8s.namespace.name"] = env["POD_NAMESPACE"]
    if env.get("NODE_NAME"):
        values["k8s.node.name"] = env["NODE_NAME"]
    return values


class SpanExporter:
    """A bounded queue of finished spans (records of proxy.tracing.tracer) and the thread that exports them."""

    __slots__ = ("url", "limit", "batch", "interval", "timeout", "pending", "dropped", "failed", "exported",
                 "_scheme", "_host", "_port", "_path", "_resource", "_connection", "_wake", "_stop", "_lock",
                 "_thread", "_failing_since", "_reported")

    def __init__(self, endpoint: str, *, limit: int = DEFAULT_LIMIT, batch: int = DEFAULT_BATCH,
                 interval: float = DEFAULT_INTERVAL, timeout: float = DEFAULT_TIMEOUT,
                 resource: dict[str, Any] | None = None) -> None:
        self._scheme, self._host, self._port, self._path = traces_url(endpoint)
        self.url = endpoint
        self.limit = limit
        self.batch = max(1, batch)
        self.interval = interval
        self.timeout = timeout
        # deque: append (loop) and popleft (thread) are atomic, so no span is lost between them.
        self.pending: deque[tuple[Any, ...]] = deque()
        self.dropped = 0  # queue full (counted on the loop)
        self.failed = 0  # in batches the collector refused or never got (counted by the thread)
        self.exported = 0
        self._resource = otlp.resource(resource if resource is not None else resource_attributes())
        self._connection = CollectorConnection(self._scheme, self._host, self._port, self._path, timeout=timeout)
        self._failing_since = 0.0
        self._reported = 0.0
        self._wake = threading.Event()
        self._stop = False
        self._lock = threading.Lock()  # one export at a time (the thread, or close())
        self._thread = threading.Thread(target=self._run, name="pyngress-span-export", daemon=True)
        self._thread.start()

    def add(self, record: tuple[Any, ...]) -> None:
        """Queue one finished span (on the event loop; never blocks)."""
        pending = self.pending
        if len(pending) >= self.limit:
            self.dropped += 1
            return
        pending.append(record)
        if len(pending) == self.batch:
            self._wake.set()

    def idle(self) -> bool:
        """Nothing queued and no export under way: a flush would have nothing to do (or wait for)."""
        return not self.pending and not self._lock.locked()

    def flush(self) -> None:
        """Export everything queued so far (in the calling thread; the loop never calls it)."""
        with self._lock:
            pending = self.pending
            while pending:
                popleft = pending.popleft
                records = [popleft() for _ in range(min(len(pending), self.batch))]
                self._export(records)

    def close(self, timeout: float = 5.0) -> None:
        """Export what is queued and stop the thread (blocking: run it off the loop)."""
        if self._stop:
            return
        self._stop = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)
        self._connection.close()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()
        self.flush()

    def _export(self, records: list[tuple[Any, ...]]) -> None:
        try:
            body = otlp.export_request(self._resource, [otlp.encode_span(record) for record in records])
        except Exception:  # a bug: lose the batch, not the thread
            logger.exception("tracing: could not encode %d spans; dropped", len(records))
            self.failed += len(records)
            return
        error = self._post(body)
        if error is None:
            self.exported += len(records)
            if self._failing_since:
                logger.info("tracing: the collector at %s takes spans again", self.url)
                self._failing_since = 0.0
            return
        self.failed += len(records)
        now = time.monotonic()
        if not self._failing_since:
            self._failing_since = now
        if now - self._reported >= _REPORT_EVERY:
            self._reported = now
            logger.warning("tracing: exporting spans to %s failed (%s); %d spans dropped so far", self.url, error,
                           self.failed + self.dropped)

    def _post(self, body: bytes) -> str | None:
        """POST one request; None when the collector took it, else what went wrong."""
        try:
            status = self._connection.post(body)
        except (OSError, CollectorError) as error:
            return f"{type(error).__name__}: {error}"
        return None if 200 <= status < 300 else f"HTTP {status}"

__all__ = ["DEFAULT_BATCH", "DEFAULT_INTERVAL", "DEFAULT_LIMIT", "DEFAULT_TIMEOUT", "SpanExporter",
           "TRACES_PATH", "resource_attributes", "traces_url"]
