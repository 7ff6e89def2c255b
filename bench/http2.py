"""`python -m bench.http2`: HTTP/2 requests per second, pyngress next to nginx, same backend, same run.

The client is `h2load` (Debian's nghttp2-client: C, so the load is not the Python side of the comparison),
`--clients` connections x `--streams` concurrent streams each (10 x 10 by default, issue 13), h2c with prior
knowledge on each proxy's plain port: pyngress in file mode (the bench's usual objects, access log off,
HTTP/2 on by default) and nginx with one worker and ``listen ... http2`` (Debian 12's nginx 1.22 has no
``http2 on``; the listen parameter is the same switch), both in front of the same backend (Debian's nginx,
or bench/backend.py without it) speaking HTTP/1.1 with keep-alive. Rounds alternate between the two (order
flipped each round), median of `--rounds`; every response must be a 2xx.

Prints a table and the ratio pyngress/nginx.

`--cpu N`: instead, pyngress's CPU time (user + system, from /proc) per request while h2load sends N requests
(same 10 x 10, three times, median): the cost of a request, which the machine's other load moves far less than
requests per second (use it to compare two trees on a busy machine).

`--memory`: instead, pyngress's RSS while `--memory-connections` x 100 streams each download 1 MiB through
a client that reads nothing (its windows stay closed, the issue's slow-reader case): flow control must keep
what the proxy holds bounded (one upstream read per stream), not the bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from bench import manifests, nginx
from bench.load import median
from bench.processes import (
    ProcessGroup,
    StartError,
    free_port,
    read_status_kib,
    start_pyngress,
    start_python_backend,
    which,
)

_FINISHED = re.compile(r"finished in ([\d.]+)s, ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed")
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def nginx_h2_config(root: str, *, port: int, backend_port: int) -> nginx.NginxLayout:
    """The reference proxy of bench/nginx.py with HTTP/2 (h2c prior knowledge) on its port."""
    layout = nginx.proxy_config(root, port=port, backend_port=backend_port)
    with open(layout.conf, encoding="utf-8") as source:
        text = source.read()
    # nginx ends an HTTP/2 connection after keepalive_requests (1000) streams; h2load's duration mode does not
    # reconnect, and pyngress sets no such limit on HTTP/2 connections.
    text = text.replace(f"listen 127.0.0.1:{port};",
                        f"listen 127.0.0.1:{port} http2;\n        keepalive_requests 100000000;")
    with open(layout.conf, "w", encoding="utf-8") as out:
        out.write(text)
    return layout


def h2load(program: str, port: int, *, clients: int, streams: int, duration: float) -> float:
    """Requests per second of one h2load run (h2c prior knowledge); raises if any request failed."""
    argv = [program, "-c", str(clients), "-m", str(streams), "-D", str(max(1, round(duration))), "--warm-up-time", "1",
            "-H", f":authority: {manifests.MAIN_HOST}", f"http://127.0.0.1:{port}/"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    out = result.stdout
    finished, requests, status = _FINISHED.search(out), _REQUESTS.search(out), _STATUS.search(out)
    if result.returncode or finished is None or requests is None or status is None:
        raise RuntimeError(f"h2load failed ({result.returncode}):\n{out[-2000:]}\n{result.stderr[-2000:]}")
    if int(requests[4]) or int(status[2]) or int(status[3]) or int(status[4]) or not int(status[1]):
        raise RuntimeError(f"h2load saw failures or non-2xx answers:\n{out[-2000:]}")
    return float(finished[2])


async def _slow_streams(port: int, *, connections: int, streams: int, path: str, timeout: float = 60.0) -> int:
    """Open `connections` x `streams` downloads of `path` and read none of them past the first window; returns
    once every stream got data (the proxy then holds what flow control lets it). Returns the bytes received."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import DataReceived

    received = 0
    started: set[tuple[int, int]] = set()
    writers = []
    readers = []
    for index in range(connections):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        for _ in range(streams):
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(stream_id, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                          (":authority", manifests.MAIN_HOST)], end_stream=True)
        writer.write(conn.data_to_send())
        writers.append(writer)
        readers.append((index, reader, conn))

    async def pump(index: int, reader: asyncio.StreamReader, conn: H2Connection) -> None:
        nonlocal received
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, DataReceived):
                    # The connection's window stays open (other streams go on), the stream's does not.
                    conn.increment_flow_control_window(event.flow_controlled_length)
                    received += len(event.data)
                    started.add((index, event.stream_id))
            writers[index].write(conn.data_to_send())

    tasks = [asyncio.ensure_future(pump(*item)) for item in readers]
    try:
        async with asyncio.timeout(timeout):
            while len(started) < connections * streams:
                await asyncio.sleep(0.05)  # polled with the deadline above
            await asyncio.sleep(1.0)  # what is queued settles
    finally:
        for task in tasks:
            task.cancel()
        for writer in writers:
            writer.close()
    return received


