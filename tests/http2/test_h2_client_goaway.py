"""The client's GOAWAY: streams it opened before it are answered, then the connection closes (RFC 9113 6.8:
"activity on streams numbered lower than or equal to the last stream identifier might still complete
successfully"; a client's GOAWAY names server-initiated streams, and the proxy opens none, so every stream the
client opened completes). nginx does the same (ngx_http_v2_state_goaway only stops new streams)."""

from __future__ import annotations

import asyncio
import json

import pytest

from h2_client import TIMEOUT, RawH2, goaway_frame
from server_harness import Rule, cluster

APP = "default/app:80"
PROTOCOL_ERROR = 1
REFUSED_STREAM = 7


@pytest.fixture
async def setup(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    return proxy, pod


async def waiting(pod, count: int) -> None:
    """Until `count` requests are held by the pod's /wait (polled, bounded)."""
    async with asyncio.timeout(TIMEOUT):
        while pod.in_flight < count:
            await asyncio.sleep(0.01)


async def test_streams_open_at_the_clients_goaway_are_answered(setup):
    proxy, pod = setup
    raw = await RawH2.connect(proxy.port)
    try:
        raw.send(raw.headers(1, "/wait/one"), raw.headers(3, "/wait/two"))
        await waiting(pod, 2)
        raw.send(goaway_frame(last_stream_id=0))
        await raw.ping()  # the proxy has read the GOAWAY
        pod.release.set()
        async with asyncio.timeout(TIMEOUT):
            while not (raw.ended(1) and raw.ended(3)):
                assert await raw._read(), "closed before both answers came"
        for stream_id, path in ((1, "/wait/one"), (3, "/wait/two")):
            head, body = raw.response(stream_id)
            assert head[b":status"] == b"200", raw.stream_frames(stream_id)
            assert json.loads(body)["path"] == path
        await raw.closed()  # and then the proxy closes the connection
    finally:
        raw.close()


async def test_streams_opened_after_the_clients_goaway_are_refused(setup):
    proxy, pod = setup
    raw = await RawH2.connect(proxy.port)
    try:
        raw.send(raw.headers(1, "/wait"))
        await waiting(pod, 1)
        raw.send(goaway_frame(), raw.headers(3, "/late"))
        reset = await raw.read_until(lambda frame: frame.stream_id == 3)
        assert getattr(reset, "error_code", None) == REFUSED_STREAM
        pod.release.set()
        await raw.closed()
        assert raw.response(1)[0][b":status"] == b"200"
    finally:
        raw.close()


async def test_an_idle_connection_closes_at_the_clients_goaway(setup):
    proxy, _ = setup
    raw = await RawH2.connect(proxy.port)
    try:
        raw.send(goaway_frame())
        await raw.closed()
    finally:
        raw.close()


async def test_a_goaway_with_an_error_drops_the_streams_at_once(setup):
    """An error code says the client gives the connection up: nothing is left to answer it."""
    proxy, pod = setup
    raw = await RawH2.connect(proxy.port)
    try:
        raw.send(raw.headers(1, "/wait"))
        await waiting(pod, 1)
        raw.send(goaway_frame(code=PROTOCOL_ERROR))
        await raw.closed()
        assert not raw.ended(1)
    finally:
        raw.close()
