"""Defences of the HTTP/2 listener: a client over a limit gets GOAWAY and its connection closed (a stream over
the concurrency limit is refused alone, until the client keeps doing it); other clients go on being served.

ingress-nginx inherits nginx's: http2_max_concurrent_streams 128, the 2023 rapid-reset fix (nginx 1.25.3,
CVE-2023-44487: resets counted per connection), limits on header blocks (large_client_header_buffers) and
the 2024 CONTINUATION-flood fixes; nghttp2 and Envoy bound empty DATA frames the same way
(docs/user-guide/nginx-configuration/configmap.md: http2-max-concurrent-streams, http2-max-header-size).
"""

from __future__ import annotations

import asyncio

import pytest
from hyperframe.frame import GoAwayFrame, HeadersFrame, RstStreamFrame

from h2_client import RawH2, continuation, data_frame, rst_stream
from proxy.http2.connection import EMPTY_LIMIT, MAX_STREAMS, RESET_LIMIT
from server_harness import Rule, cluster, read_head

APP = "default/app:80"
DEADLINE = 10.0
ENHANCE_YOUR_CALM = 11
REFUSED_STREAM = 7


@pytest.fixture
async def proxy(make_proxy, make_pods, make_backend):
    """Routes to a pod (/) and to a backend that holds every request without answering (/held)."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await reader.read()  # until the proxy closes

    (pod,) = await make_pods("a")
    backend = await make_backend(hold)
    proxy = await make_proxy(max_header_bytes=4096, max_headers=50)
    proxy.publish([Rule("", "/held", "default/held:80"), Rule("", "/", APP)],
                  [cluster("default/held:80", [backend.endpoint]), cluster(APP, [pod.endpoint])])
    return proxy


async def others_are_served(proxy, h2_clients) -> None:
    client = await h2_clients(proxy.port)
    assert (await client.get("/still-here")).status == 200


async def test_rapid_reset_gets_goaway(proxy, h2_clients):
    bystander = await h2_clients(proxy.port)
    raw = await RawH2.connect(proxy.port)
    try:
        frames = []
        for index in range(RESET_LIMIT * 3):
            stream_id = 1 + 2 * index
            frames += (raw.headers(stream_id, "/held"), rst_stream(stream_id))
        raw.send(*frames)
        goaway = await raw.goaway()
        assert goaway.error_code == ENHANCE_YOUR_CALM
    finally:
        raw.close()
    assert (await bystander.get("/after")).status == 200
    await others_are_served(proxy, h2_clients)


async def test_a_few_resets_are_fine(proxy, h2_clients):
    client = await h2_clients(proxy.port)
    for _ in range(10):
        client.reset(client.request("/held"))
    assert (await client.get("/after")).status == 200


async def test_a_stream_over_the_concurrency_limit_is_refused_alone(proxy, h2_clients):
    """RFC 9113 5.1.2 (a stream error, REFUSED_STREAM) and nginx's http2_max_concurrent_streams ("concurrent
    streams exceeded": RST_STREAM REFUSED_STREAM on that stream, the connection goes on)."""
    raw = await RawH2.connect(proxy.port)
    try:
        held = [1 + 2 * index for index in range(MAX_STREAMS)]
        extra = [1 + 2 * index for index in range(MAX_STREAMS, MAX_STREAMS + 10)]
        raw.send(*(raw.headers(stream_id, "/held") for stream_id in held + extra))
        for stream_id in extra:
            reset = await raw.read_until(lambda frame, s=stream_id: frame.stream_id == s)
            assert isinstance(reset, RstStreamFrame) and reset.error_code == REFUSED_STREAM
        await raw.ping()  # the connection is still served
        assert not any(isinstance(frame, GoAwayFrame) for frame in raw.frames)
        assert not any(raw.stream_frames(stream_id) for stream_id in held)
        # A held stream reset by the client frees its place: the next stream is served.
        after = extra[-1] + 2
        raw.send(rst_stream(held[0]), raw.headers(after, "/"))
        await raw.read_until(lambda frame: frame.stream_id == after and "END_STREAM" in frame.flags)
        assert raw.response(after)[0][b":status"] == b"200"
    finally:
        raw.close()
    await others_are_served(proxy, h2_clients)


async def test_streams_over_the_concurrency_limit_on_and_on_get_goaway(proxy, h2_clients):
    """Refused streams count with the client's resets: opening streams over the limit without end is the
    rapid-reset pattern (nginx 1.25.3 closes such a connection too)."""
    raw = await RawH2.connect(proxy.port)
    try:
        raw.send(*(raw.headers(1 + 2 * index, "/held") for index in range(MAX_STREAMS + RESET_LIMIT * 3)))
        goaway = await raw.goaway()
        assert goaway.error_code == ENHANCE_YOUR_CALM
    finally:
        raw.close()
    await others_are_served(proxy, h2_clients)


async def test_oversized_header_list_gets_goaway(proxy, h2_clients):
    raw = await RawH2.connect(proxy.port)
    try:
        block = raw.header_block("/", extra=[("x-huge", "v" * 100_000)])  # 7 frames: under the CONTINUATION limit
        first = HeadersFrame(1)
        first.data = block[:16384]
        first.flags = {"END_STREAM"}
        pieces = [block[at : at + 16384] for at in range(16384, len(block), 16384)]
        frames = [continuation(1, piece, end_headers=index == len(pieces) - 1) for index, piece in enumerate(pieces)]
        raw.send(first.serialize(), *frames)
        goaway = await raw.goaway()
        assert goaway.error_code != 0
    finally:
        raw.close()
    await others_are_served(proxy, h2_clients)


async def test_fields_over_the_request_limit_get_431_on_their_stream(proxy, h2_clients):
    """Under the HPACK ceiling but over --max-header-bytes: answered like HTTP/1.1 (431), the connection stays."""
    client = await h2_clients(proxy.port)
    response = await client.get("/", headers=[("x-big", "v" * 5000)])
    assert response.status == 431
    assert (await client.get("/fine")).status == 200


async def test_continuation_flood_gets_goaway(proxy, h2_clients):
    raw = await RawH2.connect(proxy.port)
    try:
        first = HeadersFrame(1)
        first.data = raw.header_block("/")
        first.flags = {"END_STREAM"}  # no END_HEADERS: CONTINUATION frames follow, forever
        raw.send(first.serialize(), *(continuation(1, b"") for _ in range(1000)))
        goaway = await raw.goaway()
        assert goaway.error_code != 0
    finally:
        raw.close()
    await others_are_served(proxy, h2_clients)


async def test_empty_data_flood_gets_goaway(proxy, h2_clients):
    raw = await RawH2.connect(proxy.port)
    try:
        raw.send(raw.headers(1, "/held", end_stream=False), *(data_frame(1) for _ in range(EMPTY_LIMIT * 3)))
        goaway = await raw.goaway()
        assert goaway.error_code == ENHANCE_YOUR_CALM
    finally:
        raw.close()
    await others_are_served(proxy, h2_clients)