def memory(args: argparse.Namespace, nginx_path: str | None) -> int:
    """RSS of pyngress with many slow-reader streams of 1 MiB downloads (see the module docstring)."""
    if nginx_path is None:
        print("bench.http2 --memory: needs nginx as the backend (a 1 MiB file)", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="pyngress-bench-h2-mem-")
    os.chmod(workdir, 0o755)  # nginx's worker (nobody) reads the file below it
    group = ProcessGroup(workdir)
    try:
        backend_port = free_port()
        layout = nginx.backend_config(os.path.join(workdir, "backend"), ports=[backend_port])
        body = os.path.join(layout.prefix, "www", "64k")
        with open(body, "wb") as out:  # served as /64k: 1 MiB here
            out.write(b"m" * (1024 * 1024))
        os.chmod(body, 0o644)  # read by nginx's worker (nobody)
        nginx.check_config(nginx_path, layout)
        nginx.start(group, nginx_path, layout, name="backend", port=backend_port)
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", backend_port)]))
        process, address, _ = start_pyngress(group, manifests=folder, extra=args.pyngress_arg)
        before = read_status_kib(process.pid) or 0
        streams = args.memory_connections * 100
        received = asyncio.run(_slow_streams(address.http_port, connections=args.memory_connections, streams=100,
                                             path="/64k"))
        during = read_status_kib(process.pid) or 0
    finally:
        group.close()
    print(f"{streams} streams of 1 MiB ({streams} MiB of bodies), client reading nothing past its windows "
          f"({received / 1048576:.1f} MiB received)")
    print(f"  pyngress RSS: {before / 1024:.1f} MiB before, {during / 1024:.1f} MiB with the streams open "
          f"(+{(during - before) / 1024:.1f} MiB, {(during - before) / streams:.0f} KiB per stream)")
    return 0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu(args: argparse.Namespace, program: str, nginx_path: str) -> int:
    """pyngress's CPU microseconds per request (see the module docstring)."""
    workdir = tempfile.mkdtemp(prefix="pyngress-bench-h2-cpu-")
    group = ProcessGroup(workdir)
    costs = []
    try:
        backend_port = free_port()
        layout = nginx.backend_config(os.path.join(workdir, "backend"), ports=[backend_port])
        nginx.check_config(nginx_path, layout)
        nginx.start(group, nginx_path, layout, name="backend", port=backend_port)
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", backend_port)]))
        process, address, _ = start_pyngress(group, manifests=folder, extra=args.pyngress_arg)
        argv = [program, "-c", str(args.clients), "-m", str(args.streams), "-H", f":authority: {manifests.MAIN_HOST}",
                f"http://127.0.0.1:{address.http_port}/"]
        for index, count in enumerate((max(1000, args.cpu // 4), args.cpu, args.cpu, args.cpu)):  # first: warm-up
            before = _cpu_seconds(process.pid)
            result = subprocess.run([*argv, "-n", str(count)], capture_output=True, text=True, timeout=600,
                                    check=False)
            found = _REQUESTS.search(result.stdout)
            if result.returncode or found is None or int(found[3]) != count:
                raise RuntimeError(f"h2load failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            if index:
                costs.append((_cpu_seconds(process.pid) - before) / count * 1e6)
    except (StartError, RuntimeError) as error:
        print(f"bench.http2: {error}", file=sys.stderr)
        return 1
    finally:
        group.close()
    print(f"pyngress CPU per request, h2load -c {args.clients} -m {args.streams} -n {args.cpu}, h2c, backend nginx: "
          f"{median(costs):.0f} us (runs: {', '.join(f'{c:.0f}' for c in costs)})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http2", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10, help="h2load connections")
    parser.add_argument("--streams", type=int, default=10, help="concurrent streams per connection")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median)")
    parser.add_argument("--pyngress-arg", action="append", default=[], help="extra pyngress flag (repeatable)")
    parser.add_argument("--cpu", type=int, default=0, help="measure CPU per request over this many requests instead")
    parser.add_argument("--memory", action="store_true", help="measure RSS with slow-reader streams instead")
    parser.add_argument("--memory-connections", type=int, default=10, help="connections of 100 streams (--memory)")
    args = parser.parse_args(argv)
    if args.memory:
        return memory(args, which("nginx"))
    program = which("h2load")
    if program is None:
        print("bench.http2: h2load not found (apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    nginx_path = which("nginx")
    if args.cpu:
        if nginx_path is None:
            print("bench.http2 --cpu: needs nginx as the backend", file=sys.stderr)
            return 2
        return cpu(args, program, nginx_path)
    workdir = tempfile.mkdtemp(prefix="pyngress-bench-h2-")
    group = ProcessGroup(workdir)
    try:
        if nginx_path is not None:
            backend_port = free_port()
            layout = nginx.backend_config(os.path.join(workdir, "backend"), ports=[backend_port])
            nginx.check_config(nginx_path, layout)
            nginx.start(group, nginx_path, layout, name="backend", port=backend_port)
            backend = "nginx"
        else:
            [backend_port] = start_python_backend(group)
            backend = "python"
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, manifests.objects(None, backend=[("127.0.0.1", backend_port)]))
        _, address, _ = start_pyngress(group, manifests=folder, extra=args.pyngress_arg)
        targets = {"pyngress": address.http_port}
        if nginx_path is not None:
            port = free_port()
            layout = nginx_h2_config(os.path.join(workdir, "nginx"), port=port, backend_port=backend_port)
            nginx.check_config(nginx_path, layout)
            nginx.start(group, nginx_path, layout, name="nginx-h2", port=port)
            targets["nginx"] = port
        results: dict[str, list[float]] = {name: [] for name in targets}
        for index in range(args.rounds):
            order = list(targets) if index % 2 == 0 else list(reversed(targets))
            for name in order:
                rate = h2load(program, targets[name], clients=args.clients, streams=args.streams,
                              duration=args.duration)
                results[name].append(rate)
                print(f"round {index + 1} {name}: {rate:,.0f} req/s", flush=True)
    except (StartError, RuntimeError) as error:
        print(f"bench.http2: {error}", file=sys.stderr)
        return 1
    finally:
        group.close()
    print(f"\nh2load -c {args.clients} -m {args.streams}, h2c, backend {backend}, median of {args.rounds} rounds "
          f"of {args.duration:g}s")
    for name, rates in results.items():
        print(f"  {name:9} {median(rates):>10,.0f} req/s   (rounds: {', '.join(f'{r:,.0f}' for r in rates)})")
    if "nginx" in results:
        print(f"  ratio pyngress/nginx: {median(results['pyngress']) / median(results['nginx']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
