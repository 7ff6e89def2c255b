"""`python -m bench.propagation`: how long a change takes to be served, in file mode and cluster mode.

Each mode runs a real `pyngress` process (ephemeral ports on 127.0.0.1) in front of the bench's
Python backend, then makes `--changes` changes one after the other. A change gives the probe
Ingress (host `probe.local`) a new Exact path; the time from the change to the first 200 on that
path (polled about every millisecond over one keep-alive connection) is one sample.

- file mode: `pyngress --manifests DIR`; the change is the probe manifest written to a dot-file
  and renamed over `40-probe.json` (as editors and `kubectl cp` do).
- cluster mode: `pyngress --kubeconfig` against the Kubernetes API emulator of tests/kubeapi,
  run in this process on its own thread and event loop; the change is an HTTP PUT of the probe
  Ingress to the emulator. A second watch, opened by this script on the emulator, timestamps
  when the change's watch event is delivered, and pyngress's own log says how long each build
  took, so the total can be split into API write + watch delivery, build, and the rest
  (the controller's debounce, thread hops, publishing).
- `--scale N`: the emulator holds N Ingresses, N Services and N EndpointSlices before pyngress
  starts; reported: seconds from the process start to /readyz 200, and (`--scale-changes`)
  the propagation of changes with that table loaded.

Prints a table (p50, p99, max per mode) and writes JSON (default bench/results/propagation-<time>.json).
Everything is loopback-only and bounded: each change gives up after `--timeout` seconds (counted
as missed) and each mode stops after `--max-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from bench import manifests
from bench.client import HttpConnection, ResponseError
from bench.processes import (
    Process,
    ProcessGroup,
    PyngressAddress,
    StartError,
    read_status_kib,
    start_pyngress,
    start_python_backend,
)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_READY = re.compile(r"pyngress listening http=(?P<host>[^:\s]+):(?P<http>\d+)\b.*admin=[^:\s]+:(?P<admin>\d+)")
_ADMIN = re.compile(r"pyngress admin=[^:\s]+:(?P<admin>\d+)")
_BUILT = re.compile(r"configuration generation (\d+):.* built in ([0-9.]+) ms")
_LISTED = re.compile(r"listed (\d+) (\S+)")
INGRESS_API = "/apis/networking.k8s.io/v1"
# Between probes of the proxy: the resolution of a sample, and a bound on the load the probing adds.
PROBE_PAUSE = 0.001


def _emulator_class() -> Any:
    """tests/kubeapi's KubeApiServer (the test double lives with the tests, not in the package)."""
    tests = os.path.join(_REPO, "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from kubeapi import KubeApiServer
    return KubeApiServer


# ---------------------------------------------------------------------------------- measurement

def distribution(samples_ms: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/max of the samples (nearest rank), with the samples themselves."""
    if not samples_ms:
        return {"count": 0}
    ordered = sorted(samples_ms)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"count": len(ordered), "p50_ms": round(statistics.median(ordered), 2), "p90_ms": round(rank(0.90), 2),
            "p99_ms": round(rank(0.99), 2), "max_ms": round(ordered[-1], 2), "min_ms": round(ordered[0], 2),
            "mean_ms": round(statistics.fmean(ordered), 2)}


@dataclass
class Run:
    """The samples of one mode."""

    samples_ms: list[float] = field(default_factory=list)
    generations: list[int] = field(default_factory=list)
    started: list[float] = field(default_factory=list)  # perf_counter() when each change began
    missed: int = 0
    stopped_early: bool = False

    def to_json(self) -> dict[str, Any]:
        return distribution(self.samples_ms) | {"missed": self.missed, "stopped_early": self.stopped_early,
                                                 "samples_ms": [round(s, 2) for s in self.samples_ms]}


def measure(address: PyngressAddress, change: Callable[[int], None], *, count: int, timeout: float,
            jitter: float, max_seconds: float, seed: int = 11) -> Run:
    """Make `count` changes; for each, ms from just before `change(generation)` to the first 200 on its path."""
    rng = random.Random(seed)
    proxy = HttpConnection(address.host, address.http_port, timeout=5)
    run = Run()
    base = int(time.time()) * 1000  # paths never served before, even by a reused process
    ends = time.monotonic() + max_seconds
    try:
        for k in range(1, count + 1):
            if time.monotonic() > ends:
                run.stopped_early = True
                break
            time.sleep(rng.uniform(0, jitter))  # no phase-locking with any timer in the proxy
            generation = base + k
            path = manifests.probe_path(generation)
            started = time.perf_counter()
            change(generation)
            while True:
                try:
                    status, _ = proxy.request("GET", path, host=manifests.PROBE_HOST)
                except (OSError, ResponseError):
                    status = 0
                elapsed = time.perf_counter() - started
                if status == 200:
                    run.samples_ms.append(elapsed * 1000)
                    run.generations.append(generation)
                    run.started.append(started)
                    break
                if elapsed > timeout:
                    run.missed += 1
                    break
                time.sleep(PROBE_PAUSE)
    finally:
        proxy.close()
    return run


def build_times(process: Process, since: int) -> list[float]:
    """ms of each build pyngress logged (generation > since)."""
    return [float(ms) for gen, ms in _BUILT.findall(process.log_text()) if int(gen) > since]


def last_generation(process: Process) -> int:
    found = _BUILT.findall(process.log_text())
    return int(found[-1][0]) if found else 0


# ---------------------------------------------------------------------------------- the emulator

class Emulator:
    """The API emulator on its own event loop in a thread: the blocking probe loop of the main thread
    never stalls its watch streams. Store writes always run on that loop (watch queues are not
    thread-safe)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kube-api", daemon=True)
        self.server: Any = None
        # resourceVersion -> perf_counter() when our own watch received that event
        self.delivered: dict[str, float] = {}
        self._observer: asyncio.Task[None] | None = None

    def __enter__(self) -> Self:
        self.thread.start()
        self.server = self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self._stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            if not self.thread.is_alive():
                self.loop.close()

    def run(self, coroutine: Any, *, timeout: float = 300.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return str(self.server.url)

    async def _start(self) -> Any:
        server = _emulator_class()(allow_loopback=True, bookmark_interval=3600)
        await server.start()
        return server

    async def _stop(self) -> None:
        if self._observer is not None:
            self._observer.cancel()
            await asyncio.gather(self._observer, return_exceptions=True)
        await self.server.stop()

    def create_all(self, objects: Sequence[dict[str, Any]]) -> None:
        async def create() -> None:
            for index, obj in enumerate(objects):
                self.server.create(obj)
                if index % 500 == 499:
                    await asyncio.sleep(0)  # let open watches drain
        self.run(create())

    def observe_ingresses(self) -> None:
        """Open a watch of Ingresses from now (a second client, as pyngress's is) and timestamp each event."""
        ready = threading.Event()

        async def watch() -> None:
            import aiohttp
            version = str(self.server.store.rv)
            url = f"{self.url}{INGRESS_API}/ingresses?watch=true&resourceVersion={version}"
            async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout()) as answer:
                ready.set()
                while line := await answer.content.readline():
                    arrived = time.perf_counter()
                    event = json.loads(line)
                    rv = event.get("object", {}).get("metadata", {}).get("resourceVersion")
                    if rv:
                        self.delivered[rv] = arrived

        async def start() -> None:
            self._observer = asyncio.create_task(watch())

        self.run(start())
        if not ready.wait(30):
            raise StartError("the observing watch did not open")


def kubeconfig(path: str, url: str) -> str:
    import yaml
    with open(path, "w", encoding="utf-8") as out:
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": url}}],
            "users": [{"name": "bench", "user": {"token": "bench"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "bench"}}]}, out)
    return path


