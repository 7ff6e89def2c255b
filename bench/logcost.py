"""Where the access log and per-route metrics cost CPU outside what callgrind counts: many short alternating rounds.

    python -m bench.logcost [--rounds 8] [--seconds 3] [--connections 64] [--baseline DIR]

Starts nginx (the backend) and pyngress twice from this tree (compiled when built: scripts/build-inplace), "both
off" (--no-access-log --no-route-metrics) and "both on" (--access-log --route-metrics, the log into the pipe the
harness reads, as a container runtime would), then runs `wrk -t1 -c64` against each in turn, alternating, and
prints per request, medians over the rounds: the proxy's user and system CPU (/proc/PID/stat, every thread), its
voluntary and involuntary context switches (/proc/PID/task/*/status), its read and write system calls
(/proc/PID/io: the log's pipe writes are the difference of the writes), and the CPU of the harness's thread that
reads its stdout (bench.processes._pump: the stand-in for a container runtime's reader). CPU per request holds
still better than req/s when other load moves on a shared box; the on - off differences are what the log and the
metrics cost the proxy, counted by the kernel rather than by callgrind (system calls, wake-ups, cache misses).
`--baseline DIR` adds "both on" from another source tree (a copy built with scripts/build-inplace), in the same
rounds. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from statistics import median

from bench import manifests, nginx
from bench.load import Request, run_wrk
from bench.processes import ProcessGroup, free_port, start_pyngress, which

_TICKS = os.sysconf("SC_CLK_TCK")
_FLAVOURS = {"both off": ("--no-access-log", "--no-route-metrics"), "both on": ("--access-log", "--route-metrics")}
_REQUEST = Request(path="/small", host=manifests.MAIN_HOST)
# The figures per request, in print order: (key, heading, scale)
_COLUMNS = (("user", "user µs", 1e6), ("system", "system µs", 1e6), ("voluntary", "vol. cs", 1.0),
            ("involuntary", "invol. cs", 1.0), ("syscr", "reads", 1.0), ("syscw", "writes", 1.0),
            ("pump", "pump µs", 1e6))


def _counters(pid: int, pump: int | None) -> dict[str, float]:
    """The proxy's CPU seconds, context switches and system calls so far, and the pump thread's CPU seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    found = {"user": int(fields[11]) / _TICKS, "system": int(fields[12]) / _TICKS, "voluntary": 0.0,
             "involuntary": 0.0, "pump": 0.0}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches:"):
                        found["voluntary"] += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        found["involuntary"] += int(line.split()[1])
        except OSError:  # a thread that ended
            continue
    with open(f"/proc/{pid}/io", encoding="ascii") as io:
        for line in io:
            key, value = line.split(":")
            if key in ("syscr", "syscw"):
                found[key] = float(value)
    if pump is not None:
        with open(f"/proc/self/task/{pump}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        found["pump"] = (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def _pump_thread(name: str) -> int | None:
    """The native id of the harness thread that reads the child ``name``'s stdout (bench.processes)."""
    for thread in threading.enumerate():
        if thread.name == f"stdout-{name}":
            return thread.native_id
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.logcost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds, each flavour once per round, alternating")
    parser.add_argument("--seconds", type=int, default=3, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections (one thread)")
    parser.add_argument("--baseline", default="", metavar="DIR",
                        help="also: both on from the source tree in DIR (built in place: compiled)")
    args = parser.parse_args(argv)
    flavours = dict(_FLAVOURS)
    if args.baseline:
        flavours["baseline on"] = _FLAVOURS["both on"]
    wrk, nginx_path = which("wrk"), which("nginx")
    if wrk is None or nginx_path is None:
        print("bench.logcost: needs wrk and nginx (apt-get install wrk nginx)", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="pyngress-logcost-")
    os.chmod(workdir, 0o755)
    group = ProcessGroup(workdir)
    figures: dict[str, list[dict[str, float]]] = {label: [] for label in flavours}
    try:
        ports = [free_port(), free_port()]
        layout = nginx.backend_config(os.path.join(workdir, "nginx"), ports=ports)
        nginx.start(group, nginx_path, layout, name="backend", port=ports[0])
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", ports[0])]))
        started = {}
        for index, (label, extra) in enumerate(flavours.items()):
            name = f"pyngress-{index}"
            process, address, _ = start_pyngress(group, manifests=folder, name=name, extra=extra,
                                                 tree=args.baseline if label == "baseline on" else None)
            url = f"http://{address.host}:{address.http_port}"
            run_wrk(wrk, url=url, request=_REQUEST, duration=2, connections=args.connections, workdir=workdir)
            started[label] = (process.pid, _pump_thread(name), url)
        labels = list(flavours)
        for index in range(args.rounds):
            for label in labels if index % 2 == 0 else reversed(labels):
                pid, pump, url = started[label]
                before = _counters(pid, pump)
                result = run_wrk(wrk, url=url, request=_REQUEST, duration=args.seconds,
                                 connections=args.connections, workdir=workdir)
                after = _counters(pid, pump)
                if result.error or not result.requests or result.failed_requests:
                    print(f"  round {index + 1} {label}: {result.error or 'failed requests'}", file=sys.stderr)
                    continue
                per = {key: (after[key] - before[key]) / result.requests for key in after}
                per["rps"] = result.rps
                figures[label].append(per)
                print(f"  round {index + 1} {label}: {result.rps:,.0f} req/s, "
                      + ", ".join(f"{heading} {per[key] * scale:.3f}" for key, heading, scale in _COLUMNS),
                      flush=True)
    finally:
        group.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nper request, medians of {args.rounds} rounds of {args.seconds} s (load average "
          f"{os.getloadavg()[0]:.2f} at the end)")
    print(f"  {'':<11}{'req/s':>8}" + "".join(f"{heading:>11}" for _, heading, _ in _COLUMNS))
    medians = {}
    for label, rounds in figures.items():
        if not rounds:
            continue
        medians[label] = {key: median(r[key] for r in rounds) for key in rounds[0]}
        print(f"  {label:<11}{medians[label]['rps']:>8,.0f}"
              + "".join(f"{medians[label][key] * scale:>11.3f}" for key, _, scale in _COLUMNS))
    off = medians.get("both off")
    for label, name in (("both on", "on - off"), ("baseline on", "base - off")):
        on = medians.get(label)
        if off is not None and on is not None:
            print(f"  {name:<11}{on['rps'] / off['rps']:>7.3f}x"
                  + "".join(f"{(on[key] - off[key]) * scale:>11.3f}" for key, _, scale in _COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
