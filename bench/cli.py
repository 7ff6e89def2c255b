"""Flags and the run of `python -m bench`: find the tools, start the backend and the reference, run the
scenarios, print the table, write the JSON; every process it started is stopped on the way out."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from bench import nginx, report
from bench.processes import ProcessGroup, PyngressAddress, StartError, free_port, start_python_backend, which
from bench.scenarios import SCENARIOS, Environment, Options, Row, Target

DEFAULT_SCENARIOS = "small,64k,upload,routes,idle,churn"
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--scenarios", default=DEFAULT_SCENARIOS, help=f"comma-separated, from {', '.join(SCENARIOS)}")
    add("--duration", type=float, default=10.0, help="seconds of each wrk run")
    add("--rounds", type=int, default=3, help="alternating nginx/pyngress rounds; the median is reported")
    add("--connections", type=int, default=64, help="wrk -c")
    add("--threads", type=int, default=1, help="wrk -t")
    add("--workers", type=int, default=1,
        help="worker processes of the nginx reference (and of pyngress, if it has a --workers flag)")
    add("--idle-connections", type=int, default=10000, help="idle keep-alive connections of the idle scenario")
    add("--changes", type=int, default=50, help="manifest changes timed by the churn scenario")
    add("--churn-rate", type=float, default=50.0, help="EndpointSlice rewrites per second during the churn load")
    add("--python-backend", action="store_true", help="use the Python backend even when nginx is installed")
    add("--no-reference", action="store_true", help="skip the nginx reference proxy (ratios become n/a)")
    add("--nginx-directive", action="append", default=[], metavar="DIRECTIVE",
        help="extra directive in the reference's location, repeatable (e.g. 'proxy_request_buffering off')")
    add("--pyngress-arg", action="append", default=[], metavar="ARG",
        help="extra argument for pyngress, repeatable (e.g. --pyngress-arg=--log-level=warning)")
    add("--baseline", default="", metavar="REV",
        help="git revision the before-after scenarios (and observability) compare this tree against (checked out in "
             "a temporary worktree, removed at the end; pure Python), or a folder holding a source tree, run as it is "
             "(a copy built with scripts/build-inplace: compiled)")
    add("--json", default="", metavar="FILE", help="where to write the results (default bench/results/<time>.json)")
    add("--keep", action="store_true", help="keep the working folder (configs, manifests, process logs)")
    return parser


def _version(argv: Sequence[str]) -> str:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (result.stdout + result.stderr).strip().splitlines()
    return text[0] if text else "?"


def _checkout(revision: str, folder: str) -> str:
    """A detached git worktree of `revision` at `folder` (its `proxy` package is what the baseline runs)."""
    subprocess.run(["git", "-C", _REPO, "worktree", "add", "--detach", folder, revision], check=True,
                   capture_output=True, timeout=120)
    return folder


def _pyngress_has_workers() -> bool:
    result = subprocess.run([sys.executable, "-m", "proxy", "--help"], capture_output=True, text=True, timeout=30,
                            cwd=_REPO, check=False)
    return "--workers" in result.stdout


def _start_backend(env: Environment, *, python_backend: bool) -> None:
    ports = [free_port(), free_port()]
    while ports[1] == ports[0]:
        ports[1] = free_port()
    if env.nginx_path is not None and not python_backend:
        layout = nginx.backend_config(os.path.join(env.workdir, "nginx"), ports=ports)
        nginx.check_config(env.nginx_path, layout)
        nginx.start(env.group, env.nginx_path, layout, name="backend", port=ports[0])
        env.backend_kind = "nginx"
        env.backend_ports = ports
        return
    env.backend_kind = "python"
    env.backend_ports = start_python_backend(env.group, ports=2)
    env.note("backend: the Python fallback (bench/backend.py); numbers measure it as much as the proxy"
             if env.nginx_path is None or python_backend else "backend: Python (--python-backend)")


def _start_reference(env: Environment) -> None:
    assert env.nginx_path is not None
    port = free_port()
    layout = nginx.proxy_config(os.path.join(env.workdir, "nginx"), port=port, backend_port=env.backend_ports[0],
                                workers=env.options.workers, directives=env.options.nginx_directives)
    nginx.check_config(env.nginx_path, layout)
    env.reference_process = nginx.start(env.group, env.nginx_path, layout, name="reference", port=port)
    env.reference = PyngressAddress("127.0.0.1", port, 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"bench: unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    wrk = which("wrk")
    if wrk is None:
        print("bench: wrk is not installed (Debian/Ubuntu: apt-get install wrk nginx)", file=sys.stderr)
        return 2
    nginx_path = which("nginx")
    options = Options(duration=args.duration, rounds=max(1, args.rounds), connections=args.connections,
                      threads=args.threads, workers=args.workers, idle_connections=args.idle_connections,
                      changes=args.changes, churn_rate=args.churn_rate, pyngress_args=tuple(args.pyngress_arg),
                      nginx_directives=tuple(args.nginx_directive))
    started_at = datetime.datetime.now()
    workdir = tempfile.mkdtemp(prefix="pyngress-bench-")
    os.chmod(workdir, 0o755)  # nginx workers (user nobody) read files below it
    meta: dict[str, Any] = {
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "started": started_at.isoformat(timespec="seconds"), "scenarios": names, "options": vars(options),
        "python": platform.python_version(), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
        "wrk": _version([wrk, "--version"]), "nginx": _version([nginx_path, "-v"]) if nginx_path else None,
        "workdir": workdir,
    }
    print(f"bench: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"wrk -t{options.threads} -c{options.connections} -d{options.duration:g}s, {options.rounds} rounds",
          flush=True)
    rows: list[Row] = []
    target_list: list[Target] = []
    details: dict[str, Any] = {}
    status = 0
    if args.baseline and os.path.isdir(os.path.join(args.baseline, "proxy")):
        options.baseline_tree = os.path.abspath(args.baseline)
        meta["baseline"] = options.baseline_tree
    elif args.baseline:
        try:
            options.baseline_tree = _checkout(args.baseline, os.path.join(workdir, "baseline"))
        except (OSError, subprocess.SubprocessError) as error:
            print(f"bench: cannot check out --baseline {args.baseline}: {error}", file=sys.stderr)
            return 2
        meta["baseline"] = args.baseline
    group = ProcessGroup(workdir)
    env = Environment(workdir=workdir, group=group, options=options, wrk=wrk,
                      nginx_path=None if args.python_backend and args.no_reference else nginx_path,
                      backend_kind="", backend_ports=[])
    try:
        if nginx_path is None:
            env.note("nginx is not installed (apt-get install nginx): Python backend, no reference, ratios n/a")
        env.pyngress_workers_flag = _pyngress_has_workers()
        if options.workers != 1 and not env.pyngress_workers_flag:
            env.note(f"pyngress has no --workers flag: --workers {options.workers} applies to nginx only")
        _start_backend(env, python_backend=args.python_backend)
        if nginx_path is not None and not args.no_reference:
            _start_reference(env)
        elif args.no_reference:
            env.note("no reference proxy (--no-reference): ratios are n/a")
        print(f"bench: backend {env.backend_kind} on 127.0.0.1:{env.backend_ports[0]} and :{env.backend_ports[1]}"
              + (f", nginx reference on :{env.reference.http_port}" if env.reference else ""), flush=True)
        for name in names:
            print(f"bench: scenario {name} (load average {os.getloadavg()[0]:.2f})", flush=True)
            began = time.monotonic()
            try:
                outcome = SCENARIOS[name](env)
            except (StartError, RuntimeError, OSError, subprocess.SubprocessError) as error:
                env.note(f"scenario {name} failed: {error}")
                details[name] = {"error": str(error)}
                target_list.append(Target(f"{name}: scenario ran", f"failed: {str(error).splitlines()[0]}", False))
                status = 1
                continue
            rows += outcome.rows
            target_list += outcome.targets
            details[name] = outcome.details | {"seconds": round(time.monotonic() - began, 1)}
    except KeyboardInterrupt:
        env.note("interrupted: stopping every process started")
        status = 130
    except StartError as error:
        env.note(f"could not start: {error}")
        status = 1
    finally:
        group.close()
        meta["loadavg_end"] = os.getloadavg()
        meta["backend"] = env.backend_kind
        meta["notes"] = env.notes
        path = args.json or os.path.join(_REPO, "bench", "results", f"{started_at:%Y%m%d-%H%M%S}.json")
        if rows or details:
            report.write_json(path, meta=meta, rows=rows, target_list=target_list, details=details)
        if options.baseline_tree and options.baseline_tree.startswith(workdir):
            subprocess.run(["git", "-C", _REPO, "worktree", "remove", "--force", options.baseline_tree],
                           capture_output=True, timeout=60, check=False)
        if args.keep:
            print(f"bench: working folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if rows:
        print()
        print(report.table(rows))
    if target_list:
        print("\ntargets (issue):")
        print(report.targets(target_list))
    print(f"\nbench: load average {' '.join(f'{x:.2f}' for x in meta['loadavg_start'])} at start, "
          f"{' '.join(f'{x:.2f}' for x in meta['loadavg_end'])} at end; backend {env.backend_kind}")
    for note in env.notes:
        print(f"  note: {note}")
    if rows or details:
        print(f"bench: results written to {path}")
    return status