def start_cluster_pyngress(group: ProcessGroup, *, config: str, name: str, extra: Sequence[str] = (),
                           timeout: float = 300.0) -> tuple[Process, PyngressAddress, float, float]:
    """`python -m proxy --kubeconfig`; returns the process, its ports, seconds to the admin port
    and seconds to `pyngress listening` (the first configuration is live)."""
    argv = [sys.executable, "-m", "proxy", "--kubeconfig", config, "--http-port", "0", "--https-port", "0",
            "--admin-port", "0", "--bind", "127.0.0.1", "--no-access-log", *extra]
    env = dict(os.environ)
    env["PYTHONPATH"] = _REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    started = time.monotonic()
    process = group.start(name, argv, env=env, cwd=_REPO)
    process.wait_line(_ADMIN, timeout=timeout)
    admin_at = time.monotonic() - started
    match = process.wait_line(_READY, timeout=timeout)
    address = PyngressAddress(match["host"], int(match["http"]), int(match["admin"]))
    return process, address, admin_at, time.monotonic() - started


def wait_ready(address: PyngressAddress, *, started: float, timeout: float) -> float:
    """Seconds from `started` (monotonic) to the first /readyz 200."""
    connection = HttpConnection(address.host, address.admin_port, timeout=5)
    try:
        while True:
            try:
                status, _ = connection.request("GET", "/readyz", host=f"{address.host}:{address.admin_port}")
            except (OSError, ResponseError):
                status = 0
            if status == 200:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise StartError(f"/readyz not 200 after {timeout:.0f} s")
            time.sleep(0.01)
    finally:
        connection.close()


