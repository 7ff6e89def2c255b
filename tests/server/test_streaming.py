"""Bodies stream both ways (Content-Length, chunked, close-delimited) without being buffered whole."""

from __future__ import annotations

import asyncio
import hashlib

from server_harness import (
    CHUNK,
    Rule,
    cluster,
    connect,
    encode_request,
    read_head,
    read_response,
    shrink_buffers,
)

APP = "default/app:80"
SIZE = 24 * 1024 * 1024


async def _upload(port: int, *, chunked: bool, size: int = SIZE) -> dict:
    reader, writer = await connect(port)
    digest = hashlib.sha256()
    if chunked:
        writer.write(encode_request("/upload", method="POST", headers=[("Transfer-Encoding", "chunked")]))
    else:
        writer.write(encode_request("/upload", method="POST", headers=[("Content-Length", str(size))]))
    left = size
    while left:
        piece = CHUNK[: min(left, len(CHUNK))]
        digest.update(piece)
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        left -= len(piece)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
    response = await read_response(reader, timeout=60)
    writer.close()
    assert response.status == 200
    data = response.json()
    assert data["sha256"] == digest.hexdigest()
    return data


async def test_upload_content_length_and_chunked(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    data = await _upload(proxy.port, chunked=False)
    assert data["size"] == SIZE and data["content_length"] == str(SIZE) and not data["chunked"]
    data = await _upload(proxy.port, chunked=True)
    assert data["size"] == SIZE and data["chunked"] and data["content_length"] is None


async def _download(port: int, path: str) -> tuple[bytes, int]:
    reader, writer = await connect(port)
    writer.write(encode_request(path))
    response = await read_response(reader, timeout=60)
    writer.close()
    return response.header("Transfer-Encoding") or response.header("Content-Length") or b"", len(response.body)


async def test_download_content_length_and_chunked(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    framing, size = await _download(proxy.port, f"/download?size={SIZE}")
    assert (framing, size) == (str(SIZE), SIZE)
    framing, size = await _download(proxy.port, f"/download?size={SIZE}&chunked=1")
    assert (framing, size) == ("chunked", SIZE)


async def test_close_delimited_response_is_rechunked_for_http11_and_raw_for_http10(make_proxy, make_backend):
    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        for _ in range(50):
            writer.write(b"0123456789" * 1000)
            await writer.drain()
        writer.close()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/"))
    response = await read_response(reader)
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body == b"0123456789" * 50000
    # The client connection survives (chunked framing replaced the close).
    writer.write(encode_request("/"))
    assert len((await read_response(reader)).body) == 500000
    writer.close()
    reader, writer = await connect(proxy.port)
    writer.write(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
    response = await read_response(reader)
    assert response.header("Transfer-Encoding") is None and len(response.body) == 500000
    writer.close()


async def test_big_body_chunk_after_the_head_arrives_whole_and_in_order(make_proxy, make_backend):
    """A response whose head and body come in one upstream read: the writer sends a big body chunk beside the
    head (a gathered write, no join) and a small one joined to it; either way the client gets the head, then
    exactly the body, and the connection carries the next response. (Content-Length framing: RFC 9112 6.3;
    ingress-nginx's proxy buffering off, docs/user-guide/nginx-configuration/annotations.md#proxy-buffering.)"""
    sizes = [64 * 1024, 16 * 1024, 16 * 1024 - 1, 100, 300 * 1024]

    def body(size: int) -> bytes:
        return bytes(range(256)) * (size // 256) + b"z" * (size % 256)

    async def handler(reader, writer):
        for size in sizes:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, body(size)))
            await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    for size in sizes:
        writer.write(encode_request("/"))
        response = await read_response(reader, timeout=30)
        assert response.status == 200 and response.header("Content-Length") == str(size)
        assert response.body == body(size)
    writer.close()


async def test_upstream_chunked_to_http10_client_is_close_delimited(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(b"GET /download?size=300000&chunked=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    response = await read_response(reader)
    assert response.header("Transfer-Encoding") is None
    assert response.header("Connection") == "close"
    assert len(response.body) == 300000
    writer.close()


BACKPRESSURE_TOTAL = 128 * 1024 * 1024
# What may legitimately sit in kernel buffers between the stalled end and the producer: the
# proxy's own sockets autotune (net.ipv4.tcp_rmem max is 32 MiB on common hosts), the test's
# sockets are pinned small. Anything near the whole body means the proxy is buffering it.
BACKPRESSURE_BOUND = 64 * 1024 * 1024


async def test_slow_reader_applies_backpressure_to_the_upstream(make_proxy, make_backend):
    """A client that stops reading stops the upstream too: the proxy holds ~buffers, not the body."""
    sent = 0
    stalled = asyncio.Event()

    async def handler(reader, writer):
        nonlocal sent
        shrink_buffers(writer, sndbuf=256 * 1024)
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BACKPRESSURE_TOTAL)
        while sent < BACKPRESSURE_TOTAL:
            writer.write(CHUNK)
            sent += len(CHUNK)
            try:
                async with asyncio.timeout(0.5):
                    await writer.drain()
            except TimeoutError:
                stalled.set()
                await writer.drain()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port, rcvbuf=256 * 1024)
    writer.write(encode_request("/"))
    async with asyncio.timeout(20):
        await stalled.wait()
    assert sent < BACKPRESSURE_BOUND
    before = sent
    # Reading everything lets the download finish.
    response = await read_response(reader, timeout=60)
    assert len(response.body) == BACKPRESSURE_TOTAL
    assert sent == BACKPRESSURE_TOTAL > before
    writer.close()


async def test_slow_upstream_reader_applies_backpressure_to_the_upload(make_proxy, make_backend):
    """An upstream that stops reading stops the client's upload: nothing piles up in the proxy."""
    upstream_reading = asyncio.Event()
    received = 0

    async def handler(reader, writer):
        nonlocal received
        shrink_buffers(writer, rcvbuf=256 * 1024)
        line, headers = await read_head(reader)
        await upstream_reading.wait()
        length = int(headers["content-length"])
        while received < length:
            data = await reader.read(1 << 20)
            if not data:
                return
            received += len(data)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port, sndbuf=256 * 1024)
    writer.transport.set_write_buffer_limits(high=65536)
    writer.write(encode_request("/", method="PUT", headers=[("Content-Length", str(BACKPRESSURE_TOTAL))]))
    sent = 0
    stalled = False
    while sent < BACKPRESSURE_TOTAL:
        writer.write(CHUNK)
        sent += len(CHUNK)
        try:
            async with asyncio.timeout(0.5):
                await writer.drain()
        except TimeoutError:
            stalled = True
            break
    assert stalled
    assert sent < BACKPRESSURE_BOUND
    upstream_reading.set()
    while sent < BACKPRESSURE_TOTAL:
        writer.write(CHUNK)
        sent += len(CHUNK)
        async with asyncio.timeout(10):
            await writer.drain()
    response = await read_response(reader, timeout=60)
    assert response.status == 200 and received == BACKPRESSURE_TOTAL
    writer.close()
