"""`python -m bench.grpc`: gRPC unary calls per second and p99 with a real grpcio client over h2c, same run:
straight to the pod, through pyngress, and through nginx (`grpc_pass`), and the ratio pyngress/nginx.

The pod is a grpcio server (grpc.aio, its own process) on 127.0.0.x answering `bench.Echo/Unary` with the
request's bytes. pyngress serves it from file mode: an Ingress with ingress-nginx's
``backend-protocol: GRPC`` (h2c to the pod), HTTP/2 with prior knowledge from the client on its plain port.
nginx (one worker) has ``listen ... http2`` and ``grpc_pass grpc://pod`` with upstream keepalive. The client
(``ghz`` is not packaged for Debian or PyPI) is a grpcio load loop in its own process: `--channels` channels
(each one HTTP/2 connection) and `--concurrency` calls in flight in all, for `--duration` seconds after a
short warm-up; every call has a deadline and must succeed. Rounds alternate the order of the targets; the
table shows the median round of each.

The client and the pod are Python too and share the 2 cores with the proxy under test, so the rows compare
whole-machine work per call; `direct` is the ceiling the client and pod allow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from bench import manifests, nginx
from bench.load import median
from bench.processes import ProcessGroup, StartError, free_port, start_pyngress, which

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Unary"
GRPC_HOST = "grpc.bench.local"
POD_ADDRESS = "127.0.0.9"
PAYLOAD = b"p" * 64
_READY = re.compile(r"bench-grpc-pod listening ([\d.]+):(\d+)")
_RESULT = "BENCHGRPC "


# ---------------------------------------------------------------- the pod (its own process)


async def _serve(host: str) -> None:
    import grpc

    async def unary(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary)}),))
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    print(f"bench-grpc-pod listening {host}:{port}", flush=True)
    await server.wait_for_termination()


# ---------------------------------------------------------------- the client (its own process)


async def _load(target: str, authority: str, *, channels: int, concurrency: int, duration: float,
                warmup: float, timeout: float) -> dict[str, Any]:
    """Unary calls from `concurrency` loops over `channels` channels; counts and latencies of the measured part."""
    import grpc

    options = [("grpc.default_authority", authority), ("grpc.use_local_subchannel_pool", 1)]
    opened = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    calls = [channel.unary_unary(METHOD) for channel in opened]
    latencies: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    end = start + duration

    async def worker(index: int) -> None:
        call = calls[index % channels]
        while True:
            began = loop.time()
            if began >= end or len(errors) > 10:
                return
            try:
                answer = await call(PAYLOAD, timeout=timeout)
            except grpc.RpcError as error:
                errors.append(f"{error.code()}: {error.details()}")  # type: ignore[attr-defined]
                continue
            done = loop.time()
            if answer != PAYLOAD:
                errors.append("wrong answer")
            elif began >= start and done <= end:
                latencies.append(done - began)

    try:
        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(concurrency))),
                               timeout=warmup + duration + timeout + 10)
    finally:
        for channel in opened:
            await channel.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {"calls": len(latencies), "rps": len(latencies) / duration, "p99_ms": p99 * 1000,
            "p50_ms": (latencies[len(latencies) // 2] * 1000) if latencies else 0.0, "errors": errors[:5],
            "failed": len(errors)}


def run_client(target: str, *, channels: int, concurrency: int, duration: float, warmup: float = 0.5,
               timeout: float = 5.0) -> dict[str, Any]:
    """One measurement in a fresh client process (so its grpcio threads and loop are not the bench's)."""
    argv = [sys.executable, "-m", "bench.grpc", "--client", target, "--channels", str(channels),
            "--concurrency", str(concurrency), "--duration", str(duration), "--warmup", str(warmup)]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=duration + warmup + 60,
                          check=False)
    for line in done.stdout.splitlines():
        if line.startswith(_RESULT):
            result: dict[str, Any] = json.loads(line[len(_RESULT):])
            return result
    raise RuntimeError(f"grpc client failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


# ---------------------------------------------------------------- the proxies


def grpc_objects(pod: tuple[str, int]) -> manifests.ObjectSet:
    """The bench's objects plus GRPC_HOST: an Ingress with backend-protocol GRPC to the pod's Service."""
    objs = manifests.objects(None, backend=[pod])
    ingress = manifests.ingress("grpc", [(GRPC_HOST, [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": manifests.MAIN_SERVICE, "port": {"name": manifests.PORT_NAME}}}}])])
    ingress["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}
    objs.ingresses.append(ingress)
    return objs


def nginx_grpc_config(root: str, *, port: int, pod: tuple[str, int]) -> nginx.NginxLayout:
    """nginx as the gRPC reference: h2c with prior knowledge on `port`, grpc_pass to the pod, kept-alive."""
    layout = nginx.proxy_config(root, port=port, backend_port=pod[1])
    with open(layout.conf, encoding="utf-8") as source:
        text = source.read()
    text = text.replace(f"server 127.0.0.1:{pod[1]};", f"server {pod[0]}:{pod[1]};")
    # Debian 12's nginx 1.22 has no `http2 on`; the listen parameter is the same switch. keepalive_requests:
    # the client's channels stay on one connection for the whole run (as with pyngress).
    text = text.replace(f"listen 127.0.0.1:{port};",
                        f"listen 127.0.0.1:{port} http2;\n        keepalive_requests 100000000;")
    text = re.sub(r"proxy_pass http://backend;\n\s*proxy_http_version 1.1;\n\s*proxy_set_header Connection \"\";",
                  "grpc_pass grpc://backend;", text)
    if "grpc_pass" not in text:
        raise StartError("could not make the nginx gRPC config")
    with open(layout.conf, "w", encoding="utf-8") as out:
        out.write(text)
    return layout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc", description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=4, help="client channels (HTTP/2 connections)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight over all channels")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per target and round")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of calls before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median)")
    parser.add_argument("--pyngress-arg", action="append", default=[], help="extra pyngress flag (repeatable)")
    parser.add_argument("--no-nginx", action="store_true", help="leave nginx out even when installed")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--serve", metavar="HOST", help=argparse.SUPPRESS)  # the pod process
    parser.add_argument("--client", metavar="TARGET", help=argparse.SUPPRESS)  # one client measurement
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve))
        return 0
    if args.client:
        authority = GRPC_HOST
        result = asyncio.run(_load(args.client, authority, channels=args.channels, concurrency=args.concurrency,
                                   duration=args.duration, warmup=args.warmup, timeout=5.0))
        print(_RESULT + json.dumps(result), flush=True)
        return 0 if not result["failed"] and result["calls"] else 1

    nginx_path = None if args.no_nginx else which("nginx")
    workdir = tempfile.mkdtemp(prefix="pyngress-bench-grpc-")
    os.chmod(workdir, 0o755)
    group = ProcessGroup(workdir)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        pod_process = group.start("grpc-pod", [sys.executable, "-m", "bench.grpc", "--serve", POD_ADDRESS], cwd=repo)
        match = pod_process.wait_line(_READY, timeout=30)
        pod = (match[1], int(match[2]))
        folder = os.path.join(workdir, "manifests")
        manifests.write_folder(folder, grpc_objects(pod))
        _, address, _ = start_pyngress(group, manifests=folder, extra=args.pyngress_arg)
        targets = {"direct": f"{pod[0]}:{pod[1]}", "pyngress": f"127.0.0.1:{address.http_port}"}
        if nginx_path is not None:
            port = free_port()
            layout = nginx_grpc_config(os.path.join(workdir, "nginx"), port=port, pod=pod)
            nginx.check_config(nginx_path, layout)
            nginx.start(group, nginx_path, layout, name="nginx-grpc", port=port)
            targets["nginx"] = f"127.0.0.1:{port}"
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for index in range(args.rounds):
            order = list(targets) if index % 2 == 0 else list(reversed(targets))
            for name in order:
                result = run_client(targets[name], channels=args.channels, concurrency=args.concurrency,
                                    duration=args.duration, warmup=args.warmup)
                if result["failed"] or not result["calls"]:
                    raise RuntimeError(f"{name}: {result['failed']} failed calls: {result['errors']}")
                results[name].append(result)
                print(f"round {index + 1} {name:8}: {result['rps']:>8,.0f} calls/s  p99 {result['p99_ms']:.2f} ms",
                      flush=True)
    except (StartError, RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"bench.grpc: {error}", file=sys.stderr)
        return 1
    finally:
        group.close()
    print(f"\ngrpcio unary over h2c, {args.channels} channels x {args.concurrency} calls in flight, median of "
          f"{args.rounds} rounds of {args.duration:g}s")
    summary: dict[str, dict[str, float]] = {}
    for name, rounds in results.items():
        rps = median([r["rps"] for r in rounds])
        p99 = median([r["p99_ms"] for r in rounds])
        summary[name] = {"rps": rps, "p99_ms": p99}
        print(f"  {name:9} {rps:>9,.0f} calls/s   p99 {p99:7.2f} ms   "
              f"(rounds: {', '.join(f'{rate:,.0f}' for rate in (r['rps'] for r in rounds))})")
    if "nginx" in summary:
        print(f"  ratio pyngress/nginx: {summary['pyngress']['rps'] / summary['nginx']['rps']:.2f} calls/s, "
              f"{summary['pyngress']['p99_ms'] / max(summary['nginx']['p99_ms'], 1e-9):.2f} p99")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"summary": summary, "rounds": results}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
