"""The load: wrk (-t1 -c64 by default) with a Lua script that reports its numbers as one JSON line.

The Lua `done()` callback prints `BENCHJSON {...}` (requests, duration, bytes, socket errors,
non-2xx/3xx count, latency percentiles in microseconds), so nothing depends on wrk's
human-readable units. While wrk runs, a sampler thread reads the proxy's RSS and CPU time.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Self

_MARK = "BENCHJSON "
_DONE = r"""
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.max, latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class Request:
    """What every connection sends: one request, or a rotation over (host, path) pairs."""

    path: str = "/"
    host: str = "bench.local"
    method: str = "GET"
    body_bytes: int = 0
    # Payload bytes one request moves (response body for downloads, request body for uploads): MB/s.
    payload_bytes: int = 0
    rotation: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # extra header fields every request carries


def lua_script(request: Request) -> str:
    """The wrk script: fixed request (fast path of wrk) or a precomputed rotation; always the JSON done()."""
    lines = [f'wrk.method = "{request.method}"', f'wrk.headers["Host"] = "{request.host}"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in request.headers]
    if request.body_bytes:
        lines.append(f'wrk.body = string.rep("x", {request.body_bytes})')
        lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
    if request.rotation:
        pairs = ",\n".join(f'  {{"{host}", "{path}"}}' for host, path in request.rotation)
        lines.append(f"local pairs = {{\n{pairs}\n}}")
        lines.append("""local requests = {}
local count = 0
local index = 0
init = function(args)
   for i, pair in ipairs(pairs) do
      requests[i] = wrk.format(nil, pair[2], {["Host"] = pair[1]})
      count = i
   end
end
request = function()
   index = index % count + 1
   return requests[index]
end""")
    return "\n".join(lines) + "\n" + _DONE


@dataclass(slots=True)
class LoadResult:
    """One wrk run against one proxy, plus what the sampler saw of the proxy process."""

    requests: int = 0
    duration_s: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0  # with -c N connections in a closed loop, N / req/s (Little's law)
    mb_per_s: float = 0.0  # payload MB (10^6 bytes) per second
    read_mb_per_s: float = 0.0  # everything wrk read (headers included)
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx: int = 0
    rss_peak_kib: int | None = None
    rss_end_kib: int | None = None
    cpu_percent: float | None = None  # of one core, over the run
    error: str = ""

    @property
    def failed_requests(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["failed_requests"] = self.failed_requests
        return data


def parse_output(stdout: str, *, payload_bytes: int) -> LoadResult:
    """The LoadResult of wrk's output (the BENCHJSON line); error set when it is missing."""
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            data = json.loads(line[len(_MARK):])
            seconds = data["duration_us"] / 1e6 or 1e-9
            rps = data["requests"] / seconds
            return LoadResult(
                requests=data["requests"], duration_s=seconds, rps=rps,
                p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000, p99_ms=data["p99_us"] / 1000,
                p999_ms=data["p999_us"] / 1000, max_ms=data["max_us"] / 1000, mean_ms=data["mean_us"] / 1000,
                mb_per_s=rps * payload_bytes / 1e6, read_mb_per_s=data["bytes"] / seconds / 1e6,
                socket_errors={k: data[k] for k in ("connect", "read", "write", "timeout")},
                non_2xx=data["status"],
            )
    return LoadResult(error="no BENCHJSON line in wrk output:\n" + stdout[-2000:])


class Sampler:
    """Samples RSS (peak) of a measured process every `interval` seconds while wrk runs, and its CPU time."""

    def __init__(self, rss: Callable[[], int | None], cpu: Callable[[], float | None], *,
                 interval: float = 0.25) -> None:
        self._rss, self._cpu, self._interval = rss, cpu, interval
        self._stop = threading.Event()
        self.peak: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self._cpu_start: float | None = None
        self._wall_start = 0.0
        self.cpu_percent: float | None = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            value = self._rss()
            if value is not None and (self.peak is None or value > self.peak):
                self.peak = value

    def __enter__(self) -> Self:
        self._cpu_start = self._cpu()
        self._wall_start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        cpu_end = self._cpu()
        wall = time.monotonic() - self._wall_start
        if self._cpu_start is not None and cpu_end is not None and wall > 0:
            self.cpu_percent = 100.0 * (cpu_end - self._cpu_start) / wall


def run_wrk(wrk: str, *, url: str, request: Request, duration: float, connections: int = 64, threads: int = 1,
            workdir: str, measured: MeasuredProcess | None = None, timeout_s: float = 10.0) -> LoadResult:
    """One bounded wrk run (-d duration; killed if it overruns by 30 s)."""
    script = os.path.join(workdir, f"wrk-{os.getpid()}-{time.monotonic_ns()}.lua")
    with open(script, "w", encoding="utf-8") as out:
        out.write(lua_script(request))
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", f"--timeout={timeout_s:g}s",
            "--latency", "-s", script, url]
    sampler = Sampler(measured.rss_kib, measured.cpu_seconds) if measured is not None else None
    try:
        with sampler if sampler is not None else contextlib.nullcontext():
            completed = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    finally:
        os.unlink(script)
    result = parse_output(completed.stdout, payload_bytes=request.payload_bytes)
    if completed.returncode != 0 and not result.error:
        result.error = f"wrk exited with {completed.returncode}: {completed.stderr[-500:]}"
    elif result.error:
        result.error += "\n" + completed.stderr[-500:]
    if sampler is not None and measured is not None:
        result.rss_peak_kib = sampler.peak
        result.rss_end_kib = measured.rss_kib()
        result.cpu_percent = sampler.cpu_percent
    return result


class MeasuredProcess(Protocol):
    """What the sampler needs of a process (bench.processes.Process fits)."""

    def rss_kib(self) -> int | None: ...

    def cpu_seconds(self) -> float | None: ...


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def p99_parts(ours: dict[str, Any], reference: dict[str, Any]) -> str:
    """A p99 ratio as the mean latency ratio x the tail's shape ratio (p99/mean against the reference's), from two
    summaries with p99_ms and mean_ms: in wrk's closed loop the mean is connections / req/s (Little's law), so a
    proxy at 0.6x the reference's req/s starts at 1.67x its mean latency before any tail (bench/tail.py)."""
    mean, mean_ref, p99, p99_ref = (ours.get("mean_ms"), reference.get("mean_ms"), ours.get("p99_ms"),
                                    reference.get("p99_ms"))
    if not mean or not mean_ref or not p99 or not p99_ref:
        return ""
    return f" (mean {mean / mean_ref:.2f}x, p99/mean {(p99 / mean) / (p99_ref / mean_ref):.2f}x the reference's)"
