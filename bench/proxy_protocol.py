"""`python -m bench.proxy_protocol`: what `--proxy-protocol` costs a connection, next to a plain listener.

Two pyngress processes in file mode on the same backend (bench/backend.py), one plain and one with
`--proxy-protocol`. The load is short connections: connect, (the PROXY v1 line,) one keep-alive-less GET,
read the answer, close; `--clients` of them at once for `--duration` seconds, rounds alternating between
the two servers. Reported: connections per second and, the fairer figure on a shared box where the Python
client may be the bottleneck, connections per second of server CPU (from /proc). A PROXY listener pays per
connection for its own accept, the header read (a readiness callback, recv calls, a timer) and
`loop.connect_accepted_socket`; requests on an established connection cost what they cost on a plain one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence

from bench import manifests
from bench.processes import ProcessGroup, cpu_seconds, start_pyngress, start_python_backend

REQUEST = f"GET / HTTP/1.1\r\nHost: {manifests.MAIN_HOST}\r\nConnection: close\r\n\r\n".encode()
HEADER = b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 80\r\n"


async def _one(port: int, header: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(header + REQUEST)
        answer = await reader.read()
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer {answer[:60]!r}")
    finally:
        writer.close()


async def _load(port: int, header: bytes, *, clients: int, duration: float) -> int:
    done = 0
    deadline = time.monotonic() + duration

    async def client() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await _one(port, header)
            done += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy_protocol", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="connections in flight at once")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-pp-") as workdir, ProcessGroup(workdir) as group:
        [backend] = start_python_backend(group)
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", backend)]))
        servers = {}
        for name, extra in (("plain", ()), ("proxy-protocol", ("--proxy-protocol",))):
            process, address, _ = start_pyngress(group, manifests=folder, name=name, extra=extra)
            servers[name] = (process, address.http_port, HEADER if extra else b"")
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for index in range(args.rounds):
            order = list(servers) if index % 2 == 0 else list(reversed(servers))
            for name in order:
                process, port, header = servers[name]
                asyncio.run(_load(port, header, clients=args.clients, duration=0.5))  # warm-up
                cpu = cpu_seconds(process.pid) or 0.0
                started = time.monotonic()
                count = asyncio.run(_load(port, header, clients=args.clients, duration=args.duration))
                elapsed = time.monotonic() - started
                used = (cpu_seconds(process.pid) or 0.0) - cpu
                results[name].append((count / elapsed, count / used if used > 0 else float("nan")))
    print(f"short connections (one request each), {args.clients} clients, median of {args.rounds} rounds")
    base_rate = statistics.median(r for r, _ in results["plain"])
    base_cpu = statistics.median(c for _, c in results["plain"])
    for name, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        per_cpu = statistics.median(c for _, c in rows)
        print(f"  {name:16s} {rate:8.0f} conn/s ({rate / base_rate:.3f}x)   "
              f"{per_cpu:8.0f} conn per server CPU second ({per_cpu / base_cpu:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