# ---------------------------------------------------------------------------------- the modes

@dataclass
class Options:
    changes: int
    timeout: float
    jitter: float
    max_seconds: float
    scale: int
    scale_changes: int
    pyngress_args: tuple[str, ...]


def file_mode(group: ProcessGroup, workdir: str, backend: tuple[str, int], opts: Options) -> dict[str, Any]:
    folder = os.path.join(workdir, "manifests")
    manifests.write_folder(folder, manifests.objects(None, backend=[backend]))
    process, address, _ = start_pyngress(group, manifests=folder, name="pyngress-file", extra=opts.pyngress_args)
    try:
        print(f"propagation: file mode, pyngress on :{address.http_port}, {opts.changes} changes", flush=True)
        since = last_generation(process)
        run = measure(address, lambda generation: manifests.write_probe(folder, generation), count=opts.changes,
                      timeout=opts.timeout, jitter=opts.jitter, max_seconds=opts.max_seconds)
        builds = build_times(process, since)
        inotify = "polling every" not in process.log_text()
    finally:
        group.stop(process)
    return run.to_json() | {"source": "inotify" if inotify else "polling", "build_ms": distribution(builds)}


def _put_probe(api: HttpConnection, generation: int) -> str:
    body = json.dumps(manifests.probe_ingress(generation)).encode()
    status, answer = api.request("PUT", f"{INGRESS_API}/namespaces/{manifests.NAMESPACE}/ingresses/probe",
                                 host=f"{api.address[0]}:{api.address[1]}", body=body)
    if status != 200:
        raise RuntimeError(f"PUT probe Ingress answered {status}: {answer[:200]!r}")
    return str(json.loads(answer)["metadata"]["resourceVersion"])


def _seed(emulator: Emulator, backend: tuple[str, int], *, scale: int = 0) -> None:
    objs = manifests.objects(None, backend=[backend])
    objects: list[dict[str, Any]] = [*objs.ingress_classes, *objs.services, *objs.endpoint_slices, *objs.ingresses]
    for i in range(scale):
        name = f"app-{i}"
        objects.append(manifests.service(name))
        objects.append(manifests.endpoint_slice(name, [backend]))
        objects.append(manifests.ingress(name, [(f"{name}.scale.local", [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"name": "http"}}}}])]))
    for obj in objects:
        obj["metadata"].pop("creationTimestamp", None)  # the API server sets it
    emulator.create_all(objects)


