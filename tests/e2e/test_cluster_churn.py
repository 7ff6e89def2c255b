"""Pod churn under load: while a client keeps requests in flight, the Service's EndpointSlice flips
between two sets of live pods many times; not one request may fail."""

from __future__ import annotations

import asyncio

import aiohttp

from e2e_harness import INGRESS_CLASS, eventually, ingress, scrape, service

HOST = "churn.example.test"
MAX_REQUESTS = 5000  # bounded: the clients stop after the last flip, or at this many at the latest
CLIENTS = 4  # concurrent keep-alive connections to the proxy
FLIPS = 20
PER_FLIP = 20  # responses after each flip went live, before the next one


async def test_no_request_fails_while_endpoints_flip_between_live_pods(kube_api, cluster, echo_pods) -> None:
    api = kube_api
    pods = await echo_pods.replicas(("blue-1", "127.0.0.31"), ("blue-2", "127.0.0.32"),
                                    ("green-1", "127.0.0.33"), ("green-2", "127.0.0.34"))
    blue, green = pods[:2], pods[2:]
    api.create(INGRESS_CLASS)
    web, blue_slice = service("web", pods=blue)
    green_slice = service("web", pods=green)[1]
    api.create(web)
    api.create(blue_slice)
    api.create(ingress("web", host=HOST, paths=[("/", "Prefix", "web", 80)]))
    proc = await cluster.start()

    done = 0
    failures: list[str] = []
    served_by: dict[str, int] = {}
    progress = asyncio.Condition()
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while not stop.is_set() and done < MAX_REQUESTS:
            try:
                async with session.get(proc.http + "/", headers={"Host": HOST},
                                       timeout=aiohttp.ClientTimeout(total=15)) as response:
                    body = await response.json(content_type=None)
                    if response.status != 200:
                        failures.append(f"{response.status}: {body}")
                    else:
                        served_by[body["pod"]] = served_by.get(body["pod"], 0) + 1
            except Exception as err:  # noqa: BLE001  every failure is counted, none may happen
                failures.append(f"{type(err).__name__}: {err}")
            async with progress:
                done += 1
                progress.notify_all()

    async def responses(count: int) -> None:
        async with progress:
            await progress.wait_for(lambda: done >= count or all(task.done() for task in clients))
        assert done >= count, "the clients stopped before the flips were done"

    async def endpoint_updates() -> float:
        return await scrape(proc, "pyngress_endpoint_updates_total") or 0

    flips = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        clients = [asyncio.create_task(client(session)) for _ in range(CLIENTS)]
        try:
            async with asyncio.timeout(60):
                await responses(PER_FLIP)
                for flip in range(FLIPS):
                    applied = await endpoint_updates()
                    api.apply(green_slice if flip % 2 == 0 else blue_slice)
                    # The flip is live (the proxy moved the endpoints) and traffic kept flowing over it.
                    await eventually(lambda applied=applied: _above(endpoint_updates(), applied), interval=0.01)
                    await responses(done + PER_FLIP)
                    flips += 1
                stop.set()
                await asyncio.gather(*clients)
        finally:
            stop.set()
            for task in clients:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)

    assert flips == FLIPS and done >= FLIPS * PER_FLIP
    assert failures == []
    assert set(served_by) == {"blue-1", "blue-2", "green-1", "green-2"}, served_by  # the flips took effect
    # The last flip (to blue) is what the proxy settles on.
    assert api.get("EndpointSlice", "default", "web-slice")["endpoints"] == blue_slice["endpoints"]

    async def only_blue() -> bool:
        answers = [await proc.request("/", host=HOST) for _ in range(4)]
        return all(status == 200 and body["pod"].startswith("blue") for status, body in answers)

    await eventually(only_blue)


async def _above(value, threshold: float) -> bool:
    return await value > threshold
