"""Run a ProxyServer in its own process (for memory and load measurements).

    python tests/server/proxy_process.py BACKEND_HOST:PORT [BACKEND_HOST:PORT ...] [--asyncio]

Serves every host and path from one cluster of the given endpoints on 127.0.0.1 (an
ephemeral port, printed on stdout as "PORT <n>"), under uvloop unless --asyncio.
Stops when stdin closes, so it never outlives the test that started it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proxy.routing import Cluster, Config, Endpoint, Route, RouteTable, VirtualHost
from proxy.runtime import Runtime, RuntimeHolder
from proxy.server import ProxyServer
from proxy.settings import Settings
from proxy.upstream.cluster import Upstream


async def serve(endpoints: list[Endpoint]) -> None:
    settings = Settings(bind="127.0.0.1", http_port=0)
    key = "default/backend:80"
    cluster = Cluster(key=key, namespace="default", service="backend", port="80", endpoints=tuple(endpoints))
    route = Route(namespace="default", ingress="bench", host="", path="/", path_type="Prefix", cluster=key)
    config = Config(table=RouteTable(any_host=VirtualHost(prefix={"": route})), clusters={key: cluster})
    holder = RuntimeHolder()
    holder.publish(Runtime(config=config, upstreams={key: Upstream(cluster, settings=settings)}, generation=1))
    server = ProxyServer(settings=settings, holder=holder)
    await server.start()
    print(f"PORT {server.http_port}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin() -> None:
        while await reader.read(4096):
            pass
        stdin_closed.set()

    watcher = asyncio.ensure_future(watch_stdin())
    await stdin_closed.wait()
    watcher.cancel()
    await server.close()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    endpoints = []
    for arg in args:
        host, _, port = arg.rpartition(":")
        endpoints.append(Endpoint(host, int(port)))
    if "--asyncio" in sys.argv:
        asyncio.run(serve(endpoints))
    else:
        import uvloop

        uvloop.run(serve(endpoints))


if __name__ == "__main__":
    main()