def _cluster_changes(emulator: Emulator, process: Process, address: PyngressAddress, *, count: int,
                     opts: Options) -> dict[str, Any]:
    """Measure `count` changes through the emulator's HTTP API, with the breakdown described at the top."""
    host, port = emulator.server.host, emulator.server.port
    api = HttpConnection(host, port, timeout=10)
    versions: dict[int, str] = {}

    def change(generation: int) -> None:
        versions[generation] = _put_probe(api, generation)

    since = last_generation(process)
    try:
        run = measure(address, change, count=count, timeout=opts.timeout, jitter=opts.jitter,
                      max_seconds=opts.max_seconds)
    finally:
        api.close()
    delivery = [(emulator.delivered[versions[g]] - started) * 1000
                for g, started in zip(run.generations, run.started) if versions.get(g) in emulator.delivered]
    builds = build_times(process, since)
    result = run.to_json() | {"watch_delivery_ms": distribution(delivery), "build_ms": distribution(builds)}
    return result


def cluster_mode(group: ProcessGroup, workdir: str, backend: tuple[str, int], opts: Options) -> dict[str, Any]:
    with Emulator() as emulator:
        _seed(emulator, backend)
        config = kubeconfig(os.path.join(workdir, "kubeconfig"), emulator.url)
        process, address, _, _ = start_cluster_pyngress(group, config=config, name="pyngress-cluster",
                                                        extra=opts.pyngress_args)
        try:
            emulator.observe_ingresses()
            print(f"propagation: cluster mode, pyngress on :{address.http_port}, emulator {emulator.url}, "
                  f"{opts.changes} changes", flush=True)
            return _cluster_changes(emulator, process, address, count=opts.changes, opts=opts)
        finally:
            group.stop(process)


def scale_mode(group: ProcessGroup, workdir: str, backend: tuple[str, int], opts: Options) -> dict[str, Any]:
    n = opts.scale
    with Emulator() as emulator:
        began = time.monotonic()
        _seed(emulator, backend, scale=n)
        preload = time.monotonic() - began
        print(f"propagation: scale, emulator holds {n} Ingresses, Services and EndpointSlices "
              f"(preloaded in {preload:.1f} s)", flush=True)
        config = kubeconfig(os.path.join(workdir, "kubeconfig-scale"), emulator.url)
        started = time.monotonic()
        process, address, admin_at, listening_at = start_cluster_pyngress(
            group, config=config, name="pyngress-scale", extra=opts.pyngress_args)
        try:
            ready = wait_ready(address, started=started, timeout=opts.max_seconds)
            rss = read_status_kib(process.pid)
            listed = [(int(count), what) for count, what in _LISTED.findall(process.log_text())]
            first_build = build_times(process, 0)[:1]
            result: dict[str, Any] = {
                "objects_per_kind": n, "preload_s": round(preload, 2), "admin_port_s": round(admin_at, 2),
                "listening_s": round(listening_at, 2), "readyz_s": round(ready, 2),
                "first_build_ms": first_build[0] if first_build else None,
                "rss_mib_ready": round(rss / 1024, 1) if rss else None, "listed": listed}
            if opts.scale_changes > 0:
                emulator.observe_ingresses()
                print(f"propagation: scale, {opts.scale_changes} changes with the table loaded", flush=True)
                result["changes"] = _cluster_changes(emulator, process, address, count=opts.scale_changes, opts=opts)
            return result
        finally:
            group.stop(process)


# ---------------------------------------------------------------------------------- report

def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: dict[str, Any], target_ms: float) -> str:
    rows = [("mode", "changes", "p50 ms", "p90 ms", "p99 ms", "max ms", "missed", f"p99<={target_ms:g}")]
    for label, key in (("file", "file"), ("cluster", "cluster")):
        data = results.get(key)
        if data:
            rows.append(_row(label, data, target_ms))
    scale = results.get("scale")
    if scale and scale.get("changes"):
        rows.append(_row(f"cluster, {scale['objects_per_kind']} of each", scale["changes"], target_ms))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    details = [("file", results.get("file")), ("cluster", results.get("cluster"))]
    if scale and scale.get("changes"):
        details.append((f"cluster, {scale['objects_per_kind']} of each", scale["changes"]))
    for label, found in details:
        data = found or {}
        parts = []
        if data.get("watch_delivery_ms", {}).get("count"):
            d = data["watch_delivery_ms"]
            parts.append(f"API write + watch delivery p50 {_ms(d['p50_ms'])} / p99 {_ms(d['p99_ms'])} ms")
        if data.get("build_ms", {}).get("count"):
            b = data["build_ms"]
            parts.append(f"build p50 {_ms(b['p50_ms'])} / p99 {_ms(b['p99_ms'])} ms ({b['count']} builds)")
        if data.get("source"):
            parts.append(f"changes seen by {data['source']}")
        if parts:
            lines.append(f"{label}: " + "; ".join(parts))
    if scale:
        lines.append(f"scale: {scale['objects_per_kind']} Ingresses + Services + EndpointSlices: /readyz 200 after "
                     f"{scale['readyz_s']:.2f} s (admin port {scale['admin_port_s']:.2f} s, first build "
                     f"{_ms(scale.get('first_build_ms'))} ms, RSS {_ms(scale.get('rss_mib_ready'))} MiB)")
    return "\n".join(lines)


