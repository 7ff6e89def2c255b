"""auth-url's cost, in one process: sequential keep-alive requests per second through the proxy for a plain
route and for routes with ingress-nginx external authentication, same run (outside the suite's pass/fail).

    python -m bench.auth_url [--requests 3000] [--rounds 2]

Routes: `plain` (no annotation); `cached` (auth-url with auth-cache-key: after the first request the answer
comes from the cache, no I/O); `kept` (auth-url, auth-keepalive 16: one more request per request on a kept
connection); `fresh` (auth-url, the default: a new connection to the auth service per request). The pod (the
tests' aiohttp echo pod), the auth service (aiohttp) and the client share the proxy's process and loop, so the
numbers are the whole machine's work per request, not the proxy's alone: compare rows, not absolute values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import uvloop
from aiohttp import web

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / "server")]

from proxy.settings import Settings  # noqa: E402
from server_harness import Pod, Proxy, connect, encode_request, read_response  # noqa: E402
from test_nginx_annotations import ingress, serve  # noqa: E402

HOSTS = ("plain.x", "cached.x", "kept.x", "fresh.x")


async def _auth_service() -> tuple[web.AppRunner, int]:
    async def allow(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"X-User": "alice"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", allow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.40", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _rate(port: int, host: str, count: int) -> float:
    reader, writer = await connect(port)
    data = encode_request("/", host=host, headers=[("Authorization", "Bearer x")])
    try:
        for _ in range(200):  # warm up (and fill the cache)
            writer.write(data)
            if (await read_response(reader)).status != 200:
                raise RuntimeError(f"{host}: not 200")
        start = time.perf_counter()
        for _ in range(count):
            writer.write(data)
            await read_response(reader)
        return count / (time.perf_counter() - start)
    finally:
        writer.close()


async def _main(count: int, rounds: int) -> None:
    pod = await Pod("echo", "127.0.0.41").start()
    runner, auth_port = await _auth_service()
    proxy = Proxy(Settings(bind="127.0.0.1", http_port=0, access_log=False))
    await proxy.server.start()
    url = f"http://127.0.0.40:{auth_port}/auth"
    try:
        serve(proxy, [pod], ingress("plain", "plain.x", ("/", "Prefix", "echo")),
              ingress("cached", "cached.x", ("/", "Prefix", "echo"), auth_url=url,
                      auth_cache_key="$http_authorization"),
              ingress("kept", "kept.x", ("/", "Prefix", "echo"), auth_url=url, auth_keepalive="16"),
              ingress("fresh", "fresh.x", ("/", "Prefix", "echo"), auth_url=url))
        for number in range(1, rounds + 1):
            rates = [f"{host.split('.')[0]} {await _rate(proxy.port, host, count):.0f}" for host in HOSTS]
            print(f"round {number} (req/s): " + ", ".join(rates), flush=True)
    finally:
        await proxy.close()
        await runner.cleanup()
        await pod.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    uvloop.run(_main(options.requests, options.rounds))


if __name__ == "__main__":
    main()
