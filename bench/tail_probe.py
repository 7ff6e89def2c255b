"""`python -m bench.tail_probe ARGS...`: pyngress (`python -m proxy ARGS...`) with instruments for the latency tail.

What it adds to the process, for bench.tail (issue #14's p99), each switched by an environment variable:

* `PYNGRESS_PROBE_FILE=PATH`: a thread writes a JSON snapshot to PATH every 0.2 s (atomic rename): the cyclic
  GC's collections per generation with their pause times (measured by `gc.callbacks`), and the event loop's lag;
* `PYNGRESS_PROBE_LAG_MS=N`: every N ms the thread schedules a callback on the loop (`call_soon_threadsafe`) and
  records how late it ran: the longest stretch the loop spent without coming back to its ready queue;
* `PYNGRESS_PROBE_FULL_GC_S=S`: a full collection (`gc.collect()`) on the loop every S seconds, standing in for
  the ones the collector starts itself when enough objects have survived (their rate depends on connection churn);
* `PYNGRESS_PROBE_GC=...`: what to do to the collector before the proxy starts, to compare within one run:
  `off` (gc.disable()), `threshold=A,B,C` (gc.set_threshold), `nofreeze` (the proxy's own freeze skipped),
  `publish-only` (the freeze at publishes, not after full collections),
  joined by `+`.

Nothing here is shipped: it wraps the real entry point (proxy.cli.main) and the real loop.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# Pause buckets (upper bounds in ms) for the GC and the loop lag histograms.
BUCKETS_MS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, float("inf"))


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS_MS)
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.n = 0

    def add(self, ms: float) -> None:
        self.n += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        for i, bound in enumerate(BUCKETS_MS):
            if ms <= bound:
                self.counts[i] += 1
                break

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "total_ms": round(self.total_ms, 3), "max_ms": round(self.max_ms, 3),
                "buckets": {("inf" if b == float("inf") else f"{b:g}"): c for b, c in zip(BUCKETS_MS, self.counts)}}


class Probe:
    def __init__(self) -> None:
        self.gc = [Histogram() for _ in range(3)]
        self.collected = [0, 0, 0]
        self.lag = Histogram()
        self.cpu_lag = Histogram()  # the loop thread's own CPU time over the same stretch (preemption left out)
        self.gc_cpu = Histogram()
        self._gc_started = self._gc_cpu_started = 0.0
        self._main_clock = time.pthread_getcpuclockid(threading.main_thread().ident or 0)
        self.loop: asyncio.AbstractEventLoop | None = None

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_cpu_started = time.thread_time()
            return
        generation = info["generation"]
        self.gc[generation].add((time.perf_counter() - self._gc_started) * 1000)
        self.gc_cpu.add((time.thread_time() - self._gc_cpu_started) * 1000)
        self.collected[generation] += info.get("collected", 0)

    def snapshot(self) -> dict[str, Any]:
        return {"time": time.monotonic(), "gc": [h.to_json() for h in self.gc], "collected": self.collected,
                "gc_counts": gc.get_count(), "gc_threshold": gc.get_threshold(), "gc_enabled": gc.isenabled(),
                "gc_cpu": self.gc_cpu.to_json(), "lag": self.lag.to_json(), "cpu_lag": self.cpu_lag.to_json()}

    def _lag_done(self, scheduled: float, cpu: float) -> None:
        self.lag.add((time.perf_counter() - scheduled) * 1000)
        self.cpu_lag.add((time.thread_time() - cpu) * 1000)

    def run_thread(self, path: str, lag_ms: float, full_gc_s: float) -> None:
        next_write = 0.0
        next_full = time.perf_counter() + full_gc_s
        while True:
            now = time.perf_counter()
            loop = self.loop
            if full_gc_s > 0 and now >= next_full and loop is not None and not loop.is_closed():
                next_full = now + full_gc_s
                try:
                    loop.call_soon_threadsafe(gc.collect)
                except RuntimeError:
                    return
            if lag_ms > 0 and loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._lag_done, now, time.clock_gettime(self._main_clock))
                except RuntimeError:
                    return
            if now >= next_write and path:
                next_write = now + 0.2
                temporary = path + ".tmp"
                with open(temporary, "w", encoding="utf-8") as out:
                    json.dump(self.snapshot(), out)
                os.replace(temporary, path)
            time.sleep(lag_ms / 1000 if lag_ms > 0 else 0.1)


def _apply_gc(spec: str) -> None:
    for item in filter(None, (part.strip() for part in spec.split("+"))):
        if item == "off":
            gc.disable()
        elif item.startswith("threshold="):
            gc.set_threshold(*(int(x) for x in item.split("=", 1)[1].split(",")))
        elif item == "nofreeze":
            from proxy import server

            server.ProxyServer._freeze = lambda self: None  # type: ignore[method-assign]
        elif item == "publish-only":  # the freeze at publishes only, none after full collections (as before)
            from proxy import gc_freeze

            gc_freeze.after_collection = lambda phase, info: None
        else:
            raise SystemExit(f"tail_probe: unknown PYNGRESS_PROBE_GC item {item!r}")


def main() -> int:
    probe = Probe()
    _apply_gc(os.environ.get("PYNGRESS_PROBE_GC", ""))
    gc.callbacks.append(probe.on_gc)
    from proxy import cli

    factory = cli.loop_factory

    def capturing_factory() -> Callable[[], asyncio.AbstractEventLoop]:
        made = factory() or asyncio.new_event_loop

        def make() -> asyncio.AbstractEventLoop:
            probe.loop = loop = made()
            return loop

        return make

    cli.loop_factory = capturing_factory  # type: ignore[assignment]
    path = os.environ.get("PYNGRESS_PROBE_FILE", "")
    lag_ms = float(os.environ.get("PYNGRESS_PROBE_LAG_MS", "0") or 0)
    full_gc_s = float(os.environ.get("PYNGRESS_PROBE_FULL_GC_S", "0") or 0)
    if path or lag_ms or full_gc_s:
        threading.Thread(target=probe.run_thread, args=(path, lag_ms, full_gc_s), daemon=True,
                         name="tail-probe").start()
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
