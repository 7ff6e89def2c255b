"""Endpoint updates under traffic, graceful drain, counters."""

from __future__ import annotations

import asyncio

from server_harness import Rule, closed_by_peer, cluster, connect, encode_request, read_response, request, wait_until

APP = "default/app:80"


async def test_update_moves_traffic_without_failed_requests(make_proxy, make_pods):
    old_a, old_b, new_c, new_d = await make_pods("a", "b", "c", "d")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [old_a.endpoint, old_b.endpoint])])
    upstream = proxy.upstreams[APP]
    stop = asyncio.Event()
    results: list[tuple[int, str]] = []

    async def client(i: int) -> None:
        reader, writer = await connect(proxy.port)
        try:
            while not stop.is_set():
                writer.write(encode_request(f"/slow?delay=0.01&c={i}"))
                response = await read_response(reader)
                results.append((response.status, response.json()["pod"] if response.status == 200 else ""))
        finally:
            writer.close()

    clients = [asyncio.ensure_future(client(i)) for i in range(4)]
    await wait_until(lambda: len(results) >= 20)
    upstream.update(cluster(APP, [new_c.endpoint, new_d.endpoint]))
    assert upstream.endpoints == (new_c.endpoint, new_d.endpoint)
    mark = len(results)
    await wait_until(lambda: len(results) >= mark + 40)
    stop.set()
    await asyncio.gather(*clients)
    assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200]
    # Requests in flight during the update finish on the old pods; everything after is on the new ones.
    assert {pod for _, pod in results[mark + 8 :]} == {"c", "d"}
    # Idle connections to the removed pods were closed; in-flight ones were closed after their response.
    assert all(pool.endpoint in (new_c.endpoint, new_d.endpoint) for pool in upstream.pools)


async def test_drain_finishes_in_flight_requests_and_closes_idle_ones(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    # An idle keep-alive connection.
    idle_reader, idle_writer = await connect(proxy.port)
    idle_writer.write(encode_request("/"))
    assert (await read_response(idle_reader)).status == 200
    # An in-flight request that waits for the pod.
    busy_reader, busy_writer = await connect(proxy.port)
    busy_writer.write(encode_request("/wait"))
    async with asyncio.timeout(5):
        await pod.waiting.wait()
    assert proxy.server.active_connections == 2
    drain = asyncio.ensure_future(proxy.server.drain(10))
    assert await closed_by_peer(idle_reader, timeout=5)
    assert not drain.done()
    # No new connections are accepted.
    try:
        reader, writer = await connect(proxy.port)
        assert await closed_by_peer(reader, timeout=5)
        writer.close()
    except OSError:
        pass
    pod.release.set()
    response = await read_response(busy_reader)
    assert response.status == 200
    assert response.header("Connection") == "close"
    assert await closed_by_peer(busy_reader, timeout=5)
    assert await asyncio.wait_for(drain, 5) is True
    assert proxy.server.active_connections == 0
    idle_writer.close()
    busy_writer.close()


async def test_drain_waits_for_a_streaming_response_and_times_out(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/wait"))
    async with asyncio.timeout(5):
        await pod.waiting.wait()
    assert await proxy.server.drain(0.2) is False
    assert proxy.server.active_connections == 1
    pod.release.set()
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_counters(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    server = proxy.server
    assert (server.active_connections, server.total_connections, server.total_requests) == (0, 0, 0)
    reader, writer = await connect(proxy.port)
    for _ in range(3):
        writer.write(encode_request("/"))
        await read_response(reader)
    await request(proxy.port, "/")
    assert server.total_connections == 2
    assert server.total_requests == 4
    await wait_until(lambda: server.active_connections == 1)
    writer.close()
    await wait_until(lambda: server.active_connections == 0)


async def test_external_name_cluster_resolves_at_connect_time(make_proxy, make_pods):
    (pod,) = await make_pods("a", first=1)  # 127.0.0.1: what "localhost" resolves to
    proxy = await make_proxy()
    proxy.publish(
        [Rule("", "/", APP), Rule("", "/nowhere", "default/nowhere:80")],
        [
            cluster(APP, external_name="localhost", external_port=pod.port),
            cluster("default/nowhere:80", external_name="does-not-exist.invalid", external_port=80),
        ],
    )
    response = await request(proxy.port, "/x")
    assert response.status == 200 and response.json()["pod"] == "a"
    assert [v for k, v in response.json()["headers"] if k == "Host"] == ["example.com"]
    assert (await request(proxy.port, "/nowhere")).status == 502
