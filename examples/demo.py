"""Try pyngress on one machine, no cluster needed.

Starts three demo "pods" (small echo servers on the loopback addresses the manifests in
examples/manifests/ list: 127.0.0.2:9001, 127.0.0.3:9001, 127.0.0.2:9002), then runs pyngress
on those manifests and on examples/gateway/ (a Gateway API Gateway and HTTPRoute on the same
Services) in the foreground and prints curl lines to try. Ctrl-C stops everything.

    python3 examples/demo.py                      # proxy on 127.0.0.1:8080, admin on :10254
    python3 examples/demo.py --http-port 9080     # extra arguments go to pyngress: all of it on 9080

The Gateway's listener (port 80 in examples/gateway/) is served at 80 + --gateway-port-offset, a mapping of the
Gateway's own port that --http-port does not change; by default that is 8080, the Ingress listener's port, so the
demo serves both from one port. With --http-port N (N >= 80) and no --gateway-port-offset of your own, the demo
passes --gateway-port-offset N - 80, so that the Gateway's routes move with the Ingress ones.

Edit a file in examples/manifests/ while it runs: the change is live at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MANIFESTS = HERE / "manifests"
GATEWAY = HERE / "gateway"
# The Gateway listener's port in examples/gateway/ (served at 80 + --gateway-port-offset).
GATEWAY_LISTENER_PORT = 80
# (pod name, address, port): must match the EndpointSlices in examples/manifests/.
PODS = (("echo-1", "127.0.0.2", 9001), ("echo-2", "127.0.0.3", 9001), ("hello-1", "127.0.0.2", 9002))


def echo_app(pod: str, address: str, port: int) -> web.Application:
    """Answers every request with JSON saying which pod answered and what it received."""

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({
            "pod": pod,
            "address": f"{address}:{port}",
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": dict(request.headers),
            "body_bytes": len(body),
        }, dumps=_pretty)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2) + "\n"


async def start_pods() -> list[web.AppRunner]:
    runners = []
    for pod, address, port in PODS:
        runner = web.AppRunner(echo_app(pod, address, port), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, address, port).start()
        except OSError as error:
            await runner.cleanup()
            for started in runners:
                await started.cleanup()
            raise SystemExit(f"cannot start demo pod {pod} on {address}:{port}: {error}") from None
        runners.append(runner)
        print(f"demo pod {pod} listening on {address}:{port}", flush=True)
    return runners


def curl_lines(http: str, admin: str, gateway: str) -> str:
    return "\n".join([
        "",
        "Try:",
        f"  curl -H 'Host: demo.local' http://{http}/echo          # echo-1 and echo-2 take turns",
        f"  curl -H 'Host: demo.local' http://{http}/anything      # the hello pod",
        f"  curl http://{http}/api/v1/status                       # any host: the host-less rule",
        f"  curl -i http://{http}/nothing-here                     # 404: no rule matches",
        f"  curl -i -H 'Host: shop.gateway.local' http://{gateway}/  # HTTPRoute: echo 3 : hello 1, X-Route: shop",
        f"  curl -H 'Host: shop.gateway.local' -H 'X-Canary: yes' http://{gateway}/   # header match: hello",
        f"  curl -i -H 'Host: shop.gateway.local' http://{gateway}/old/page          # 301 to /new/page",
        f"  curl http://{admin}/debug/routes                       # the routing table, live endpoints",
        f"  curl http://{admin}/metrics",
        "Edit examples/manifests/*.yaml or examples/gateway/*.yaml and repeat: changes apply at once. "
        "Ctrl-C stops.",
        "",
    ])


async def main(extra: list[str]) -> int:
    runners = await start_pods()
    offset = _flag(extra, "--gateway-port-offset")
    if offset is None:
        # The Gateway's port 80 on the Ingress listener's port, as with pyngress's defaults (80 + 8000 = 8080).
        http_port = _flag(extra, "--http-port")
        offset = 8000 if http_port is None or http_port < GATEWAY_LISTENER_PORT else http_port - GATEWAY_LISTENER_PORT
        extra = [*extra, "--gateway-port-offset", str(offset)]
    command = [sys.executable, "-m", "proxy", "--manifests", str(MANIFESTS), "--manifests", str(GATEWAY),
               "--bind", "127.0.0.1", "--http-port", "8080", "--admin-port", "10254", "--https-port", "8443", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # Its own session: Ctrl-C reaches only this script, which then sends pyngress one SIGTERM
    # (a graceful drain) instead of both getting SIGINT and pyngress seeing a second signal.
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
                                                   start_new_session=True, preexec_fn=_die_with_parent)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def relay() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            # One write per line (print may write the text and its newline apart): this stdout is shared with
            # pyngress's stderr, and a log line must never land inside a relayed one.
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            found = re.search(r"http=(\S+).*admin=(\S+)", line)
            if line.startswith("pyngress listening") and found:
                gateway = f"127.0.0.1:{GATEWAY_LISTENER_PORT + offset}"
                print(curl_lines(found.group(1), found.group(2), gateway), flush=True)

    relaying = asyncio.create_task(relay())
    exited = asyncio.create_task(process.wait())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not exited.done():
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout=35)
        except TimeoutError:
            process.kill()
    code = await exited
    stopping.cancel()
    await asyncio.gather(relaying, return_exceptions=True)
    for runner in runners:
        await runner.cleanup()
    return code


def _die_with_parent() -> None:
    """In the pyngress child (Linux): SIGTERM when this script dies, even by SIGKILL, so no proxy is left behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _flag(args: list[str], name: str) -> int | None:
    """The value of `name` among pyngress's arguments ("--name N" or "--name=N"; the last one wins), None if absent."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = int(args[index + 1])
        elif arg.startswith(name + "="):
            value = int(arg.split("=", 1)[1])
    return value


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
