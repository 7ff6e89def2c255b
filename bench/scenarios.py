"""The scenarios of `python -m bench`: what each starts, what load it runs, what it reports.

Every scenario returns Rows (one per proxy, or per table size) for the table, plus a details
dict that goes into the JSON. Processes are started through the run's ProcessGroup; a scenario
stops what it started before returning, and the group stops anything left on the way out.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from bench import manifests, nginx
from bench.backend import LARGE_BODY, SMALL_BODY
from bench.client import HttpConnection, ResponseError
from bench.load import LoadResult, Request, median, p99_parts, run_wrk
from bench.otlp_sink import OtlpSink
from bench.processes import (
    Process,
    ProcessGroup,
    PyngressAddress,
    free_port,
    open_files_limit,
    side_thread_seconds,
    start_policy_proxy,
    start_pyngress,
    start_python_backend,
)

UPLOAD_BYTES = 1 << 20
WARMUP_SECONDS = 2.0
_BUILT = re.compile(r"configuration generation (\d+): (\d+) routes, (\d+) clusters, (\d+) warnings, "
                    r"built in ([\d.]+) ms")

SMALL = Request(path="/small", payload_bytes=len(SMALL_BODY))
LARGE = Request(path="/64k", payload_bytes=len(LARGE_BODY))
UPLOAD = Request(path="/upload", method="POST", body_bytes=UPLOAD_BYTES, payload_bytes=UPLOAD_BYTES)


@dataclass
class Options:
    duration: float = 10.0
    rounds: int = 3
    connections: int = 64
    threads: int = 1
    workers: int = 1
    idle_connections: int = 10000
    changes: int = 50
    churn_rate: float = 50.0
    pyngress_args: tuple[str, ...] = ()
    nginx_directives: tuple[str, ...] = ()  # extra directives in the reference proxy's location
    baseline_tree: str = ""  # a checkout of --baseline REV, for the before-after scenarios


@dataclass
class Environment:
    """What every scenario shares: tools found, the backend, the reference proxy, the process group."""

    workdir: str
    group: ProcessGroup
    options: Options
    wrk: str
    nginx_path: str | None
    backend_kind: str  # "nginx" or "python"
    backend_ports: list[int]
    reference: PyngressAddress | None = None  # the nginx reference proxy (host, http port)
    reference_process: Process | None = None
    pyngress_workers_flag: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def backend(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.backend_ports[0])]

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"bench: {text}", flush=True)

    def manifest_folder(self, name: str, shape: manifests.TableShape | None = None) -> str:
        folder = os.path.join(self.workdir, "manifests", name)
        manifests.write_folder(folder, manifests.objects(shape, backend=self.backend))
        return folder

    def pyngress(self, name: str, folder: str, *, extra: tuple[str, ...] = (),
                 tree: str | None = None, environ: dict[str, str] | None = None,
                 ) -> tuple[Process, PyngressAddress, float]:
        args = list(self.options.pyngress_args) + list(extra)
        if self.pyngress_workers_flag and self.options.workers != 1:
            args += ["--workers", str(self.options.workers)]
        return start_pyngress(self.group, manifests=folder, name=name, extra=args, tree=tree, environ=environ)

    def load(self, address: PyngressAddress, request: Request, *, duration: float | None = None,
             measured: Process | None = None, connections: int | None = None) -> LoadResult:
        return run_wrk(self.wrk, url=f"http://{address.host}:{address.http_port}{request.path}", request=request,
                       duration=self.options.duration if duration is None else duration,
                       connections=connections or self.options.connections, threads=self.options.threads,
                       workdir=self.workdir, measured=measured)


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    proxy: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    mb_per_s: float | None = None
    rss_mib: float | None = None
    cpu_percent: float | None = None
    errors: int | None = None
    ratio: float | None = None  # throughput relative to the reference (nginx, or the 10-Ingress table)
    p99_ratio: float | None = None
    notes: str = ""


@dataclass
class Target:
    """One of the issue's targets, with what was measured."""

    text: str
    measured: str
    met: bool | None  # None: not measurable in this run


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def _summary(results: list[LoadResult]) -> dict[str, Any]:
    """Median of each figure over the rounds; errors summed; RSS peak the median of the peaks."""
    good = [r for r in results if not r.error]
    peaks = [r.rss_peak_kib for r in good if r.rss_peak_kib is not None]
    cpus = [r.cpu_percent for r in good if r.cpu_percent is not None]
    return {
        "rps": median([r.rps for r in good]) if good else None,
        "p50_ms": median([r.p50_ms for r in good]) if good else None,
        "p99_ms": median([r.p99_ms for r in good]) if good else None,
        "mean_ms": median([r.mean_ms for r in good]) if good else None,
        "mb_per_s": median([r.mb_per_s for r in good]) if good else None,
        "rss_kib": int(median(peaks)) if peaks else None,
        "cpu_percent": median(cpus) if cpus else None,
        "errors": sum(r.failed_requests for r in good),
        "failed_runs": [r.error for r in results if r.error],
    }


