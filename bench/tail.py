"""`python -m bench.tail`: where the small-response latency tail comes from (issue #14: p99 <= 2x nginx's).

One nginx backend, the nginx reference proxy and one or more pyngress processes (variants: environment variables for
bench/tail_probe.py, which wraps the real proxy), all up at once; `wrk -t1 -c64` rounds alternate over them (order
flipped every round), as in `python -m bench --scenarios compiled`. Per round and proxy it records:

* wrk's latency distribution (p50 ... p99.99, max, mean, stdev) and req/s;
* `mean x rps / 64`: Little's law says a closed loop of 64 connections has mean latency 64 / throughput, so a proxy
  at 0.6x nginx's req/s has 1.67x its mean latency before any tail; `p99 / mean` is the shape of the tail itself;
* scheduler figures of the proxy, the backend and wrk (`/proc/PID/schedstat`: CPU time, time spent runnable but
  waiting for a core; involuntary context switches): on 2 cores shared by three busy processes the kernel's
  preemptions are one source of the tail;
* from the probe (pyngress only): cyclic GC collections per generation with their pause times, and the event loop's
  lag (`PYNGRESS_PROBE_LAG_MS`).

Variants: `--variant LABEL[:KEY=VALUE;KEY=VALUE]`, e.g. `--variant base --variant 'nogc:PYNGRESS_PROBE_GC=off'`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import manifests, nginx
from bench.client import HttpConnection
from bench.processes import _PYNGRESS_READY, Process, ProcessGroup, PyngressAddress, children, free_port, which
from bench.scenarios import open_idle, raise_open_files

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERCENTILES = (50, 75, 90, 95, 99, 99.9, 99.99)
_LUA = """wrk.method = "GET"
wrk.headers["Host"] = "bench.local"
done = function(summary, latency, requests)
   local p = {}
   for _, q in ipairs({QUANTILES}) do p[#p + 1] = string.format('"%s":%d', tostring(q), latency:percentile(q)) end
   local e = summary.errors
   io.write(string.format('TAILJSON {"requests":%d,"duration_us":%d,"errors":%d,"max_us":%d,"mean_us":%.1f,'
      .. '"stdev_us":%.1f,"p":{%s}}\\n', summary.requests, summary.duration,
      e.connect + e.read + e.write + e.status + e.timeout, latency.max, latency.mean, latency.stdev,
      table.concat(p, ",")))
end
""".replace("QUANTILES", ",".join(str(q) for q in PERCENTILES))


def schedstat(pids: Sequence[int]) -> tuple[float, float, int]:
    """CPU seconds, seconds runnable but waiting for a CPU, and involuntary context switches of the main thread
    of each of `pids` (the event loop's; the probe's own thread left out), summed (0s for what is gone)."""
    run = wait = 0.0
    nivcsw = 0
    for pid in pids:
        for task in (pid,):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stat:
                    fields = stat.read().split()
                run += int(fields[0]) / 1e9
                wait += int(fields[1]) / 1e9
                with open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as status:
                    for line in status:
                        if line.startswith("nonvoluntary_ctxt_switches:"):
                            nivcsw += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return run, wait, nivcsw


@dataclass
class Target:
    label: str
    port: int
    process: Process
    pids: list[int]
    probe_file: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def probe(self) -> dict[str, Any] | None:
        if not self.probe_file:
            return None
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # written every 0.2 s by the probe's thread
            try:
                with open(self.probe_file, encoding="utf-8") as data:
                    return json.load(data)  # type: ignore[no-any-return]
            except (OSError, ValueError):
                time.sleep(0.05)
        return None


def _probe_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    if before is None or after is None:
        return {}
    out: dict[str, Any] = {}
    for generation in range(3):
        a, b = after["gc"][generation], before["gc"][generation]
        big = {k: a["buckets"][k] - b["buckets"][k] for k in a["buckets"]}
        out[f"gen{generation}"] = {"n": a["n"] - b["n"], "total_ms": round(a["total_ms"] - b["total_ms"], 3),
                                   "buckets": {k: v for k, v in big.items() if v}}
    for name in ("lag", "cpu_lag", "gc_cpu"):
        a, b = after[name], before[name]
        out[name] = {"n": a["n"] - b["n"], "total_ms": round(a["total_ms"] - b["total_ms"], 3),
                     "buckets": {k: a["buckets"][k] - b["buckets"][k] for k in a["buckets"]
                                 if a["buckets"][k] - b["buckets"][k]}}
    return out


def run_round(wrk: str, target: Target, script: str, *, duration: float, connections: int,
              others: dict[str, list[int]]) -> dict[str, Any]:
    probe_before = target.probe()
    own_before = schedstat(target.pids)
    other_before = {name: schedstat(pids) for name, pids in others.items()}
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    completed = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout=10s",
                                "-s", script, f"http://127.0.0.1:{target.port}/"],
                               capture_output=True, text=True, timeout=duration + 30, check=False)
    wall = time.monotonic() - started
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_after = schedstat(target.pids)
    other_after = {name: schedstat(pids) for name, pids in others.items()}
    probe_after = target.probe()
    line = next((x for x in completed.stdout.splitlines() if x.startswith("TAILJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no TAILJSON line: {completed.stdout[-500:]} {completed.stderr[-500:]}")
    data = json.loads(line[len("TAILJSON "):])
    rps = data["requests"] / (data["duration_us"] / 1e6)

    def sched(before: tuple[float, float, int], after: tuple[float, float, int]) -> dict[str, float]:
        return {"cpu": round((after[0] - before[0]) / wall, 3), "wait": round((after[1] - before[1]) / wall, 3),
                "nivcsw_per_s": round((after[2] - before[2]) / wall, 1)}

    result: dict[str, Any] = {
        "rps": round(rps), "errors": data["errors"], "mean_ms": data["mean_us"] / 1000,
        "stdev_ms": data["stdev_us"] / 1000, "max_ms": data["max_us"] / 1000,
        "p": {k: v / 1000 for k, v in data["p"].items()},
        "little": round(data["mean_us"] / 1e6 * rps / connections, 3),
        "sched": {target.label: sched(own_before, own_after)}
        | {name: sched(other_before[name], other_after[name]) for name in others}
        | {"wrk": {"cpu": round((usage_after.ru_utime + usage_after.ru_stime - usage_before.ru_utime
                                 - usage_before.ru_stime) / wall, 3),
                   "nivcsw_per_s": round((usage_after.ru_nivcsw - usage_before.ru_nivcsw) / wall, 1)}},
        "probe": _probe_delta(probe_before, probe_after),
        "loadavg": os.getloadavg()[0],
    }
    result["p99_over_mean"] = round(result["p"]["99"] / result["mean_ms"], 2)
    return result


def _start_pyngress(group: ProcessGroup, folder: str, label: str, environ: dict[str, str], workdir: str,
                    extra: Sequence[str]) -> Target:
    probe_file = os.path.join(workdir, f"probe-{label}.json")
    env = dict(os.environ)
    env["PYTHONPATH"] = _REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYNGRESS_PROBE_FILE"] = probe_file
    env.pop("PYNGRESS_NO_EXTENSIONS", None)
    for key, value in environ.items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    argv = [sys.executable, "-m", "bench.tail_probe", "--manifests", folder, "--http-port", "0", "--https-port",
            "0", "--admin-port", "0", "--bind", "127.0.0.1", "--no-access-log", *extra]
    process = group.start(f"pyngress-{label}", argv, env=env, cwd=_REPO)
    match = process.wait_line(_PYNGRESS_READY, timeout=120)
    return Target(label, int(match["http"]), process, [process.pid], probe_file)


def _boost(pid: int, nice: int) -> None:
    try:
        with open(f"/proc/{pid}/autogroup", "w", encoding="ascii") as autogroup:
            autogroup.write(str(nice))
    except OSError as error:
        print(f"bench.tail: cannot boost pid {pid}: {error}", file=sys.stderr)


def _variant(text: str) -> tuple[str, dict[str, str]]:
    label, _, rest = text.partition(":")
    environ = {}
    for pair in filter(None, rest.split(";")):
        key, _, value = pair.partition("=")
        environ[key.strip()] = value
    return label, environ


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _over_2ms(data: dict[str, Any]) -> float:
    """Share (%) of a lag histogram's samples above 2 ms."""
    above = sum(v for k, v in data.get("buckets", {}).items() if k not in ("0.1", "0.5", "1", "2"))
    return 100.0 * above / max(1, data.get("n", 0))


def _row(t: Target) -> dict[str, float]:
    """The median over the rounds of each figure of one proxy."""
    figures: dict[str, list[float]] = {}
    for x in t.rounds:
        probe, sched = x["probe"], x["sched"][t.label]
        values = {"rps": x["rps"], "mean": x["mean_ms"], "p50": x["p"]["50"], "p90": x["p"]["90"],
                  "p99": x["p"]["99"], "p999": x["p"]["99.9"], "max": x["max_ms"], "shape": x["p99_over_mean"],
                  "little": x["little"], "cpu": sched["cpu"], "wait": sched["wait"], "ivcs": sched["nivcsw_per_s"],
                  "gen2": probe.get("gen2", {}).get("n", 0), "gen2_ms": probe.get("gen2", {}).get("total_ms", 0),
                  "young": probe.get("gen0", {}).get("n", 0) + probe.get("gen1", {}).get("n", 0),
                  "lag": _over_2ms(probe.get("lag", {})), "cpu_lag": _over_2ms(probe.get("cpu_lag", {}))}
        for key, value in values.items():
            figures.setdefault(key, []).append(value)
    return {key: _median(values) for key, values in figures.items()}


def summary(targets: Sequence[Target]) -> str:
    lines = [f"{'proxy':<12} {'req/s':>8} {'mean':>6} {'p50':>6} {'p90':>6} {'p99':>6} {'p99.9':>6} {'max':>7} "
             f"{'p99/mean':>8} {'little':>6} {'cpu':>5} {'wait':>5} {'ivcs/s':>7}  gc2 n/ms  gc0+1 n  lag>2ms wall/cpu"]
    for t in targets:
        m = _row(t)
        lines.append(
            f"{t.label:<12} {m['rps']:>8,.0f} {m['mean']:>6.2f} {m['p50']:>6.2f} {m['p90']:>6.2f} {m['p99']:>6.2f} "
            f"{m['p999']:>6.2f} {m['max']:>7.2f} {m['shape']:>8.2f} {m['little']:>6.2f} {m['cpu']:>5.2f} "
            f"{m['wait']:>5.2f} {m['ivcs']:>7.0f}  {m['gen2']:>3.0f}/{m['gen2_ms']:<6.1f} {m['young']:>7.0f}  "
            f"{m['lag']:>4.1f}%/{m['cpu_lag']:.1f}%")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tail", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--variant", action="append", default=[], help="LABEL[:KEY=VALUE;KEY=VALUE] (repeatable)")
    parser.add_argument("--no-nginx", action="store_true", help="no nginx reference")
    parser.add_argument("--pyngress-arg", action="append", default=[])
    parser.add_argument("--json", default="")
    parser.add_argument("--idle", type=int, default=0, metavar="N",
                        help="open N idle keep-alive connections to every proxy first (each after one request), "
                             "kept for the whole run, as the idle scenario does (keep-alive timeouts 600 s)")
    parser.add_argument("--boost", type=int, default=0, metavar="NICE",
                        help="write NICE (e.g. -10) to /proc/PID/autogroup of this process (wrk's session) and of "
                             "every process it starts (each its own session): with kernel.sched_autogroup_enabled "
                             "the CPU is shared between sessions, so a busy box's other sessions take less (root)")
    args = parser.parse_args(argv)
    wrk, nginx_path = which("wrk"), which("nginx")
    if wrk is None or nginx_path is None:
        print("bench.tail: needs wrk and nginx (apt-get install wrk nginx)", file=sys.stderr)
        return 2
    variants = [_variant(v) for v in (args.variant or ["compiled"])]
    workdir = tempfile.mkdtemp(prefix="pyngress-tail-")
    os.chmod(workdir, 0o755)
    script = os.path.join(workdir, "tail.lua")
    with open(script, "w", encoding="utf-8") as out:
        out.write(_LUA)
    print(f"bench.tail: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; wrk -t1 -c{args.connections} "
          f"-d{args.duration:g}s, {args.rounds} rounds", flush=True)
    group = ProcessGroup(workdir)
    targets: list[Target] = []
    idle: list[HttpConnection] = []
    try:
        ports = [free_port(), free_port()]
        layout = nginx.backend_config(os.path.join(workdir, "nginx"), ports=ports)
        nginx.check_config(nginx_path, layout)
        backend = nginx.start(group, nginx_path, layout, name="backend", port=ports[0])
        others = {"backend": list(backend.measured)}
        if not args.no_nginx:
            port = free_port()
            layout = nginx.proxy_config(os.path.join(workdir, "nginx"), port=port, backend_port=ports[0],
                                        keepalive_timeout=600 if args.idle else None)
            nginx.check_config(nginx_path, layout)
            reference = nginx.start(group, nginx_path, layout, name="reference", port=port)
            targets.append(Target("nginx", port, reference, list(reference.measured)))
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", ports[0])]))
        for label, environ in variants:
            extra = [*args.pyngress_arg, *(["--client-keepalive-timeout", "600"] if args.idle else [])]
            target = _start_pyngress(group, folder, label, environ, workdir, extra)
            target.pids += children(target.process.pid)
            targets.append(target)
        if args.boost:
            for pid in [os.getpid(), *(p.pid for p in group.processes)]:
                _boost(pid, args.boost)
        if args.idle:
            raise_open_files(args.idle * (len(targets) + 1) + 1000)
            for target in targets:
                opened, failed = open_idle(PyngressAddress("127.0.0.1", target.port, 0), args.idle,
                                           deadline=time.monotonic() + 180)
                idle.extend(opened)
                print(f"  {target.label}: {len(opened)} idle connections ({failed} failed)", flush=True)
        for target in targets:  # warm-up
            run_round(wrk, target, script, duration=2, connections=args.connections, others=others)
        for index in range(args.rounds):
            for target in targets if index % 2 == 0 else list(reversed(targets)):
                result = run_round(wrk, target, script, duration=args.duration, connections=args.connections,
                                   others=others)
                target.rounds.append(result)
                p = result["p"]
                print(f"  round {index + 1} {target.label:<10} {result['rps']:>7,} req/s mean {result['mean_ms']:.2f} "
                      f"p50 {p['50']:.2f} p99 {p['99']:.2f} p99.9 {p['99.9']:.2f} max {result['max_ms']:.2f} ms "
                      f"p99/mean {result['p99_over_mean']:.2f} sched {json.dumps(result['sched'])} "
                      f"probe {json.dumps(result['probe'])} load {result['loadavg']:.1f}", flush=True)
    finally:
        for connection in idle:
            connection.close()
        group.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(summary(targets))
    if targets and targets[0].label == "nginx":
        base = targets[0]
        for t in targets[1:]:
            ratios = [b["p"]["99"] and x["p"]["99"] / b["p"]["99"] for x, b in zip(t.rounds, base.rounds, strict=True)]
            print(f"{t.label}: p99 / nginx's p99 per round {', '.join(f'{r:.2f}' for r in ratios)}; "
                  f"median {_median(ratios):.2f}")
    path = args.json or os.path.join(_REPO, "bench", "results", f"tail-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"argv": list(argv or sys.argv[1:]), "loadavg_end": os.getloadavg(),
                   "targets": {t.label: t.rounds for t in targets}}, out, indent=1)
    print(f"bench.tail: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
