"""Requests and connections leave no reference cycles: reference counting frees them at once.

The production process freezes everything alive at each publish out of the cyclic GC's reach
(proxy.server.ProxyServer freeze_gc), which is only safe because nothing per request or per
connection needs that collector; and it keeps full collections (tens of ms) off the hot path.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
from collections import Counter

import pytest

from server_harness import Rule, cluster, connect, encode_request, read_response, request, wait_until

# Types whose instances must never end up in a garbage cycle.
OURS = {"Exchange", "RequestHead", "H1Writer", "H1Response", "Copies", "ClientConnection", "UpstreamConnection",
        "EndpointPool", "HttpRequestParser", "HttpResponseParser", "_BodyContinuation", "H2Stream",
        "H2EndpointPool", "H2Connection", "RawBody"}


@pytest.fixture
def cycles():
    """Collects, then records every object the cyclic GC finds unreachable while the test runs."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: Counter[str] = Counter()

    def collect() -> Counter[str]:
        gc.collect()
        found.update(type(o).__name__ for o in gc.garbage if type(o).__name__ in OURS
                     and type(o).__module__.startswith(("proxy.", "httptools")))
        gc.garbage.clear()
        return found

    try:
        yield collect
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_finished_requests_and_closed_connections_leave_no_cycles(make_proxy, make_pods, cycles):
    proxy = await make_proxy()
    [pod] = await make_pods("web")
    proxy.publish([Rule("example.com", "/", "default/web:80")], [cluster("default/web:80", [pod.endpoint])])

    # keep-alive requests, pipelined ones, a 404, a malformed request, Connection: close
    reader, writer = await connect(proxy.port)
    for _ in range(20):
        writer.write(encode_request("/echo"))
        assert (await read_response(reader)).status == 200
    for _ in range(3):  # bodies long enough to be read raw (proxy.http.h1_response.RawBody)
        writer.write(encode_request("/download?size=100000"))
        assert len((await read_response(reader)).body) == 100000
    writer.write(encode_request("/a") + encode_request("/b") + encode_request("/c", host="nowhere.test"))
    assert [(await read_response(reader)).status for _ in range(3)] == [200, 200, 404]
    writer.close()
    for _ in range(5):
        assert (await request(proxy.port, "/x", headers=[("Connection", "close")])).status == 200
    reader, writer = await connect(proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: x\r\n\r\n")
    assert (await read_response(reader)).status == 400
    writer.close()

    # a client that goes away (reset) while its request waits for the upstream
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/wait"))
    await asyncio.wait_for(pod.waiting.wait(), 10)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    writer.transport.abort()
    await wait_until(lambda: proxy.server.active_connections == 0)
    pod.release.set()

    assert cycles() == Counter()


async def test_http2_upstream_streams_leave_no_cycles(make_proxy, cycles):
    """Requests to an h2c pod (tests/server/h2_pods.py): answered, reset by the client, refused by the pod's GOAWAY
    (sent again): their streams are freed by reference counting like HTTP/1.1 connections' exchanges."""
    from h2_pods import H2Pod
    from proxy.routing.policies import HTTP2

    proxy = await make_proxy()
    pod = await H2Pod("127.0.0.6", goaway_on=15).start()
    try:
        proxy.publish([Rule("", "/", "default/h2:80")], [cluster("default/h2:80", [(pod.host, pod.port)],
                                                                 protocol=HTTP2)])
        reader, writer = await connect(proxy.port)
        for _ in range(20):
            writer.write(encode_request("/echo", method="POST", body=b"x"))
            assert (await read_response(reader)).status == 200
        writer.write(encode_request("/hang"))
        await wait_until(lambda: pod.requests == 22)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        await wait_until(lambda: len(pod.resets) == 1)
        for _ in range(5):
            assert (await request(proxy.port, "/echo")).status == 200
        assert cycles() == Counter()
    finally:
        await pod.stop()
