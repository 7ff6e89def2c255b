"""Instructions per request, counted by valgrind (callgrind): a cost measure that other load on the machine
cannot move, for before/after comparisons that req/s on a shared 2-core box is too noisy for.

    python -m bench.instructions --baseline REV              # this tree vs a git revision
    python -m bench.instructions --requests 3000
    python -m bench.instructions --close --pure --only-tracing   # a connection per request (Connection: close)
    python -m bench.instructions --pure --only-tracing --body 64k   # 64 KiB answers (/64k) instead of 100 bytes
    python -m bench.instructions --pure --only-tracing --seeds 2   # pure Python vs compiled (scripts/build-inplace)
    python -m bench.instructions --tracing --only-tracing --seeds 4   # mean over 4 hash seeds (see _SEEDS)
    python -m bench.instructions --tracing --only-tracing --ratios 0.01 --seeds 2   # off and ratio 0.01 only

pyngress runs under `valgrind --tool=callgrind` (about 50x slower); after a warm-up the counters are
zeroed (`callgrind_control -z`), a fixed number of keep-alive requests is sent one after the other,
and the counts are dumped (`callgrind_control -d`). The figure is instructions
executed by the proxy process (Python, C extensions, the kernel interface) divided by the requests.
Cases: a plain Ingress path route (100-byte answers from the backend) on the baseline revision and
on this tree, and the HTTPRoute rule of the gateway scenario (two header matches, two weighted
backends) on this tree. `--policy` adds the cost of the traffic-policy path (issue #11): the proxy
server on a hand-built one-route table (bench.policy_proxy) without a policy, and with round robin,
passive ejection and a circuit breaker on its cluster. `--tracing` adds the plain Ingress route with tracing
on (issue #15: `--otlp-endpoint` to a local OTLP sink, bench.otlp_sink) at sample ratio 0 (the unsampled
request's cost alone), 0.01 and 1.0 (`--ratios` picks others), 5000
requests each; the exporter thread's encoding and POSTs run in the proxy process and are counted too. Under
callgrind the proxy is some 50-80x slower, so a timed export (every 5 s) would come that much more often per
request than at full speed, carrying a span or two where at full speed it carries hundreds: the tracing cases
run with no timed export (--otlp-export-interval 100000) and the harness flushes the span queue through the
admin port (POST /debug/tracing/flush) right before the counted window and at its end, inside it, so every span
the window made is encoded and POSTed in it, in full batches (the rows without tracing send the same request,
answered 404, so every row pays it). `--security` adds the
Ingress route with ingress-nginx's whitelist-source-range, enable-cors (an allowed Origin) and limit-rps /
limit-connections annotations. Everything is on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from bench import manifests, nginx
from bench.client import HttpConnection
from bench.otlp_sink import OtlpSink
from bench.processes import ProcessGroup, free_port, start_python_backend, which

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LISTENING = re.compile(r"pyngress listening http=(?P<host>[^:]+):(?P<http>\d+)(?:.* admin=[^:]+:(?P<admin>\d+))?")
_TOTAL = re.compile(r"^summary:\s+(\d+)", re.MULTILINE)


def _checkout(revision: str, folder: str) -> str:
    subprocess.run(["git", "-C", _REPO, "worktree", "add", "--detach", folder, revision], check=True,
                   capture_output=True, timeout=120)
    return folder


# PYTHONHASHSEED values each case runs with (--seeds N: 1..N, the mean reported); empty: the environment's.
# String hashes decide where names land in dicts, so the same request path costs up to ~1.5% more or less
# instructions from one seed (or from one edit of unrelated code) to the next: a difference smaller than
# that needs several seeds.
_SEEDS: list[str] = []
# --close: a request header that makes each request a connection of its own (the client reconnects after it).
_CLOSE = (("Connection", "close"),)
# The path every case asks for (--body): the backend answers /small with 100 bytes, /64k with 65,536.
_PATH = ["/small"]
_BODIES = {"small": ("/small", "100-byte answers"), "64k": ("/64k", "64 KiB answers")}


def _count(group: ProcessGroup, *, tree: str, folder: str, extra: Sequence[str], port: int, host: str,
           headers: tuple[tuple[str, str], ...], requests: int, workdir: str, name: str,
           command: Sequence[str] = (), pure: bool = False, flush: bool = False) -> float:
    """Instructions per request of one pyngress (from `tree`) answering `requests` GETs of `_PATH` on `port`
    (`command`: another module to run than `proxy --manifests folder`, taking --http-port); with --seeds, the
    mean over the seeds. `flush`: the span queue is exported (POST /debug/tracing/flush) before the counted window
    and at its end, inside it (see _flush_spans)."""
    if not _SEEDS:
        return _count_once(group, tree=tree, folder=folder, extra=extra, port=port, host=host, headers=headers,
                           requests=requests, workdir=workdir, name=name, command=command, seed=None, pure=pure,
                           flush=flush)
    counts = [_count_once(group, tree=tree, folder=folder, extra=extra, port=port,
                          host=host, headers=headers, requests=requests, workdir=workdir, name=f"{name}.seed{seed}",
                          command=command, seed=seed, pure=pure, flush=flush)
              for index, seed in enumerate(_SEEDS)]
    print(f"{name}: " + ", ".join(f"{count:,.0f}" for count in counts) + f" (seeds {', '.join(_SEEDS)})",
          file=sys.stderr)
    return sum(counts) / len(counts)


def _count_once(group: ProcessGroup, *, tree: str, folder: str, extra: Sequence[str], port: int, host: str,
                headers: tuple[tuple[str, str], ...], requests: int, workdir: str, name: str,
                command: Sequence[str], seed: str | None, pure: bool = False, flush: bool = False) -> float:
    out = os.path.join(workdir, f"callgrind.{name}.out")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m"]
    if command:
        argv += [*command, "--http-port", str(port)]
    else:
        argv += ["proxy", "--manifests", folder, "--bind", "127.0.0.1", "--http-port", str(port),
                 "--https-port", "0", "--admin-port", "0", "--no-access-log", "--log-level", "warning", *extra]
    env = {**os.environ, "PYTHONPATH": tree}
    # pure: the .py files even where compiled modules are installed (proxy/extensions.py); else whatever is there.
    env.pop("PYNGRESS_NO_EXTENSIONS", None)
    if pure:
        env["PYNGRESS_NO_EXTENSIONS"] = "1"
    if seed is not None:
        env["PYTHONHASHSEED"] = seed
    process = group.start(name, argv, env=env, cwd=tree)
    try:
        listening = process.wait_line(_LISTENING, timeout=1200)
        connection = HttpConnection("127.0.0.1", port, timeout=60)
        for _ in range(200):  # warm-up: pools, caches, bound counters
            status, _ = connection.request("GET", _PATH[0], host=host, headers=headers)
            if status != 200:
                raise RuntimeError(f"{name}: GET {_PATH[0]} (Host {host}) answered {status}")
        admin = HttpConnection("127.0.0.1", int(listening.group("admin")), timeout=600) if flush else None
        before = _flush_spans(admin) if admin is not None else None  # the window starts with an empty queue
        subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True, timeout=60)
        for _ in range(requests):
            connection.request("GET", _PATH[0], host=host, headers=headers)
        if admin is not None:  # every span made in the window is exported in it
            after = _flush_spans(admin)
            if before is not None and after is not None:
                exported, failed = after[0] - before[0], after[1] - before[1]
                print(f"{name}: {exported} spans made and exported in the window ({failed} dropped)", file=sys.stderr)
        subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True, timeout=120)
        connection.close()
    finally:
        group.stop(process)
    totals = []
    for file in os.listdir(workdir):
        if file.startswith(os.path.basename(out) + "."):  # the dump asked for (the final one is at exit)
            with open(os.path.join(workdir, file), encoding="utf-8", errors="replace") as dump:
                found = _TOTAL.search(dump.read())
            if found:
                totals.append(int(found.group(1)))
    if not totals:
        raise RuntimeError(f"{name}: callgrind wrote no counts")
    return min(totals) / requests


def _flush_spans(admin: HttpConnection) -> tuple[int, int] | None:
    """Export the proxy's queued spans now (POST /debug/tracing/flush, answered once the sink has them): (spans
    exported, dropped or failed) so far; None without tracing (the 404 costs the off case about what the flush
    request costs the others). With --otlp-export-interval far beyond the run, the spans of the counted window are
    exported by this flush at its end, whatever callgrind's slowdown (the timer would otherwise fire every few
    hundred requests, each export carrying a span or two instead of hundreds at full speed)."""
    status, body = admin.request("POST", "/debug/tracing/flush", host="127.0.0.1")
    if status != 200:
        return None
    answer = json.loads(body)
    return answer["exported"], answer["failed"] + answer["dropped"]


def _mode() -> str:
    """What this tree runs without PYNGRESS_NO_EXTENSIONS (compiled when scripts/build-inplace has run)."""
    env = {key: value for key, value in os.environ.items() if key != "PYNGRESS_NO_EXTENSIONS"}
    found = subprocess.run([sys.executable, "-c", "from proxy import extensions; print(extensions.mode())"],
                           cwd=_REPO, env={**env, "PYTHONPATH": _REPO}, capture_output=True, text=True, timeout=120,
                           check=False)
    return found.stdout.strip() or "unknown"


# `--security`: the main Ingress with a source-range check, CORS for an allowed origin, and per-client limits
# far above what the bench sends (the buckets and counters are paid for, never refused).
SECURITY_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8, 127.0.0.0/8, 192.168.0.0/16",
    "nginx.ingress.kubernetes.io/enable-cors": "true",
    "nginx.ingress.kubernetes.io/cors-allow-origin": "https://app.example, https://*.example.org",
    "nginx.ingress.kubernetes.io/limit-rps": "100000",
    "nginx.ingress.kubernetes.io/limit-connections": "1000",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="", metavar="REV", help="git revision to compare against")
    parser.add_argument("--requests", type=int, default=0,
                        help="requests counted per case (default 2000; with --tracing 5000, so that ratio 0.01 "
                             "samples some 50 rather than a handful)")
    parser.add_argument("--policy", action="store_true",
                        help="also: a route without policy vs a cluster with round robin, ejection and a breaker")
    parser.add_argument("--tracing", action="store_true",
                        help="also: the Ingress route with tracing on, sample ratio 0.01 and 1.0 (spans to a local "
                             "OTLP sink)")
    parser.add_argument("--ratios", default="0,0.01,1.0", metavar="R,R",
                        help="with --tracing: the sample ratios measured (default 0, 0.01 and 1.0)")
    parser.add_argument("--only-tracing", action="store_true",
                        help="with --tracing: leave out the HTTPRoute case (--baseline still adds its row)")
    parser.add_argument("--seeds", type=int, default=0, metavar="N",
                        help="run each case with PYTHONHASHSEED 1..N and report the mean (see _SEEDS)")
    parser.add_argument("--body", choices=sorted(_BODIES), default="small",
                        help="the backend's answer: small (100 bytes, /small) or 64k (65,536 bytes, /64k)")
    parser.add_argument("--pure", action="store_true",
                        help="also: the Ingress route of this tree in pure Python (PYNGRESS_NO_EXTENSIONS=1), next to "
                             "the compiled modules when there are any (scripts/build-inplace)")
    parser.add_argument("--keep-dumps", default="", metavar="DIR",
                        help="copy the callgrind dumps to DIR (for callgrind_annotate)")
    parser.add_argument("--observability", action="store_true",
                        help="also: the Ingress route with per-route metrics off, and with metrics and the access "
                             "log on (stdout, a pipe the harness reads), next to the default (metrics on, log off)")
    parser.add_argument("--security", action="store_true",
                        help="also: the Ingress route with ingress-nginx's source range, CORS and rate limits")
    parser.add_argument("--close", action="store_true",
                        help="every request carries Connection: close, so each one opens (and the proxy closes) a "
                             "connection of its own: the per-connection cost (accept, bookkeeping, close) counts in")
    parser.add_argument("--auth", action="store_true",
                        help="also: a route behind basic auth (bcrypt, remembered after the first request), CORS "
                             "and a source range (the bench `auth` scenario's)")
    args = parser.parse_args(argv)
    args.requests = args.requests or (5000 if args.tracing else 2000)
    _SEEDS[:] = [str(seed) for seed in range(1, args.seeds + 1)]
    _PATH[0] = _BODIES[args.body][0]
    if which("valgrind") is None or which("callgrind_control") is None:
        print("bench.instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="pyngress-instructions-")
    os.chmod(workdir, 0o755)
    group = ProcessGroup(workdir)
    baseline = ""
    rows: list[tuple[str, float]] = []
    tracing_rows: list[tuple[str, str, float, float]] = []  # (mode, ratio, instructions, tracing off's)
    try:
        nginx_path = which("nginx")
        if nginx_path is not None:
            ports = [free_port(), free_port()]
            layout = nginx.backend_config(os.path.join(workdir, "nginx"), ports=ports)
            nginx.start(group, nginx_path, layout, name="backend", port=ports[0])
        else:
            ports = start_python_backend(group, ports=1)
        backend = [("127.0.0.1", ports[0])]
        folder = os.path.join(workdir, "manifests")  # Ingress only
        manifests.write_folder(folder, manifests.objects(None, backend=backend))
        gateway = os.path.join(workdir, "gateway")  # the same, plus the Gateway and its HTTPRoute
        manifests.write_folder(gateway, manifests.objects(None, backend=backend))
        manifests.write_json(os.path.join(gateway, manifests.FILE_GATEWAY), manifests.gateway_objects(backend))
        plain = {"host": manifests.MAIN_HOST, "headers": _CLOSE if args.close else ()}
        if args.baseline:
            baseline = _checkout(args.baseline, os.path.join(workdir, "baseline"))
            port = free_port()
            rows.append((f"Ingress route, {args.baseline}",
                         _count(group, tree=baseline, folder=folder, extra=(), port=port, requests=args.requests,
                                workdir=workdir, name="baseline", **plain)))  # type: ignore[arg-type]
        port = free_port()
        # With --tracing the plain rows (tracing off) flush too, so that every row pays the one admin request.
        flush = args.tracing
        if args.pure:
            rows.append(("Ingress route, this tree, pure-python",
                         _count(group, tree=_REPO, folder=folder, extra=(), port=free_port(), requests=args.requests,
                                workdir=workdir, name="ingress-pure", pure=True, flush=flush,
                                **plain)))  # type: ignore[arg-type]
        mode = _mode()
        rows.append((f"Ingress route, this tree{', ' + mode if args.pure else ''}",
                     _count(group, tree=_REPO, folder=folder, extra=(), port=port, requests=args.requests,
                            workdir=workdir, name="ingress", flush=flush, **plain)))  # type: ignore[arg-type]
        if args.tracing:
            # (mode, pure, that mode's row without tracing)
            modes = [("pure-python", True, rows[-2][1]), (mode, False, rows[-1][1])] if args.pure else [
                (mode, False, rows[-1][1])]
            for label, pure, off in modes:
                for ratio in args.ratios.split(","):  # 0: the cost of an unsampled request alone
                    with OtlpSink() as sink:
                        # No timed export in the window (callgrind would make it fire every few hundred requests):
                        # the flush at its end exports what the window made (see _flush_spans).
                        value = _count(group, tree=_REPO, folder=folder, port=free_port(), requests=args.requests,
                                       extra=("--otlp-endpoint", sink.url, "--trace-sample-ratio", ratio,
                                              "--otlp-export-interval", "100000"),
                                       workdir=workdir, name=f"tracing-{ratio}{'-pure' if pure else ''}", pure=pure,
                                       flush=True, **plain)  # type: ignore[arg-type]
                    rows.append((f"Ingress route, tracing {ratio}{', ' + label if args.pure else ''}", value))
                    tracing_rows.append((label, ratio, value, off))
                    print(f"tracing {ratio} ({label}): the OTLP sink got {sink.requests} export requests, "
                          f"{sink.bytes:,} bytes", file=sys.stderr)
        if args.observability:
            for label, extra in (("metrics off, access log off", ("--no-route-metrics",)),
                                 ("metrics on, access log on", ("--access-log",)),
                                 ("metrics off, access log on", ("--no-route-metrics", "--access-log"))):
                rows.append((f"Ingress route, {label}",
                             _count(group, tree=_REPO, folder=folder, extra=extra, port=free_port(),
                                    requests=args.requests, workdir=workdir,
                                    name="obs-" + label.replace(" ", "").replace(",", "-"),
                                    **plain)))  # type: ignore[arg-type]
        if not args.only_tracing:
            listener = free_port()
            rows.append(("HTTPRoute rule, this tree",
                         _count(group, tree=_REPO, folder=gateway, extra=("--gateway-port-offset", str(listener - 80)),
                                port=listener, host=manifests.GATEWAY_HOST, headers=manifests.GATEWAY_HEADERS,
                                requests=args.requests, workdir=workdir, name="httproute")))
        if args.security:
            secured = os.path.join(workdir, "secured")
            objs = manifests.objects(None, backend=backend)
            objs.ingresses[0]["metadata"]["annotations"] = SECURITY_ANNOTATIONS
            manifests.write_folder(secured, objs)
            rows.append(("Ingress route + source range, CORS, limits",
                         _count(group, tree=_REPO, folder=secured, extra=(), port=free_port(), requests=args.requests,
                                workdir=workdir, name="secured", host=manifests.MAIN_HOST,
                                headers=(("Origin", "https://app.example"),))))
        if args.auth:
            import bcrypt

            authed = os.path.join(workdir, "auth")
            manifests.write_folder(authed, manifests.objects(None, backend=backend))
            stored = bcrypt.hashpw(manifests.SECURE_USER[1].encode(), bcrypt.gensalt(10)).decode()
            manifests.write_json(os.path.join(authed, manifests.FILE_SECURE), manifests.secure_objects(stored))
            rows.append(("basic auth + CORS + source range",
                         _count(group, tree=_REPO, folder=authed, extra=(), port=free_port(), requests=args.requests,
                                workdir=workdir, name="auth", host=manifests.SECURE_HOST,
                                headers=manifests.secure_headers())))
        if args.policy:
            backend_arg = f"{backend[0][0]}:{backend[0][1]}"
            for label, policies in (("no policy", "off"), ("cluster policy", "cluster")):
                rows.append((f"hand-built route, {label}",
                             _count(group, tree=_REPO, folder="", extra=(), port=free_port(), requests=args.requests,
                                    workdir=workdir, name=f"policy-{policies}", host=manifests.MAIN_HOST, headers=(),
                                    command=("bench.policy_proxy", "--policies", policies, "--backend",
                                             backend_arg))))
    finally:
        group.close()
        if args.keep_dumps:
            os.makedirs(args.keep_dumps, exist_ok=True)
            for file in os.listdir(workdir):
                if file.startswith("callgrind."):
                    shutil.copy(os.path.join(workdir, file), args.keep_dumps)
        if baseline:
            subprocess.run(["git", "-C", _REPO, "worktree", "remove", "--force", baseline], capture_output=True,
                           timeout=60, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    reference = rows[0][1]
    kind = "GETs, a connection each" if args.close else "keep-alive GETs"
    print(f"\ninstructions per request (callgrind, {args.requests} {kind}, {_BODIES[args.body][1]})")
    for label, value in rows:
        print(f"  {label:<34} {value:>12,.0f}   {value / reference:.3f}x")
    for mode, ratio, value, off in tracing_rows:
        print(f"  tracing {ratio} vs off, {mode}: {100 * (value / off - 1):+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
