"""HTTP/2 to pods, in one process: keep-alive HTTP/1.1 requests per second through the proxy to an HTTP/1.1 pod, to
an h2c pod, and gRPC unary calls (HTTP/1.1 client, TE: trailers) to a grpcio server, same run (outside the
suite's pass/fail).

    python -m bench.h2_upstream [--requests 2000] [--connections 8] [--rounds 2]
    python -m bench.h2_upstream --memory 1000 [--size 1048576]

`--memory N`: N clients that never read each download `--size` bytes from the h2c pod (N streams on one pod
connection); prints the process's RSS growth once nothing moves any more (flow control working: what the proxy holds
is bounded by the stream window, not the download size; the kernel's socket buffers take some of each
download too, so make `--size` larger than a few MiB to see the pod held back). The clients are plain sockets
that never read (their kernel buffers hold what they received) and the pod serves a view of one buffer, so the
growth is the proxy's (plus the pod's per-stream state).

`h1` is the tests' aiohttp echo pod, `h2c` the tests' h2 echo pod (tests/server/h2_pods.py, the `h2` library on
asyncio), `grpc` a grpcio server in its own threads. Pods, clients and the proxy share the machine (the pods and
clients share the proxy's loop, but grpcio), so the rows compare whole-machine work per request, not the proxy
alone; `--connections` client connections run at once (the h2c pod sees them multiplexed on one connection).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import uvloop

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / "server")]

from h2_pods import SERVICE, GrpcPod, H2Pod, frame, read_grpc_answer  # noqa: E402
from proxy.routing.policies import HTTP2  # noqa: E402
from proxy.settings import Settings  # noqa: E402
from server_harness import Pod, Proxy, Rule, cluster, connect, encode_request, read_response  # noqa: E402


def _grpc_request() -> bytes:
    body = frame(b"ping")
    return (f"POST /{SERVICE}/Unary HTTP/1.1\r\nHost: grpc.x\r\nContent-Type: application/grpc\r\nTE: trailers\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _client(port: int, data: bytes, count: int, grpc: bool) -> None:
    reader, writer = await connect(port)
    try:
        for _ in range(count):
            writer.write(data)
            if grpc:
                answer = await read_grpc_answer(reader)
                if answer.grpc_status != "0":
                    raise RuntimeError(f"grpc-status {answer.grpc_status}")
            elif (await read_response(reader)).status != 200:
                raise RuntimeError("not 200")
    finally:
        writer.close()


async def _rate(port: int, host: str, count: int, connections: int) -> float:
    grpc = host == "grpc.x"
    data = _grpc_request() if grpc else encode_request("/echo", host=host)
    await asyncio.gather(*(_client(port, data, 50, grpc) for _ in range(connections)))  # warm up
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, data, count // connections, grpc) for _ in range(connections)))
    return (count // connections) * connections / (time.perf_counter() - start)


async def main(requests: int, connections: int, rounds: int) -> None:
    proxy = Proxy(Settings(bind="127.0.0.1", http_port=0, access_log=False))
    await proxy.server.start()
    h1 = await Pod("h1", "127.0.0.41").start()
    h2c = await H2Pod("127.0.0.42").start()
    grpc_pod = GrpcPod("127.0.0.43").start()
    try:
        proxy.publish([Rule("h1.x", "/", "b/h1:80"), Rule("h2c.x", "/", "b/h2c:80"), Rule("grpc.x", "/", "b/grpc:80")],
                      [cluster("b/h1:80", [h1.endpoint]), cluster("b/h2c:80", [(h2c.host, h2c.port)], protocol=HTTP2),
                       cluster("b/grpc:80", [(grpc_pod.host, grpc_pod.port)], protocol=HTTP2)])
        rows: dict[str, list[float]] = {"h1.x": [], "h2c.x": [], "grpc.x": []}
        for _ in range(rounds):
            for host in rows:
                rows[host].append(await _rate(proxy.port, host, requests, connections))
        print(f"{'route':<8}{'req/s (best of ' + str(rounds) + ')':>22}{'vs h1':>10}")
        best_h1 = max(rows["h1.x"])
        for host, rates in rows.items():
            best = max(rates)
            print(f"{host[:-2]:<8}{best:>22.0f}{best / best_h1:>10.2f}")
        print(f"h2c pod: {h2c.connections} connection(s) for {h2c.requests} requests, at most {h2c.most_streams} "
              "streams at once")
    finally:
        grpc_pod.stop()
        await h2c.stop()
        h1.release.set()
        await h1.stop()
        await proxy.close()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def memory(count: int, size: int) -> None:
    import gc
    import socket

    proxy = Proxy(Settings(bind="127.0.0.1", http_port=0, access_log=False))
    await proxy.server.start()
    pod = await H2Pod("127.0.0.42", max_streams=count + 10).start()
    loop = asyncio.get_running_loop()
    sockets: list[socket.socket] = []
    try:
        proxy.publish([Rule("", "/", "b/h2c:80")], [cluster("b/h2c:80", [(pod.host, pod.port)], protocol=HTTP2)])
        gc.collect()
        before = _rss_kib()
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", proxy.port))
            await loop.sock_sendall(sock, b"GET /big?n=%d HTTP/1.1\r\nHost: m\r\n\r\n" % size)
            sockets.append(sock)
        async with asyncio.timeout(600):
            while pod.requests < count:
                await asyncio.sleep(0.1)
            held = -1
            while held != pod.held_back:  # settled: nothing moves any more (a measurement, not a test)
                held = pod.held_back
                await asyncio.sleep(1.0)
        gc.collect()
        after = _rss_kib()
        print(f"{count} streams of {size} bytes, none read: RSS +{(after - before) / 1024:.1f} MiB "
              f"({(after - before) / count:.0f} KiB per stream); the pod holds back {held / 2**20:.1f} MiB "
              f"({held / count / 1024:.0f} KiB per stream); {pod.connections} pod connection(s)")
    finally:
        for sock in sockets:
            sock.close()
        await pod.stop()
        await proxy.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory", type=int, default=0, help="streams of the memory check (0: the rate check)")
    parser.add_argument("--size", type=int, default=1 << 20, help="bytes per download of the memory check")
    options = parser.parse_args()
    if options.memory:
        uvloop.run(memory(options.memory, options.size))
    else:
        uvloop.run(main(options.requests, options.connections, options.rounds))
