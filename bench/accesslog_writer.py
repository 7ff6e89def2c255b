"""The access log's writers side by side: CPU per line of a saturated loop writing lines into a pipe.

    python -m bench.accesslog_writer [--seconds 3] [--rounds 5] [--work 60]

Each round runs a child process per writer (the loop writer, and the thread writer the log uses for files, here
forced onto the pipe: the writer of the pipe before obslog), alternating. The child's uvloop loop does `--work`
iterations of a Python loop (a stand-in for a request's own work) and one `AccessLog.add` per line as fast as
it can, for `--seconds`, into a pipe that `cat` drains to /dev/null; it reports the process's CPU time per line
(user + system, every thread: a measure that other load on the machine moves less than lines per second) and
its context switches per line. Compiled when the tree is (scripts/build-inplace).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from statistics import median

_ROUTE = ("bench", "bench-0", "bench.local", "/", "backend", "Ingress")
_REQUEST_ID = b"3f2a9c0d5e6b7a8190a1b2c3d4e5f607"


def _work(count: int) -> int:
    total = 0
    for index in range(count):
        total += index
    return total


async def _child(writer: str, seconds: float, work: int) -> None:
    from proxy.accesslog import AccessLog, address_text, route_fields

    reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert reader.stdin is not None
    log = AccessLog(reader.stdin.fileno(), loop=asyncio.get_running_loop() if writer == "loop" else None)
    route, upstream = route_fields(_ROUTE), address_text("127.0.0.1", 8081)
    add = log.add
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    lines = 0
    while time.monotonic() - start < seconds:
        for _ in range(100):
            _work(work)
            add(time.time(), _REQUEST_ID, b"127.0.0.1", b"GET", b"bench.local", b"/small", b"HTTP/1.1", 200, 70, 177,
                0.000421, 0.000301, upstream, route, None, 0, "", None, -1)
        lines += 100
        await asyncio.sleep(0)  # the loop's timers and writers run
    log.close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"{writer} {lines} {cpu:.6f} {after.ru_nvcsw - before.ru_nvcsw} {after.ru_nivcsw - before.ru_nivcsw} "
          f"{log.written} {log.dropped}", flush=True)
    reader.stdin.close()
    reader.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accesslog_writer", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each child's run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each writer once per round, alternating")
    parser.add_argument("--work", type=int, default=60, help="iterations of the stand-in work per line")
    parser.add_argument("--child", choices=("loop", "thread"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import uvloop

        uvloop.install()
        asyncio.run(_child(args.child, args.seconds, args.work))
        return 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cpu: dict[str, list[float]] = {"thread": [], "loop": []}
    for index in range(args.rounds):
        for writer in ("thread", "loop") if index % 2 == 0 else ("loop", "thread"):
            result = subprocess.run([sys.executable, "-m", "bench.accesslog_writer", "--child", writer,
                                     "--seconds", str(args.seconds), "--work", str(args.work)],
                                    capture_output=True, text=True, cwd=root, timeout=args.seconds + 60, check=True)
            _, lines, seconds, voluntary, involuntary, written, dropped = result.stdout.split()
            count = int(lines)
            cpu[writer].append(float(seconds) / count * 1e6)
            print(f"round {index + 1} {writer:6s}: {count / args.seconds:9,.0f} lines/s, CPU "
                  f"{cpu[writer][-1]:5.2f} µs/line, context switches {int(voluntary) / count:.4f} voluntary "
                  f"{int(involuntary) / count:.4f} involuntary per line (written {written}, dropped {dropped})",
                  flush=True)
    print(f"median CPU per line: thread {median(cpu['thread']):.2f} µs, loop {median(cpu['loop']):.2f} µs "
          f"(loop / thread {median(cpu['loop']) / median(cpu['thread']):.3f}); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
