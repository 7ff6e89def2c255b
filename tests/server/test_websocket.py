"""WebSocket upgrades are relayed and then piped both ways."""

from __future__ import annotations

import asyncio

import aiohttp

from server_harness import Rule, cluster, connect, encode_request, read_head, read_response

APP = "default/app:80"


async def test_websocket_echo_through_the_proxy(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("ws.example", "/", APP)], [cluster(APP, [pod.endpoint])])
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url("/ws"), headers={"Host": "ws.example"}) as ws:
            assert ws._response.headers.get("X-Request-ID")
            for i in range(20):
                await ws.send_str(f"hello {i}")
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.data == f"a:hello {i}"
            big = bytes(range(256)) * 8192  # 2 MiB: exercises flow control in the tunnel
            await ws.send_bytes(big)
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.data == big
        # Closing the client side closes the upstream side: the pod's handler returns.
    # The upgraded upstream connection is never pooled.
    assert proxy.upstreams[APP].idle_connections() == 0
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/after"), headers={"Host": "ws.example"}) as r:
            assert r.status == 200


async def test_upstream_closing_the_tunnel_closes_the_client(make_proxy, make_backend):
    async def handler(reader, writer):
        line, headers = await read_head(reader)
        assert headers["upgrade"] == "websocket" and "upgrade" in headers["connection"].lower()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: x\r\n\r\nearly-bytes"
        )
        data = await reader.readexactly(4)
        writer.write(b"got:" + data)
        await writer.drain()
        writer.close()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                 ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                                 ("Sec-WebSocket-Version", "13")]))
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: x" in head and b"Upgrade: websocket" in head
        assert await reader.readexactly(len(b"early-bytes")) == b"early-bytes"
        writer.write(b"ping")
        assert await reader.readexactly(8) == b"got:ping"
        assert await reader.read() == b""
    writer.close()


async def test_refused_upgrade_is_a_normal_response_then_close(make_proxy, make_backend):
    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
        await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")]))
    response = await read_response(reader)
    assert response.status == 403 and response.body == b"no"
    assert response.header("Connection") == "close"
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()


async def test_non_websocket_upgrade_is_served_as_plain_request(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/h2c", method="POST", body=b"body-of-upgrade",
                                headers=[("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"),
                                         ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]))
    response = await read_response(reader)
    data = response.json()
    assert data["body"] == "body-of-upgrade"
    names = {k.lower() for k, _ in data["headers"]}
    assert "upgrade" not in names and "http2-settings" not in names
    writer.close()
