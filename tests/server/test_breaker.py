"""Circuit breakers per cluster through real sockets: over a limit, 503 at once with the limit's name; requests
waiting for a connection are bounded in number and in time; breaker counts return to zero."""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.routing.policies import RETRY_5XX, CircuitBreaker, ClusterPolicy, RetryPolicy, RoutePolicy
from server_harness import Pod, Response, Rule, cluster, connect, encode_request, request, wait_until

APP = "default/app:80"


def breaker(**limits: int) -> ClusterPolicy:
    return ClusterPolicy(circuit_breaker=CircuitBreaker(**limits))


async def started(*requests) -> list[asyncio.Task[Response]]:
    return [asyncio.ensure_future(r) for r in requests]


def overloaded(response: Response) -> str | None:
    return response.header("x-pyngress-overloaded") if response.status == 503 else None


async def test_max_parallel_requests_refuses_at_once_and_counts(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint], policy=breaker(max_parallel_requests=2))])
    tasks = await started(*(request(proxy.port, "/wait") for _ in range(5)))
    await wait_until(lambda: sum(t.done() for t in tasks) == 3 and pod.in_flight == 2)
    refused = [t.result() for t in tasks if t.done()]
    assert [overloaded(r) for r in refused] == ["max-parallel-requests"] * 3
    assert b"503 Service Unavailable" in refused[0].body
    pod.release.set()
    answers = await asyncio.gather(*tasks)
    assert sorted(r.status for r in answers) == [200, 200, 503, 503, 503]
    upstream = proxy.upstreams[APP]
    assert upstream.counters.overloaded["max-parallel-requests"] == 3
    assert upstream.active == 0 and upstream.pending == 0


async def test_requests_wait_for_a_connection_at_max_connections_within_max_pending(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)],
                  [cluster(APP, [pod.endpoint], policy=breaker(max_connections=1, max_pending_requests=1))])
    upstream = proxy.upstreams[APP]
    tasks = await started(request(proxy.port, "/wait"))
    await wait_until(lambda: pod.in_flight == 1)
    tasks += await started(request(proxy.port, "/wait"), request(proxy.port, "/wait"))
    await wait_until(lambda: sum(t.done() for t in tasks) == 1 and upstream.pending == 1)
    (refused,) = [t.result() for t in tasks if t.done()]
    assert overloaded(refused) == "max-pending-requests"
    pod.release.set()
    answers = await asyncio.gather(*tasks)
    # The first one held the connection; of the two started together, whichever reached the proxy second was
    # refused (their connections race), the other waited for the connection.
    assert answers[0].status == 200 and sorted(r.status for r in answers[1:]) == [200, 503]
    assert len(pod.peers) == 1  # the waiting request took the connection the first one freed
    assert upstream.pending == 0 and upstream.active == 0 and not upstream.waiters


async def test_max_connections_without_a_queue_and_a_wait_that_lasts_too_long(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy(upstream_connect_timeout=0.2)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint], policy=breaker(max_connections=1))])
    first = asyncio.ensure_future(request(proxy.port, "/wait"))
    await wait_until(lambda: pod.in_flight == 1)
    assert overloaded(await request(proxy.port, "/")) == "max-connections"
    # With a queue, a request that waits longer than the connect timeout gets 503 too.
    proxy.publish([Rule("", "/", APP)],
                  [cluster(APP, [pod.endpoint], policy=breaker(max_connections=1, max_pending_requests=5))])
    upstream = proxy.upstreams[APP]
    assert upstream.breaker.max_pending_requests == 5
    assert overloaded(await request(proxy.port, "/")) == "max-connections"
    assert upstream.pending == 0 and not upstream.waiters
    pod.release.set()
    assert (await first).status == 200


async def test_a_client_leaving_the_queue_gives_its_place_back(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)],
                  [cluster(APP, [pod.endpoint], policy=breaker(max_connections=1, max_pending_requests=1))])
    upstream = proxy.upstreams[APP]
    first = asyncio.ensure_future(request(proxy.port, "/wait"))
    await wait_until(lambda: pod.in_flight == 1)
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/"))
    await wait_until(lambda: upstream.pending == 1)
    writer.close()
    await wait_until(lambda: upstream.pending == 0 and not upstream.waiters)
    tasks = await started(request(proxy.port, "/"))
    await wait_until(lambda: upstream.pending == 1)  # the place is free again
    pod.release.set()
    assert (await first).status == 200 and (await tasks[0]).status == 200
    assert pod.requests == 2


async def test_breaker_holds_under_concurrent_load(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    peak = 0

    async def slow(request: web.Request) -> None:
        nonlocal peak
        peak = max(peak, pod.in_flight)
        await asyncio.sleep(0.005)
        return None

    pod.fault = slow
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint], policy=breaker(max_parallel_requests=4))])

    async def client() -> list[Response]:
        return [await request(proxy.port, "/") for _ in range(10)]

    answers = [r for rs in await asyncio.gather(*(client() for _ in range(16))) for r in rs]
    refused = [r for r in answers if r.status == 503]
    assert all(overloaded(r) == "max-parallel-requests" for r in refused)
    assert len(refused) + sum(r.status == 200 for r in answers) == 160
    assert refused and peak <= 4
    upstream = proxy.upstreams[APP]
    assert upstream.counters.overloaded["max-parallel-requests"] == len(refused) and upstream.active == 0


async def test_max_parallel_retries_lets_the_answer_through(make_pods, make_proxy):
    a, b = await make_pods("a", "b")
    arrived = 0
    both = asyncio.Event()

    def failing_first(pod: Pod):
        async def fault(request: web.Request) -> web.StreamResponse | None:
            nonlocal arrived
            arrived += 1
            if arrived <= 2:  # the two first attempts fail together
                if arrived == 2:
                    both.set()
                await both.wait()
                return web.Response(status=503, text="first")
            await pod.release.wait()  # retries hang until the test has looked
            return None
        return fault

    a.fault, b.fault = failing_first(a), failing_first(b)
    proxy = await make_proxy()
    policy = RoutePolicy(retry=RetryPolicy(retry_on=frozenset({RETRY_5XX}), backoff_base=0.001, backoff_max=0.001))
    proxy.publish([Rule("", "/", APP, policy=policy)],
                  [cluster(APP, [a.endpoint, b.endpoint], policy=breaker(max_parallel_retries=1))])
    upstream = proxy.upstreams[APP]
    tasks = await started(request(proxy.port, "/"), request(proxy.port, "/"))
    await wait_until(lambda: sum(t.done() for t in tasks) == 1 and upstream.retrying == 1)
    (through,) = [t.result() for t in tasks if t.done()]
    assert through.status == 503 and through.body == b"first"  # the pod's own answer, not retried
    assert upstream.counters.overloaded["max-parallel-retries"] == 1
    a.release.set()
    b.release.set()
    assert sorted(r.status for r in await asyncio.gather(*tasks)) == [200, 503]
    assert upstream.retrying == 0