def _row(scenario: str, proxy: str, summary: dict[str, Any], **extra: Any) -> Row:
    return Row(scenario=scenario, proxy=proxy, rps=summary["rps"], p50_ms=summary["p50_ms"],
               p99_ms=summary["p99_ms"], mb_per_s=summary["mb_per_s"], rss_mib=_mib(summary["rss_kib"]),
               cpu_percent=summary["cpu_percent"], errors=summary["errors"], **extra)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _check_route(address: PyngressAddress, *, host: str, path: str, method: str = "GET", body: bytes = b"",
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
    """One request before the load: a wrong route would otherwise show up as a fast stream of 404s."""
    connection = HttpConnection(address.host, address.http_port, timeout=10)
    try:
        status, _ = connection.request(method, path, host=host, body=body, headers=headers)
    finally:
        connection.close()
    if status != 200:
        raise RuntimeError(f"GET http://{address.host}:{address.http_port}{path} (Host {host}) answered {status}")


# ---------------------------------------------------------------- small, 64k, upload

def throughput(env: Environment, name: str, request: Request) -> Outcome:
    """nginx and pyngress rounds alternate (order flipped each round), median of the rounds."""
    opts = env.options
    process, address, _ = env.pyngress(f"pyngress-{name}", env.manifest_folder(name))
    outcome = Outcome()
    try:
        _check_route(address, host=request.host, path=request.path, method=request.method,
                     body=b"x" * request.body_bytes)
        proxies: list[tuple[str, PyngressAddress, Process]] = [("pyngress", address, process)]
        if env.reference is not None and env.reference_process is not None:
            proxies.insert(0, ("nginx", env.reference, env.reference_process))
        for _, target, measured in proxies:  # warm-up: pools, caches, first-time allocations
            env.load(target, request, duration=WARMUP_SECONDS, measured=measured)
        results: dict[str, list[LoadResult]] = {label: [] for label, _, _ in proxies}
        for round_index in range(opts.rounds):
            order = proxies if round_index % 2 == 0 else list(reversed(proxies))
            for label, target, measured in order:
                result = env.load(target, request, measured=measured)
                results[label].append(result)
                print(f"  {name} round {round_index + 1}/{opts.rounds} {label}: {result.rps:,.0f} req/s "
                      f"p99 {result.p99_ms:.2f} ms {result.mb_per_s:,.1f} MB/s errors {result.failed_requests}"
                      + (f" ERROR {result.error.splitlines()[0]}" if result.error else ""), flush=True)
    finally:
        env.group.stop(process)
    summaries = {label: _summary(runs) for label, runs in results.items()}
    reference = summaries.get("nginx")
    for label, summary in summaries.items():
        row = _row(name, label, summary)
        if label == "pyngress" and reference is not None:
            row.ratio = _ratio(summary["mb_per_s"], reference["mb_per_s"])
            row.p99_ratio = _ratio(summary["p99_ms"], reference["p99_ms"])
        outcome.rows.append(row)
    outcome.details = {"rounds": {label: [r.to_json() for r in runs] for label, runs in results.items()},
                       "median": summaries, "request": {"path": request.path, "method": request.method,
                                                        "body_bytes": request.body_bytes,
                                                        "payload_bytes": request.payload_bytes}}
    ours = next(r for r in outcome.rows if r.proxy == "pyngress")
    if name == "small":
        outcome.targets += [
            Target("small: req/s >= 0.6x nginx", _fmt_ratio(ours.ratio), _at_least(ours.ratio, 0.6)),
            Target("small: p99 <= 2x nginx", _fmt_ratio(ours.p99_ratio), _at_most(ours.p99_ratio, 2.0)),
        ]
    else:
        outcome.targets.append(Target(f"{name}: MB/s >= 1.0x nginx", _fmt_ratio(ours.ratio),
                                      _at_least(ours.ratio, 1.0)))
    outcome.targets.append(Target(f"{name}: zero failed requests", str(ours.errors), ours.errors == 0))
    return outcome


# issue #14: the same tree in both modes. "" removes the variable: the compiled modules load when there are any
# (`pip install .`, or scripts/build-inplace for this tree); the row says which mode actually ran.
MODES = {"pure-python": {"PYNGRESS_NO_EXTENSIONS": "1"}, "compiled": {"PYNGRESS_NO_EXTENSIONS": ""}}


def modes(env: Environment, name: str, request: Request) -> Outcome:
    """nginx, pyngress in pure Python and pyngress compiled, all up at once, rounds alternating (order flipped
    each round); ratios against nginx, and the proxy CPU per request of each (process CPU / requests served)."""
    opts = env.options
    folder = env.manifest_folder(name)
    proxies: list[tuple[str, PyngressAddress, Process]] = []
    if env.reference is not None and env.reference_process is not None:
        proxies.append(("nginx", env.reference, env.reference_process))
    started: list[Process] = []
    try:
        for label, environ in MODES.items():
            process, address, _ = env.pyngress(f"pyngress-{name}-{label}", folder, environ=environ)
            started.append(process)
            mode = _running_mode(address)
            if mode != label:
                print(f"  {name}: the {label} process runs {mode} (build the tree: scripts/build-inplace)",
                      flush=True)
            _check_route(address, host=request.host, path=request.path)
            proxies.append((label, address, process))
        for _, target, measured in proxies:  # warm-up
            env.load(target, request, duration=WARMUP_SECONDS, measured=measured)
        results: dict[str, list[LoadResult]] = {label: [] for label, _, _ in proxies}
        for round_index in range(opts.rounds):
            order = proxies if round_index % 2 == 0 else list(reversed(proxies))
            for label, target, measured in order:
                result = env.load(target, request, measured=measured)
                results[label].append(result)
                print(f"  {name} round {round_index + 1}/{opts.rounds} {label}: {result.rps:,.0f} req/s "
                      f"p99 {result.p99_ms:.2f} ms {result.mb_per_s:,.1f} MB/s errors {result.failed_requests}",
                      flush=True)
    finally:
        for process in started:
            env.group.stop(process)
    summaries = {label: _summary(runs) for label, runs in results.items()}
    rounds = {label: [r.to_json() for r in runs] for label, runs in results.items()}
    cpu = {label: _cpu_per_request(runs) for label, runs in rounds.items()}
    reference = summaries.get("nginx")
    outcome = Outcome()
    for label, summary in summaries.items():
        row = _row(name, label, summary, notes=_fmt_us(cpu[label]) + " CPU/request")
        if label != "nginx" and reference is not None:
            row.ratio = _ratio(summary["mb_per_s"], reference["mb_per_s"])
            row.p99_ratio = _ratio(summary["p99_ms"], reference["p99_ms"])
        outcome.rows.append(row)
    outcome.details = {"rounds": rounds, "median": summaries, "cpu_us_per_request": cpu}
    compiled = next(r for r in outcome.rows if r.proxy == "compiled")
    if name == "compiled":
        outcome.targets += [
            Target("compiled small: req/s >= 0.55x nginx", _fmt_ratio(compiled.ratio),
                   _at_least(compiled.ratio, 0.55)),
            Target("compiled small: p99 <= 2x nginx", _fmt_ratio(compiled.p99_ratio)
                   + p99_parts(summaries.get("compiled", {}), summaries.get("nginx", {})),
                   _at_most(compiled.p99_ratio, 2.0)),
        ]
    else:
        outcome.targets.append(Target(f"{name}: MB/s >= 1.0x nginx", _fmt_ratio(compiled.ratio),
                                      _at_least(compiled.ratio, 1.0)))
    pure_cpu, compiled_cpu = cpu.get("pure-python"), cpu.get("compiled")
    cpu_ratio = _ratio(compiled_cpu, pure_cpu)
    outcome.targets.append(Target(f"{name}: CPU/request compiled <= 0.8x pure ({_fmt_us(compiled_cpu)} vs "
                                  f"{_fmt_us(pure_cpu)})", _fmt_ratio(cpu_ratio), _at_most(cpu_ratio, 0.8)))
    return outcome


def _running_mode(address: PyngressAddress) -> str:
    """The mode label of pyngress_build_info on the process's /metrics."""
    with urllib.request.urlopen(f"http://{address.host}:{address.admin_port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = re.search(r'pyngress_build_info\{[^}]*mode="([^"]+)"', text)
    return found.group(1) if found else "unknown"


def _fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


# ---------------------------------------------------------------- routes

def _build_log(process: Process) -> list[dict[str, float]]:
    return [{"generation": int(m[1]), "routes": int(m[2]), "clusters": int(m[3]), "warnings": int(m[4]),
             "build_ms": float(m[5])} for m in _BUILT.finditer(process.log_text())]


def routes(env: Environment) -> Outcome:
    """10 vs 10,000 Ingresses: both proxies up at once, rounds alternate; build time, RSS, a change at 10,000."""
    opts = env.options
    shapes = {"10 Ingresses": manifests.TableShape(ingresses=10),
              "10000 Ingresses": manifests.TableShape(ingresses=10000)}
    started: dict[str, tuple[Process, PyngressAddress, float]] = {}
    outcome = Outcome()
    results: dict[str, list[LoadResult]] = {label: [] for label in shapes}
    requests = {label: Request(path="/", payload_bytes=len(SMALL_BODY),
                               rotation=tuple(manifests.table_requests(shape, count=100)))
                for label, shape in shapes.items()}
    details: dict[str, Any] = {}
    try:
        for label, shape in shapes.items():
            folder = env.manifest_folder(f"routes-{shape.ingresses}", shape)
            started[label] = env.pyngress(f"pyngress-routes-{shape.ingresses}", folder)
            process, address, startup = started[label]
            host, path = requests[label].rotation[0]
            _check_route(address, host=host, path=path)
            builds = _build_log(process)
            details[label] = {"ingresses": shape.ingresses, "hosts": shape.hosts, "paths": shape.paths,
                              "startup_s": startup, "builds": builds, "rss_idle_kib": process.rss_kib(),
                              "manifest_bytes": sum(os.path.getsize(os.path.join(folder, f))
                                                    for f in os.listdir(folder))}
            print(f"  routes {label}: started in {startup:.2f} s, "
                  f"build {builds[0]['build_ms'] if builds else float('nan'):.0f} ms, "
                  f"RSS {_mib(process.rss_kib()) or 0:.0f} MiB", flush=True)
        for label in shapes:
            process, address, _ = started[label]
            env.load(address, requests[label], duration=WARMUP_SECONDS, measured=process)
        labels = list(shapes)
        for round_index in range(opts.rounds):
            for label in labels if round_index % 2 == 0 else list(reversed(labels)):
                process, address, _ = started[label]
                result = env.load(address, requests[label], measured=process)
                results[label].append(result)
                print(f"  routes round {round_index + 1}/{opts.rounds} {label}: {result.rps:,.0f} req/s "
                      f"p99 {result.p99_ms:.2f} ms errors {result.failed_requests}", flush=True)
        # One table change at 10,000 Ingresses: a whole rebuild, then served.
        big_label = "10000 Ingresses"
        process, address, _ = started[big_label]
        folder = os.path.join(env.workdir, "manifests", "routes-10000")
        changes = propagation(address, folder, count=max(3, min(10, opts.changes // 5)))
        details[big_label]["change_propagation_ms"] = changes
        details[big_label]["builds_after_changes"] = _build_log(process)[-3:]
        details[big_label]["rss_end_kib"] = process.rss_kib()
    finally:
        for process, _, _ in started.values():
            env.group.stop(process)
    summaries = {label: _summary(runs) for label, runs in results.items()}
    small, big = summaries["10 Ingresses"], summaries["10000 Ingresses"]
    for label, summary in summaries.items():
        builds = details.get(label, {}).get("builds") or []
        build_ms = builds[0]["build_ms"] if builds else None
        note = f"build {build_ms:.0f} ms" if build_ms is not None else "build time not logged"
        row = _row("routes", f"pyngress {label}", summary, notes=note)
        if label == big_label:
            row.ratio = _ratio(big["rps"], small["rps"])
            row.p99_ratio = _ratio(big["p99_ms"], small["p99_ms"])
            row.notes += "; ratio vs 10 Ingresses"
        outcome.rows.append(row)
    big_builds = details.get(big_label, {}).get("builds") or []
    big_build = big_builds[0]["build_ms"] if big_builds else None
    rss_big = max(filter(None, [big["rss_kib"], details.get(big_label, {}).get("rss_idle_kib")]), default=None)
    ratio = _ratio(big["rps"], small["rps"])
    changes = details.get(big_label, {}).get("change_propagation_ms", {})
    outcome.targets += [
        Target("routes: req/s at 10,000 Ingresses within 5% of 10", _fmt_ratio(ratio), _at_least(ratio, 0.95)),
        Target("routes: building the 10,000-Ingress table < 1 s",
               "n/a" if big_build is None else f"{big_build:.0f} ms", None if big_build is None else big_build < 1000),
        Target("routes: RSS < 250 MB at 10,000 Ingresses",
               "n/a" if rss_big is None else f"{rss_big * 1024 / 1e6:.0f} MB",
               None if rss_big is None else rss_big * 1024 < 250e6),
        Target("routes (info): a manifest change at 10,000 Ingresses, p99 served",
               f"{changes.get('p99_ms', float('nan')):.0f} ms (n={changes.get('count', 0)})", None),
    ]
    rounds = {label: [r.to_json() for r in runs] for label, runs in results.items()}
    outcome.details = {"tables": details, "rounds": rounds, "median": summaries}
    return outcome


# ---------------------------------------------------------------- idle

def raise_open_files(wanted: int) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE toward `wanted` (children inherit it); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def open_idle(address: PyngressAddress, count: int, *, deadline: float) -> tuple[list[HttpConnection], int]:
    """`count` keep-alive connections, each having made one small request, then left idle."""
    opened: list[HttpConnection] = []
    failures = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        connection = HttpConnection(address.host, address.http_port, timeout=10)
        try:
            status, _ = connection.request("GET", SMALL.path, host=SMALL.host)
        except (OSError, ResponseError):
            failures += 1
            connection.close()
            if failures > 50 and failures > len(opened):
                break
            continue
        if status != 200:
            failures += 1
        opened.append(connection)
    return opened, failures


def _alive(connections: list[HttpConnection], sample: int = 200) -> tuple[int, int]:
    chosen = random.Random(7).sample(connections, min(sample, len(connections)))
    alive = 0
    for connection in chosen:
        try:
            status, _ = connection.request("GET", SMALL.path, host=SMALL.host)
            alive += status == 200
        except (OSError, ResponseError):
            pass
    return alive, len(chosen)


def idle(env: Environment) -> Outcome:
    """N idle keep-alive connections: RSS per connection, and the small load's p99 alongside."""
    opts = env.options
    wanted = opts.idle_connections
    soft, hard = raise_open_files(wanted * 2 + 1000)
    if soft < wanted + 500:
        env.note(f"open-files limit of the bench is {soft} (hard {hard}): at most ~{soft - 500} idle connections")
    keepalive = 600.0  # both proxies: idle connections must outlive opening them and the load
    outcome = Outcome()
    details: dict[str, Any] = {"wanted": wanted, "bench_nofile": [soft, hard], "keepalive_timeout_s": keepalive}
    targets: list[tuple[str, PyngressAddress, Process]] = []
    pyngress_process, pyngress_address, _ = env.pyngress(
        "pyngress-idle", env.manifest_folder("idle"), extra=("--client-keepalive-timeout", str(int(keepalive))))
    started = [pyngress_process]
    try:
        limit = open_files_limit(pyngress_process.pid)
        details["pyngress_nofile"] = limit
        if limit is not None and limit < wanted + 200:
            env.note(f"pyngress may open only {limit} files (inherited RLIMIT_NOFILE): fewer than the {wanted} "
                     "idle connections asked for; raise `ulimit -n` before running the bench")
        if env.nginx_path is not None:
            port = free_port()
            layout = nginx.proxy_config(os.path.join(env.workdir, "idle-nginx"), port=port,
                                        backend_port=env.backend_ports[0], workers=opts.workers,
                                        keepalive_timeout=keepalive, directives=opts.nginx_directives)
            reference = nginx.start(env.group, env.nginx_path, layout, name="nginx-idle", port=port)
            started.append(reference)
            targets.append(("nginx", PyngressAddress("127.0.0.1", port, 0), reference))
        targets.append(("pyngress", pyngress_address, pyngress_process))
        for label, address, process in targets:
            env.load(address, SMALL, duration=WARMUP_SECONDS, measured=process)
            baseline = env.load(address, SMALL, measured=process)
            time.sleep(1.0)
            # Two halves: the first absorbs memory the allocator already holds from the loads (freed
            # buffers reused), the second gives the marginal cost per connection; both are reported.
            before = process.rss_kib()
            opening = time.monotonic()
            connections, failures = open_idle(address, wanted // 2, deadline=opening + 120)
            time.sleep(0.5)
            middle = process.rss_kib()
            more, more_failures = open_idle(address, wanted - wanted // 2, deadline=opening + 240)
            opened_s = time.monotonic() - opening
            connections += more
            failures += more_failures
            time.sleep(1.0)
            after = process.rss_kib()
            per_connection = ((after - before) * 1024 / len(connections)
                              if before is not None and after is not None and connections else None)
            marginal = ((after - middle) * 1024 / len(more)
                        if middle is not None and after is not None and more else None)
            try:
                loaded = env.load(address, SMALL, measured=process)
                alive, sampled = _alive(connections)
            finally:
                for connection in connections:
                    connection.close()
            time.sleep(1.0)
            baseline_after = env.load(address, SMALL, measured=process)
            baseline_p99 = (baseline.p99_ms + baseline_after.p99_ms) / 2
            per_shown = max(per_connection or 0, marginal or 0)
            print(f"  idle {label}: {len(connections)} open ({failures} failed) in {opened_s:.1f} s, "
                  f"{(per_connection or 0) / 1024:.1f} KiB each "
                  f"({(marginal or 0) / 1024:.1f} KiB for the second half); "
                  f"p99 without idle {baseline.p99_ms:.2f}/{baseline_after.p99_ms:.2f} ms, "
                  f"with {loaded.p99_ms:.2f} ms; "
                  f"{alive}/{sampled} idle still answer", flush=True)
            summary = _summary([loaded])
            row = _row("idle", label, summary,
                       notes=f"{len(connections)} idle, {per_shown / 1024:.1f} KiB/conn, "
                             f"p99 w/o idle {baseline_p99:.2f} ms")
            row.p99_ratio = _ratio(loaded.p99_ms, baseline_p99)
            outcome.rows.append(row)
            details[label] = {"opened": len(connections), "failed": failures, "open_seconds": opened_s,
                              "rss_before_kib": before, "rss_half_kib": middle, "rss_after_kib": after,
                              "bytes_per_connection": per_connection, "bytes_per_connection_second_half": marginal,
                              "baseline": baseline.to_json(), "baseline_after": baseline_after.to_json(),
                              "baseline_p99_ms": baseline_p99,
                              "with_idle": loaded.to_json(), "idle_alive_after_load": [alive, sampled]}
    finally:
        for process in started:
            env.group.stop(process)
    ours = details.get("pyngress", {})
    per = max(filter(None, [ours.get("bytes_per_connection"), ours.get("bytes_per_connection_second_half")]),
              default=None)
    ratio = _ratio(ours.get("with_idle", {}).get("p99_ms"), ours.get("baseline_p99_ms"))
    outcome.targets += [
        Target(f"idle: {wanted} idle connections < 16 KiB RSS each",
               "n/a" if per is None else f"{per / 1024:.1f} KiB ({ours.get('opened')} open)",
               None if per is None else per < 16 * 1024 and ours.get("opened", 0) >= wanted),
        Target("idle: p99 of other connections kept (with/without idle <= 1.25x, bench's threshold)",
               _fmt_ratio(ratio), _at_most(ratio, 1.25)),
        Target("idle: idle connections still usable after the load",
               "{}/{}".format(*ours.get("idle_alive_after_load", (0, 0))),
               None if not ours else ours["idle_alive_after_load"][0] == ours["idle_alive_after_load"][1]),
    ]
    outcome.details = details
    return outcome


# ---------------------------------------------------------------- churn

def propagation(address: PyngressAddress, folder: str, *, count: int, jitter: float = 0.5,
                timeout: float = 10.0) -> dict[str, Any]:
    """Write a new probe path `count` times; each time, ms from the rename to the first 200 on it.

    A random pause before each change spreads the writes over pyngress's polling phase.
    """
    rng = random.Random(11)
    connection = HttpConnection(address.host, address.http_port, timeout=5)
    samples: list[float] = []
    missed = 0
    base = int(time.time())  # paths never seen before, even when a folder is reused
    try:
        for k in range(1, count + 1):
            time.sleep(rng.uniform(0, jitter))
            generation = base * 1000 + k
            path = manifests.probe_path(generation)
            manifests.write_probe(folder, generation)
            written = time.monotonic()
            while True:
                try:
                    status, _ = connection.request("GET", path, host=manifests.PROBE_HOST)
                except (OSError, ResponseError):
                    status = 0
                elapsed = time.monotonic() - written
                if status == 200:
                    samples.append(elapsed * 1000)
                    break
                if elapsed > timeout:
                    missed += 1
                    break
                time.sleep(0.001)
    finally:
        connection.close()
    return _distribution(samples) | {"missed": missed}


def _distribution(samples_ms: list[float]) -> dict[str, Any]:
    if not samples_ms:
        return {"count": 0}
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"count": len(ordered), "p50_ms": statistics.median(ordered), "p99_ms": p99,
            "max_ms": ordered[-1], "min_ms": ordered[0], "samples_ms": [round(s, 2) for s in samples_ms]}


class Churner:
    """Rewrites the main EndpointSlice `rate` times a second, alternating two serving backends."""

    def __init__(self, folder: str, backends: list[list[tuple[str, int]]], *, rate: float) -> None:
        self.folder, self.backends, self.rate = folder, backends, rate
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="churn")

    def _run(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            manifests.write_endpoints(self.folder, self.backends[self.writes % len(self.backends)])
            self.writes += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _metric(address: PyngressAddress, name: str) -> float | None:
    connection = HttpConnection(address.host, address.admin_port, timeout=5)
    try:
        status, body = connection.request("GET", "/metrics", host=f"{address.host}:{address.admin_port}")
    except (OSError, ResponseError):
        return None
    finally:
        connection.close()
    if status != 200:
        return None
    match = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", body.decode(), re.MULTILINE)
    return float(match[1]) if match else None


def churn(env: Environment) -> Outcome:
    """50 EndpointSlice rewrites a second under the small load (zero failures expected), then change propagation."""
    opts = env.options
    folder = env.manifest_folder("churn")
    process, address, _ = env.pyngress("pyngress-churn", folder)
    outcome = Outcome()
    try:
        _check_route(address, host=SMALL.host, path=SMALL.path)
        env.load(address, SMALL, duration=WARMUP_SECONDS, measured=process)
        updates_before = _metric(address, "pyngress_endpoint_updates_total")
        backends = [[("127.0.0.1", port)] for port in env.backend_ports[:2]]
        with Churner(folder, backends, rate=opts.churn_rate) as churner:
            loaded = env.load(address, SMALL, measured=process)
        writes = churner.writes
        updates_after = _metric(address, "pyngress_endpoint_updates_total")
        updates = (updates_after - updates_before
                   if updates_after is not None and updates_before is not None else None)
        print(f"  churn: {writes} EndpointSlice writes, {updates if updates is not None else '?'} endpoint updates "
              f"applied; {loaded.rps:,.0f} req/s, {loaded.failed_requests} failed", flush=True)
        changes = propagation(address, folder, count=opts.changes)
        print(f"  churn: manifest change served after p50 {changes.get('p50_ms', float('nan')):.0f} ms, "
              f"p99 {changes.get('p99_ms', float('nan')):.0f} ms (n={changes.get('count')})", flush=True)
    finally:
        env.group.stop(process)
    summary = _summary([loaded])
    outcome.rows.append(_row("churn", "pyngress", summary,
                             notes=f"{writes} slice writes ({writes / max(loaded.duration_s, 1e-9):.0f}/s), "
                                   f"{updates if updates is not None else '?'} applied; change p99 "
                                   f"{changes.get('p99_ms', float('nan')):.0f} ms"))
    outcome.targets += [
        Target(f"churn: {opts.churn_rate:g} endpoint changes/s under load fail zero requests",
               f"{loaded.failed_requests} failed of {loaded.requests}",
               loaded.failed_requests == 0 and not loaded.error),
        Target("churn: a manifest change serves within 100 ms p99",
               f"p99 {changes.get('p99_ms', float('nan')):.0f} ms, p50 {changes.get('p50_ms', float('nan')):.0f} ms "
               f"(n={changes.get('count')}, missed {changes.get('missed')})",
               None if not changes.get("count") else changes["p99_ms"] <= 100 and not changes["missed"]),
    ]
    outcome.details = {"load": loaded.to_json(), "slice_writes": writes, "endpoint_updates_applied": updates,
                       "change_propagation_ms": changes}
    return outcome


# ---------------------------------------------------------------- pyngress against itself

def variants(env: Environment, name: str, request: Request, flavours: dict[str, tuple[str, ...]], *,
             target: tuple[str, float] | None = None, trees: dict[str, str] | None = None) -> Outcome:
    """pyngress started once per flavour (extra flags), all up at once, rounds alternating; the first
    flavour is the baseline of the ratios. With ``target`` (text, least ratio of the last flavour)
    a target line is added; ``trees`` runs a flavour from another source tree (see --baseline)."""
    opts = env.options
    folder = env.manifest_folder(name)
    started: dict[str, tuple[Process, PyngressAddress]] = {}
    results: dict[str, list[LoadResult]] = {label: [] for label in flavours}
    side: dict[str, list[float]] = {label: [] for label in flavours}  # other threads' CPU µs per request, per round
    try:
        for label, extra in flavours.items():
            process, address, _ = env.pyngress(f"pyngress-{name}-{len(started)}", folder, extra=extra,
                                               tree=(trees or {}).get(label))
            started[label] = (process, address)
            _check_route(address, host=request.host, path=request.path)
            env.load(address, request, duration=WARMUP_SECONDS, measured=process)
        labels = list(flavours)
        for round_index in range(opts.rounds):
            order = labels if round_index % 2 == 0 else list(reversed(labels))
            for label in order:
                process, address = started[label]
                side_before = side_thread_seconds(process.pid)
                result = env.load(address, request, measured=process)
                side_after = side_thread_seconds(process.pid)
                results[label].append(result)
                cpu = (f" proxy CPU {result.cpu_percent / result.rps * 1e4:.1f} µs/request"
                       if result.cpu_percent is not None and result.rps else "")
                if side_before is not None and side_after is not None and result.requests:
                    # The part of that CPU its other threads took (the span exporter, the access log's writer).
                    side[label].append((side_after - side_before) * 1e6 / result.requests)
                    cpu += f" (other threads {side[label][-1]:.2f})"
                print(f"  {name} round {round_index + 1}/{opts.rounds} {label}: {result.rps:,.0f} req/s "
                      f"p99 {result.p99_ms:.2f} ms errors {result.failed_requests}{cpu}", flush=True)
    finally:
        for process, _ in started.values():
            env.group.stop(process)
    summaries = {label: _summary(runs) for label, runs in results.items()}
    baseline = summaries[next(iter(flavours))]
    outcome = Outcome()
    for label, summary in summaries.items():
        outcome.rows.append(_row(name, label, summary, ratio=_ratio(summary["rps"], baseline["rps"]),
                                 p99_ratio=_ratio(summary["p99_ms"], baseline["p99_ms"]),
                                 notes=" ".join(flavours[label])))
    outcome.details = {"flavours": {label: list(extra) for label, extra in flavours.items()},
                       "rounds": {label: [r.to_json() for r in runs] for label, runs in results.items()},
                       "median": summaries,
                       "other_threads_us_per_request": {label: median(v) if v else None for label, v in side.items()}}
    if target is not None:
        text, bound = target
        last = outcome.rows[-1]
        outcome.targets.append(Target(text, _fmt_ratio(last.ratio), _at_least(last.ratio, bound)))
    return outcome


def before_after(env: Environment, name: str, request: Request) -> Outcome:
    """The same load on pyngress from the --baseline revision and from this tree, rounds alternating."""
    if not env.options.baseline_tree:
        raise RuntimeError(f"{name} needs --baseline REV (a git revision to compare this tree against)")
    return variants(env, name, request, {"baseline": (), "this tree": ()},
                    trees={"baseline": env.options.baseline_tree}, target=("this tree vs baseline, req/s", 0.97))


def gateway(env: Environment) -> Outcome:
    """issue #10: a plain Ingress route on the --baseline revision and on this tree, and an HTTPRoute rule with
    two header matches and two weighted backends on this tree; one run, rounds alternating."""
    opts = env.options
    folder = env.manifest_folder("gateway")
    manifests.write_json(os.path.join(folder, manifests.FILE_GATEWAY), manifests.gateway_objects(env.backend))
    listener = free_port()  # the Gateway's port 80 is served on 80 + offset
    route = Request(path=SMALL.path, host=manifests.GATEWAY_HOST, payload_bytes=SMALL.payload_bytes,
                    headers=manifests.GATEWAY_HEADERS)
    targets: dict[str, tuple[Process, PyngressAddress, Request]] = {}
    try:
        if opts.baseline_tree:
            process, address, _ = env.pyngress("pyngress-gateway-baseline", folder, tree=opts.baseline_tree)
            targets["Ingress route, baseline"] = (process, address, SMALL)
        process, address, _ = env.pyngress("pyngress-gateway", folder,
                                           extra=("--gateway-port-offset", str(listener - 80)))
        targets["Ingress route"] = (process, address, SMALL)
        targets["HTTPRoute rule"] = (process, PyngressAddress(address.host, listener, address.admin_port), route)
        results: dict[str, list[LoadResult]] = {label: [] for label in targets}
        for process, address, request in targets.values():
            _check_route(address, host=request.host, path=request.path, headers=request.headers)
            env.load(address, request, duration=WARMUP_SECONDS, measured=process)
        labels = list(targets)
        for round_index in range(opts.rounds):
            for label in labels if round_index % 2 == 0 else list(reversed(labels)):
                process, address, request = targets[label]
                result = env.load(address, request, measured=process)
                results[label].append(result)
                print(f"  gateway round {round_index + 1}/{opts.rounds} {label}: {result.rps:,.0f} req/s "
                      f"p99 {result.p99_ms:.2f} ms errors {result.failed_requests}", flush=True)
    finally:
        for process in {id(p): p for p, _, _ in targets.values()}.values():
            env.group.stop(process)
    summaries = {label: _summary(runs) for label, runs in results.items()}
    first = summaries[labels[0]]
    outcome = Outcome()
    for label, summary in summaries.items():
        outcome.rows.append(_row("gateway", label, summary, ratio=_ratio(summary["rps"], first["rps"]),
                                 p99_ratio=_ratio(summary["p99_ms"], first["p99_ms"]), notes=""))
    outcome.details = {"rounds": {label: [r.to_json() for r in runs] for label, runs in results.items()},
                       "median": summaries}
    if opts.baseline_tree:
        plain = _ratio(summaries["Ingress route"]["rps"], first["rps"])
        outcome.targets.append(Target("plain Ingress route vs baseline, req/s", _fmt_ratio(plain),
                                      _at_least(plain, 0.95)))
    return outcome


def auth(env: Environment) -> Outcome:
    """issue #12: a route behind basic auth (a bcrypt hash, cost 10; the proxy's check remembered after the first
    request, so the rounds measure the warm path), CORS and a source range, against the plain Ingress route of
    the same pyngress; rounds alternating. Ratio: secured / plain."""
    import bcrypt

    opts = env.options
    folder = env.manifest_folder("auth")
    stored = bcrypt.hashpw(manifests.SECURE_USER[1].encode(), bcrypt.gensalt(10)).decode()
    manifests.write_json(os.path.join(folder, manifests.FILE_SECURE), manifests.secure_objects(stored))
    secured = Request(path=SMALL.path, host=manifests.SECURE_HOST, payload_bytes=SMALL.payload_bytes,
                      headers=manifests.secure_headers())
    process, address, _ = env.pyngress("pyngress-auth", folder)
    targets = {"Ingress route": SMALL, "basic auth + CORS + source range": secured}
    results: dict[str, list[LoadResult]] = {label: [] for label in targets}
    try:
        for request in targets.values():
            _check_route(address, host=request.host, path=request.path, headers=request.headers)
            env.load(address, request, duration=WARMUP_SECONDS, measured=process)
        labels = list(targets)
        for round_index in range(opts.rounds):
            for label in labels if round_index % 2 == 0 else list(reversed(labels)):
                result = env.load(address, targets[label], measured=process)
                results[label].append(result)
                print(f"  auth round {round_index + 1}/{opts.rounds} {label}: {result.rps:,.0f} req/s "
                      f"p99 {result.p99_ms:.2f} ms errors {result.failed_requests}", flush=True)
    finally:
        env.group.stop(process)
    summaries = {label: _summary(runs) for label, runs in results.items()}
    first = summaries[labels[0]]
    outcome = Outcome()
    for label, summary in summaries.items():
        outcome.rows.append(_row("auth", label, summary, ratio=_ratio(summary["rps"], first["rps"]),
                                 p99_ratio=_ratio(summary["p99_ms"], first["p99_ms"]), notes=""))
    outcome.details = {"rounds": {label: [r.to_json() for r in runs] for label, runs in results.items()},
                       "median": summaries}
    return outcome


# ---------------------------------------------------------------- chaos (traffic policies)

_POLICY_COUNTS = re.compile(r"^policy-counts (\{.*\})$", re.MULTILINE)


def chaos(env: Environment) -> Outcome:
    """issue #11: three backends, one of which starts failing half its requests (503) once the warm-up is over;
    pyngress with passive health (ejection) and retries on, against the same proxy with them off. Both up at
    once, rounds alternating; reported: the error rate clients see and the p99."""
    opts = env.options
    ports = [start_python_backend(env.group, name=f"chaos-backend-{i}")[0] for i in range(3)]
    backends = [("127.0.0.1", port) for port in ports]
    flavours = {"policies off": False, "ejection + retries": True}
    started: dict[str, tuple[Process, PyngressAddress]] = {}
    results: dict[str, list[LoadResult]] = {label: [] for label in flavours}
    counts: dict[str, Any] = {}
    request = Request(path="/small", payload_bytes=len(SMALL_BODY))
    try:
        for label, policies in flavours.items():
            process, address = start_policy_proxy(env.group, backends=backends, policies=policies,
                                                   name=f"pyngress-chaos-{len(started)}")
            started[label] = (process, address)
            _check_route(address, host=request.host, path=request.path)
            env.load(address, request, duration=WARMUP_SECONDS, measured=process)
        switch = HttpConnection("127.0.0.1", ports[0], timeout=10)
        try:
            status, _ = switch.request("GET", "/_bench/fail?ratio=0.5", host="backend")
        finally:
            switch.close()
        if status != 200:
            raise RuntimeError(f"the chaos backend's failure switch answered {status}")
        labels = list(flavours)
        for round_index in range(opts.rounds):
            for label in labels if round_index % 2 == 0 else list(reversed(labels)):
                process, address = started[label]
                result = env.load(address, request, measured=process)
                results[label].append(result)
                rate = result.failed_requests / max(1, result.requests)
                print(f"  chaos round {round_index + 1}/{opts.rounds} {label}: {result.rps:,.0f} req/s "
                      f"p99 {result.p99_ms:.2f} ms, {result.failed_requests} of {result.requests} failed "
                      f"({rate:.2%})", flush=True)
    finally:
        for label, (process, _) in started.items():
            env.group.stop(process)
            found = _POLICY_COUNTS.search(process.log_text())
            if found:
                counts[label] = json.loads(found[1])
    outcome = Outcome()
    rates: dict[str, float | None] = {}
    for label, runs in results.items():
        summary = _summary(runs)
        total = sum(r.requests for r in runs if not r.error)
        rates[label] = summary["errors"] / total if total else None
        note = "n/a" if rates[label] is None else f"{rates[label]:.2%} of requests failed"
        outcome.rows.append(_row("chaos", label, summary, notes=note))
    off, on = rates["policies off"], rates["ejection + retries"]
    outcome.targets += [
        Target("chaos: client-visible error rate, ejection + retries vs off",
               "n/a" if off is None or on is None else f"{on:.3%} vs {off:.2%}",
               None if off is None or on is None else on < off),
        Target("chaos (info): p99 with ejection + retries vs off",
               f"{outcome.rows[1].p99_ms or float('nan'):.2f} ms vs {outcome.rows[0].p99_ms or float('nan'):.2f} ms",
               None),
    ]
    outcome.details = {"backends": backends, "failing": backends[0], "error_rates": rates, "policy_counts": counts,
                       "rounds": {label: [r.to_json() for r in runs] for label, runs in results.items()}}
    return outcome


def tracing(env: Environment) -> Outcome:
    """issue #15: tracing off, on at sample ratio 0.01 and on at 1.0 (spans to a local OTLP sink), one run,
    rounds alternating; the target: ratio 0.01 within 3% of off in req/s. A second process with tracing off is
    the control: what two processes of the same tree differ by (hash seeds, address layout) in the same run, the
    floor under which a ratio says nothing about tracing."""
    with OtlpSink() as sink:
        outcome = variants(env, "tracing", SMALL, {
            "tracing off": (),
            "ratio 0.01": ("--otlp-endpoint", sink.url, "--trace-sample-ratio", "0.01"),
            "ratio 1.0": ("--otlp-endpoint", sink.url, "--trace-sample-ratio", "1.0"),
            "tracing off, 2nd process": (),
        })
        exported = (sink.requests, sink.bytes)
    low = outcome.rows[1].ratio
    outcome.targets.append(Target("tracing at ratio 0.01 vs off, req/s", _fmt_ratio(low), _at_least(low, 0.97)))
    # The proxy is the bottleneck of this load (one process, one core's worth of work per request): its CPU time
    # per request is what req/s is the inverse of, and it holds still when other load on a shared machine moves
    # req/s between rounds (each round's own figure; the median of the rounds).
    cpu = {label: _cpu_per_request(runs) for label, runs in outcome.details["rounds"].items()}
    outcome.details["cpu_us_per_request"] = cpu
    off, on = cpu.get("tracing off"), cpu.get("ratio 0.01")
    ratio = on / off if on is not None and off else None
    outcome.targets.append(Target(f"tracing at ratio 0.01 vs off, proxy CPU per request ({_fmt_us(on)} vs "
                                  f"{_fmt_us(off)})", _fmt_ratio(ratio), _at_most(ratio, 1.03)))
    control = cpu.get("tracing off, 2nd process")
    outcome.targets.append(Target(
        f"(info) control: tracing off, a 2nd process vs the 1st, req/s {_fmt_ratio(outcome.rows[3].ratio)}, proxy CPU "
        "per request", _fmt_ratio(control / off if control is not None and off else None), None))
    side = outcome.details["other_threads_us_per_request"]
    outcome.targets.append(Target(
        "(info) other threads' CPU per request (the span exporter): off / 0.01 / 1.0",
        " / ".join("n/a" if side.get(label) is None else f"{side[label]:.2f} µs"
                   for label in ("tracing off", "ratio 0.01", "ratio 1.0")), None))
    outcome.details["otlp_sink"] = {"requests": exported[0], "bytes": exported[1]}
    return outcome


def observability(env: Environment) -> Outcome:
    """issues #5 and #14: per-route metrics and the access log both off vs both on (the log into a pipe bench reads,
    as a container runtime would); with --baseline, both on from that tree as well, same run, rounds alternating."""
    flavours = {"both off": ("--no-access-log", "--no-route-metrics"), "both on": ("--access-log", "--route-metrics")}
    trees = {}
    if env.options.baseline_tree:
        flavours["both on, baseline"] = flavours["both on"]
        trees["both on, baseline"] = env.options.baseline_tree
    outcome = variants(env, "observability", SMALL, flavours, trees=trees)
    on = outcome.rows[1].ratio
    outcome.targets.append(Target("both on vs both off, req/s", _fmt_ratio(on), _at_least(on, 0.85)))
    cpu = {label: _cpu_per_request(runs) for label, runs in outcome.details["rounds"].items()}
    outcome.details["cpu_us_per_request"] = cpu
    off, both = cpu.get("both off"), cpu.get("both on")
    ratio = off / both if off is not None and both else None
    outcome.targets.append(Target(f"both off vs both on, proxy CPU per request ({_fmt_us(off)} vs {_fmt_us(both)})",
                                  _fmt_ratio(ratio), _at_least(ratio, 0.85)))
    return outcome


def _cpu_per_request(rounds: list[dict[str, Any]]) -> float | None:
    """Median over rounds of the measured process's CPU microseconds per request served."""
    values = [r["cpu_percent"] / 100 * 1e6 / r["rps"] for r in rounds
              if not r["error"] and r["cpu_percent"] is not None and r["rps"]]
    return median(values) if values else None


def _fmt_us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} µs"


SCENARIOS: dict[str, Callable[[Environment], Outcome]] = {
    "small": lambda env: throughput(env, "small", SMALL),
    "64k": lambda env: throughput(env, "64k", LARGE),
    "upload": lambda env: throughput(env, "upload", UPLOAD),
    # issue #14: nginx, pyngress pure Python and compiled, one run (compiled: `pip install .` or
    # scripts/build-inplace)
    "compiled": lambda env: modes(env, "compiled", SMALL),
    "compiled-64k": lambda env: modes(env, "compiled-64k", LARGE),
    "routes": routes,
    "idle": idle,
    "churn": churn,
    # issue #5: the cost of per-route metrics and the access log (the access log goes to a pipe
    # that bench reads, as a container runtime would)
    "observability": observability,
    # pyngress from --baseline REV vs this tree, same run (issues #16 and #10: "no slower")
    "before-after": lambda env: before_after(env, "before-after", SMALL),
    "before-after-64k": lambda env: before_after(env, "before-after-64k", LARGE),
    "gateway": gateway,
    # issue #11: one of three backends fails half its requests; ejection and retries on vs off
    "chaos": chaos,
    # issue #15: tracing off vs on at sample ratio 0.01 vs 1.0
    "tracing": tracing,
    # issue #12: basic auth (bcrypt, remembered), CORS and a source range vs the plain route
    "auth": auth,
    # issue #6: 1 vs 2 worker processes (on 2 cores shared with wrk and the backend)
    "workers": lambda env: variants(env, "workers", SMALL, {
        "1 worker": ("--workers", "1"),
        "2 workers": ("--workers", "2"),
    }),
}