def _row(label: str, data: dict[str, Any], target_ms: float) -> tuple[str, ...]:
    p99 = data.get("p99_ms")
    verdict = "n/a" if p99 is None else ("yes" if p99 <= target_ms and not data.get("missed") else "NO")
    return (label, str(data.get("count", 0)), _ms(data.get("p50_ms")), _ms(data.get("p90_ms")), _ms(p99),
            _ms(data.get("max_ms")), str(data.get("missed", 0)), verdict)


# ---------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.propagation", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--modes", default="file,cluster", help="comma-separated: file, cluster")
    add("--changes", type=int, default=200, help="changes timed per mode")
    add("--timeout", type=float, default=10.0, help="seconds before one change counts as missed")
    add("--jitter", type=float, default=0.05, help="random pause (0..seconds) before each change")
    add("--max-seconds", type=float, default=180.0, help="bound on each mode's duration")
    add("--scale", type=int, default=0, metavar="N",
        help="also time /readyz with N Ingresses, N Services and N EndpointSlices in cluster mode")
    add("--scale-changes", type=int, default=50, help="changes timed with the --scale table loaded (0: none)")
    add("--target-ms", type=float, default=100.0, help="the p99 target the table checks")
    add("--pyngress-arg", action="append", default=[], metavar="ARG", help="extra pyngress argument, repeatable")
    add("--json", default="", metavar="FILE", help="default bench/results/propagation-<time>.json")
    add("--keep", action="store_true", help="keep the working folder (manifests, process logs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ("file", "cluster")]
    if unknown:
        print(f"propagation: unknown mode(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    opts = Options(changes=args.changes, timeout=args.timeout, jitter=args.jitter, max_seconds=args.max_seconds,
                   scale=args.scale, scale_changes=args.scale_changes, pyngress_args=tuple(args.pyngress_arg))
    started_at = datetime.datetime.now()
    workdir = tempfile.mkdtemp(prefix="pyngress-propagation-")
    meta: dict[str, Any] = {
        "command": " ".join(["python -m bench.propagation", *(argv if argv is not None else sys.argv[1:])]),
        "started": started_at.isoformat(timespec="seconds"), "options": vars(opts), "python": platform.python_version(),
        "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "workdir": workdir}
    print(f"propagation: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
          flush=True)
    results: dict[str, Any] = {}
    status = 0
    with ProcessGroup(workdir) as group:
        try:
            [port] = start_python_backend(group)
            backend = ("127.0.0.1", port)
            if "file" in modes:
                results["file"] = file_mode(group, workdir, backend, opts)
            if "cluster" in modes:
                results["cluster"] = cluster_mode(group, workdir, backend, opts)
            if opts.scale > 0:
                results["scale"] = scale_mode(group, workdir, backend, opts)
        except (StartError, RuntimeError, OSError) as error:
            print(f"propagation: {error}", file=sys.stderr)
            status = 1
    meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = round((datetime.datetime.now() - started_at).total_seconds(), 1)
    print()
    print(table(results, args.target_ms))
    path = args.json or os.path.join(_REPO, "bench", "results",
                                     f"propagation-{started_at.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"meta": meta, "results": results}, out, indent=1)
    print(f"\npropagation: results in {path}" + (f", logs in {workdir}" if args.keep else ""))
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
