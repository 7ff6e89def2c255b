"""`python -m bench.hotpath_profile`: where a compiled pyngress spends its CPU on the plain request path (issue #14).

One pyngress (compiled unless `--pure`) in front of the bench's nginx backend (100-byte answers), `wrk -t1 -c64`
keep-alive load for `--duration` seconds under `perf record`; prints the CPU per request (process CPU seconds /
requests), the shares by shared object (the compiled modules, the interpreter, uvloop, httptools, the kernel,
libc) and the top symbols, and writes them to bench/results/hotpath-profile-<mode>-<time>.txt.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from bench import manifests, nginx
from bench.load import Request, run_wrk
from bench.processes import ProcessGroup, free_port, start_pyngress, which
from proxy.extensions import COMPILED

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$")
_COMPILED_NAMES = frozenset(name.rsplit(".", 1)[-1] for name in COMPILED)


def category(dso: str) -> str:
    """The part of the process a perf shared-object name belongs to."""
    stem = dso.split(".", 1)[0]
    if stem in _COMPILED_NAMES:
        return f"pyngress compiled: {stem}"
    if "libpython" in dso or dso.startswith("python"):
        return "CPython interpreter (uncompiled .py, asyncio, stdlib)"
    if stem == "loop":
        return "uvloop"
    if stem == "parser":
        return "httptools (llhttp)"
    if "kernel" in dso:
        return "kernel (system calls, TCP)"
    if dso.startswith(("libc.", "ld-linux")):
        return "libc (malloc, memcpy)"
    return f"other: {dso}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--pure", action="store_true", help="PYNGRESS_NO_EXTENSIONS=1 (pure Python)")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    perf, wrk, nginx_path = which("perf"), which("wrk"), which("nginx")
    if perf is None or wrk is None or nginx_path is None:
        print("bench.hotpath_profile: needs perf, wrk and nginx", file=sys.stderr)
        return 2
    mode = "pure-python" if args.pure else "compiled"
    workdir = tempfile.mkdtemp(prefix="pyngress-hotpath-")
    os.chmod(workdir, 0o755)
    group = ProcessGroup(workdir)
    try:
        port = free_port()
        layout = nginx.backend_config(os.path.join(workdir, "nginx"), ports=[port])
        nginx.start(group, nginx_path, layout, name="backend", port=port)
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", port)]))
        process, address, _ = start_pyngress(group, manifests=folder, name=f"pyngress-{mode}",
                                             environ={"PYNGRESS_NO_EXTENSIONS": "1" if args.pure else ""})
        url = f"http://{address.host}:{address.http_port}/"
        request = Request(path="/", host=manifests.MAIN_HOST, payload_bytes=100)
        run_wrk(wrk, url=url, request=request, duration=2, workdir=workdir)  # warm-up
        data = os.path.join(workdir, "perf.data")
        recorder = subprocess.Popen([perf, "record", "-q", "-F", "1999", "-p", str(process.pid), "-o", data],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu_before = process.cpu_seconds() or 0.0
        try:
            result = run_wrk(wrk, url=url, request=request, duration=args.duration, workdir=workdir)
        finally:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(timeout=120)
        cpu = (process.cpu_seconds() or 0.0) - cpu_before
        report = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                                 "--percent-limit", "0.01"], capture_output=True, text=True, timeout=600, check=False)
    finally:
        group.close()
    per_request = 1e6 * cpu / result.requests if result.requests else float("nan")
    shares: collections.Counter[str] = collections.Counter()
    top: list[str] = []
    for line in report.stdout.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        percent, dso, symbol = float(match[1]), match[2], match[3].strip()
        shares[category(dso)] += percent
        if len(top) < args.top:
            top.append(f"  {percent:5.2f}%  {dso}  {symbol}")
    lines = [f"pyngress {mode}, plain Ingress route, 100-byte answers, wrk -t1 -c64 -d{args.duration}s keep-alive",
             f"{result.requests:,} requests, {result.rps:,.0f} req/s, process CPU {cpu:.2f} s = {per_request:.1f} µs "
             f"per request (with perf recording); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
             "", "CPU by part (perf samples):"]
    lines += [f"  {share:5.1f}%  {1e-2 * share * per_request:6.1f} µs/request  {name}"
              for name, share in shares.most_common()]
    lines += ["", f"top {args.top} symbols (self):", *top]
    text = "\n".join(lines)
    print(text)
    path = os.path.join(_REPO, "bench", "results",
                        f"hotpath-profile-{mode}-{datetime.datetime.now():%Y%m%d-%H%M%S}.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text + "\n")
    print(f"\nbench.hotpath_profile: written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
