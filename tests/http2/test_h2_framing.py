"""Responses framed by proxy/http2/framing.py's ServerH2 (not h2's own send methods): what a real h2 client
state machine accepts. RFC 9113 4.3 and 6.10: a header block larger than SETTINGS_MAX_FRAME_SIZE continues in
CONTINUATION frames; 6.1: DATA no larger than the frame size and the windows."""

from __future__ import annotations

import asyncio

import pytest

from server_harness import Rule, cluster, read_head

BIG = "v" * 40_000  # a header block of more than two 16 KiB frames


@pytest.fixture
async def proxy(make_proxy, make_backend):
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            if not head:
                return
            body = b"b" * 100_000
            writer.write(b"HTTP/1.1 200 OK\r\nX-Big: %s\r\nContent-Length: %d\r\n\r\n%s"
                         % (BIG.encode(), len(body), body))
            await writer.drain()

    backend = await make_backend(answer)
    proxy = await make_proxy(max_header_bytes=65536)
    proxy.publish([Rule("", "/", "default/big:80")], [cluster("default/big:80", [backend.endpoint])])
    return proxy


async def test_a_large_header_block_and_body_reach_an_h2_client_intact(proxy, h2_clients):
    client = await h2_clients(proxy.port)
    responses = await asyncio.gather(*(client.get(f"/{index}") for index in range(3)))
    for response in responses:
        assert response.status == 200
        assert response.header(b"x-big") == BIG.encode()
        assert bytes(response.body) == b"b" * 100_000
