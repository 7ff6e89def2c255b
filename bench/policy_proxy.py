"""pyngress's proxy server on a hand-built table whose route and cluster carry traffic policies (the chaos
scenario's proxy, until the BackendTrafficPolicy front end lets a manifest say the same).

    python -m bench.policy_proxy --backend 127.0.0.1:8001 --backend 127.0.0.1:8002 --policies on

One route (any host, `/`) to one cluster of the given backends. `--policies on`: the route retries 5xx
answers, resets and connect failures (2 retries, the model's default backoff and budget) and the cluster
ejects endpoints (the model's default Ejection: 5 consecutive 5xx, 30 s, at most 10% of the endpoints
and at least one); `cluster`: round robin with ejection and a circuit breaker (limits far above the
load), no route policy (what the policy machinery costs a request that takes its path: the issue's
"no policy vs round robin with ejection and breaker"); `off`: plain round robin, connect failures
retried as by default. It runs the same
ProxyServer as `python -m proxy` (uvloop, no access log) and prints
`pyngress listening http=HOST:PORT admin=HOST:0`; on exit it prints what the policies did as one
`policy-counts {...}` JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence

from proxy.routing.model import Cluster, Config, Endpoint, Route
from proxy.routing.policies import (
    RETRY_5XX,
    RETRY_CONNECT_FAILURE,
    RETRY_RESET,
    CircuitBreaker,
    ClusterPolicy,
    Ejection,
    RetryPolicy,
    RoutePolicy,
)
from proxy.routing.table import RouteTable, VirtualHost
from proxy.runtime import Runtime, RuntimeHolder
from proxy.server import ProxyServer
from proxy.settings import Settings
from proxy.upstream.cluster import Upstream

KEY = "bench/chaos:80"
ROUTE_POLICY = RoutePolicy(retry=RetryPolicy(retry_on=frozenset({RETRY_5XX, RETRY_RESET, RETRY_CONNECT_FAILURE})))
CLUSTER_POLICY = ClusterPolicy(ejection=Ejection())
BREAKER_POLICY = ClusterPolicy(ejection=Ejection(), circuit_breaker=CircuitBreaker(
    max_connections=100_000, max_pending_requests=100_000, max_parallel_requests=100_000, max_parallel_retries=1000))


def config(backends: Sequence[tuple[str, int]], *, policies: str) -> tuple[Config, Cluster]:
    cluster_policy = {"on": CLUSTER_POLICY, "cluster": BREAKER_POLICY}.get(policies)
    cluster = Cluster(KEY, "bench", "chaos", "80", endpoints=tuple(Endpoint(h, p) for h, p in backends),
                      policy=cluster_policy)
    route = Route("bench", "chaos", "", "/", "Prefix", KEY, policy=ROUTE_POLICY if policies == "on" else None)
    table = RouteTable(hosts={}, any_host=VirtualHost(prefix={"": route}))
    return Config(table=table, clusters={KEY: cluster}), cluster


async def serve(backends: Sequence[tuple[str, int]], *, policies: str, port: int) -> None:
    settings = Settings(bind="127.0.0.1", http_port=port, access_log=False)
    holder = RuntimeHolder()
    server = ProxyServer(settings=settings, holder=holder)
    built, cluster = config(backends, policies=policies)
    upstream = Upstream(cluster, settings=settings)
    holder.publish(Runtime(config=built, upstreams={KEY: upstream}, generation=1))
    await server.start()
    print(f"pyngress listening http=127.0.0.1:{server.http_port} admin=127.0.0.1:0", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    counts = server.traffic.snapshot()["clusters"]
    print("policy-counts " + json.dumps(counts[0][1] if counts else {}), flush=True)
    await server.close()
    upstream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy_proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", default=[], help="HOST:PORT, repeatable")
    parser.add_argument("--policies", choices=("on", "cluster", "off"), default="on")
    parser.add_argument("--http-port", type=int, default=0)
    args = parser.parse_args(argv)
    backends = [(address.rsplit(":", 1)[0], int(address.rsplit(":", 1)[1])) for address in args.backend]
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(backends, policies=args.policies, port=args.http_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
