"""Long Content-Length bodies read raw (proxy.http.raw_body, proxy.http.h1_response RawBody), through real sockets.

A pod's body of at least RAW_MIN bytes leaves the parser after its head and goes to the client as it is read;
these cases pin the edges of that path: the pod writing in many small pieces, head and body in one write, the
head's end split at every byte, bytes beyond Content-Length (not forwarded, connection not reused), a pod that
closes early, a pipelined next response, HEAD/204/304, the byte count of the access log, and the read buffer
(proxy.upstream.connection: on uvloop the proxy reads pods into a buffer it owns and hands views of it to the
client's transport) under a slow client and over TLS to the pod, compared byte for byte. Framing follows
RFC 9112 6.3 (a Content-Length body ends after that many bytes) as ingress-nginx streams it with proxy buffering
off (docs/user-guide/nginx-configuration/annotations.md#proxy-buffering); the suite runs on asyncio and uvloop,
pure and compiled (scripts/test-compiled).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading

import pytest

from backend_pods import Pki, root_pem, server_context
from proxy.accesslog import AccessLog
from proxy.http.h1_response import RAW_MIN
from proxy.routing.policies import BackendTLS, ClusterPolicy
from server_harness import (
    Rule,
    cluster,
    connect,
    encode_request,
    read_all,
    read_head,
    read_response,
    wait_until,
)

APP = "default/app:80"


def body(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"z" * (size % 256)


def answer(size: int, *fields: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (size, b"".join(f + b"\r\n" for f in fields))


def exchange_of(proxy):  # type: ignore[no-untyped-def]
    """The exchange the proxy's one client connection is serving (None between requests)."""
    for conn in proxy.server.connections:
        if getattr(conn, "active", None) is not None:
            return conn.active
    return None


def consumed(proxy) -> bool:  # type: ignore[no-untyped-def]
    """The proxy has read what the pod wrote so far of a response: its head, or part of it (the reader keeps the
    part's last bytes in `tail`)."""
    ex = exchange_of(proxy)
    return ex is not None and ex.response is not None and (ex.resp_head_done or bool(ex.response.tail))


async def serve(make_proxy, backend):  # type: ignore[no-untyped-def]
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    return proxy


async def fetch_in_turn(make_proxy, backend, count: int) -> list:  # type: ignore[no-untyped-def]
    """`count` GETs one after another on one client connection through a proxy in front of `backend`."""
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    responses = []
    for _ in range(count):
        writer.write(encode_request("/"))
        responses.append(await read_response(reader, timeout=30))
    writer.close()
    return responses


async def test_body_in_many_small_writes_then_the_connection_is_reused(make_proxy, make_backend):
    sizes = [RAW_MIN, 100 * 1000 + 7]

    async def handler(reader, writer):
        for size in sizes:
            await read_head(reader)
            writer.write(answer(size))
            await writer.drain()
            data = body(size)
            for offset in range(0, size, 1000):
                writer.write(data[offset:offset + 1000])
                await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    for size, response in zip(sizes, await fetch_in_turn(make_proxy, backend, len(sizes)), strict=True):
        assert response.status == 200 and response.header("Content-Length") == str(size)
        assert response.body == body(size)
    assert backend.connections == 1  # the raw path gave the connection back for the next request


async def test_head_and_body_in_one_write(make_proxy, make_backend):
    sizes = [RAW_MIN - 1, RAW_MIN, RAW_MIN + 1, 64 * 1024, 300 * 1024, 100]

    async def handler(reader, writer):
        for size in sizes:
            await read_head(reader)
            writer.write(answer(size, b"X-Size: %d" % size) + body(size))
            await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    for size, response in zip(sizes, await fetch_in_turn(make_proxy, backend, len(sizes)), strict=True):
        assert response.header("X-Size") == str(size) and response.body == body(size)
    assert backend.connections == 1


@pytest.mark.parametrize("size", [10, RAW_MIN], ids=["short", "raw"])
async def test_head_split_at_every_byte(make_proxy, make_backend, size):
    """The pod writes the response in two pieces, split at every offset of the head and the first body bytes;
    the proxy reads the first piece before the second is written (waited for), so the head's blank line is
    split every way across two reads."""
    head = answer(size, b"X-A: b")
    data = head + body(size)
    splits = list(range(1, len(head) + 4))
    proxy = None

    async def handler(reader, writer):
        for split in splits:
            await read_head(reader)
            writer.write(data[:split])
            await writer.drain()
            await wait_until(lambda: consumed(proxy), timeout=10)
            writer.write(data[split:])
            await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    for split in splits:
        writer.write(encode_request("/"))
        response = await read_response(reader)
        assert (split, response.status, response.header("X-A"), response.body) == (split, 200, "b", body(size))
    assert backend.connections == 1
    writer.close()


async def test_a_long_head_alone_in_its_read_then_the_body(make_proxy, make_backend):
    """A head that fills a long read (a field of over RAW_MIN bytes) and ends exactly where the read does: the
    body comes in the next reads, raw."""
    size = 2 * RAW_MIN
    pad = b"p" * (RAW_MIN + 100)
    proxy = None

    async def handler(reader, writer):
        for _ in range(2):
            await read_head(reader)
            writer.write(answer(size, b"X-Pad: " + pad))
            await writer.drain()
            await wait_until(lambda: consumed(proxy), timeout=10)
            writer.write(body(size))
            await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    for _ in range(2):
        writer.write(encode_request("/"))
        response = await read_response(reader)
        assert (response.status, response.header("X-Pad"), response.body) == (200, pad.decode(), body(size))
    assert backend.connections == 1
    writer.close()


@pytest.mark.parametrize("kind", ["interim-then-raw-length", "chunked", "short-then-next"])
async def test_a_long_read_whose_body_the_parser_reads(make_proxy, make_backend, kind):
    """A read of more than RAW_MIN bytes in which the head ends but no raw body follows it (a 1xx answer first,
    a chunked body, a short body in a long read): the parser gets the rest of the read, and the client every
    byte; the connection serves the next request."""
    size = 64 * 1024
    if kind == "interim-then-raw-length":
        first = (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + answer(size) + body(size),
                 body(size))
    elif kind == "chunked":
        first = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % size + body(size)
                 + b"\r\n0\r\n\r\n", body(size))
    else:  # a head that fills most of the read, a short body
        pad = b"p" * RAW_MIN
        first = (answer(5, b"X-Pad: " + pad) + b"hello", b"hello")

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(first[0])
        await writer.drain()
        await read_head(reader)
        writer.write(answer(2) + b"ok")
        await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/"))
    response = await read_response(reader)
    assert (response.status, response.body) == (200, first[1])
    writer.write(encode_request("/"))
    assert (await read_response(reader)).body == b"ok"
    assert backend.connections == 1
    writer.close()


async def test_an_upgrade_after_an_interim_answer_in_a_long_read(make_proxy, make_backend):
    """100 Continue, then 101 Switching Protocols and the tunnel's first bytes (over RAW_MIN of them), all in one
    read: the client gets both heads and exactly those bytes (where the tunnel begins is counted in the read)."""
    early = body(RAW_MIN + 10)

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n" + early)
        await writer.drain()
        data = await reader.readexactly(4)
        writer.write(b"got:" + data)
        await writer.drain()
        writer.close()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                 ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                                 ("Sec-WebSocket-Version", "13")]))
    async with asyncio.timeout(10):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
        assert await reader.readexactly(len(early)) == early
        writer.write(b"ping")
        assert await reader.readexactly(8) == b"got:ping"
    writer.close()


@pytest.mark.parametrize("split", [None, 1000], ids=["one-write", "split"])
@pytest.mark.parametrize("extra", [b"EXTRA BYTES", answer(2) + b"no"], ids=["garbage", "next-response"])
async def test_bytes_beyond_the_content_length_are_not_forwarded_nor_the_connection_reused(
        make_proxy, make_backend, split, extra):
    """The pod sends more than its Content-Length (garbage, or a pipelined next response nobody asked for) in the
    read that ends the body: the client gets the body exactly, and the proxy closes that pod connection."""
    size = 40000
    closed = asyncio.Event()
    proxy = None

    async def handler(reader, writer):
        first = backend.connections == 1
        await read_head(reader)
        if not first:
            writer.write(answer(2) + b"ok")
            await writer.drain()
            await reader.read()
            return
        data = answer(size) + body(size) + extra
        if split is not None:
            writer.write(data[:split])
            await writer.drain()
            await wait_until(lambda: consumed(proxy), timeout=10)
            data = data[split:]
        writer.write(data)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the proxy closed this connection
        closed.set()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/"))
    response = await read_response(reader)
    assert response.body == body(size)
    async with asyncio.timeout(10):
        await closed.wait()
    writer.write(encode_request("/"))
    assert (await read_response(reader)).body == b"ok"  # nothing of the extra bytes reached the client
    assert backend.connections == 2
    writer.close()


async def test_bytes_beyond_the_content_length_are_logged_naming_the_route_and_pod_once_a_minute(
        make_proxy, make_backend, caplog):
    """A pod sending more than its Content-Length is a fault of that pod the client never sees: a warning names the
    request, the route and the pod; the same pod's next ones within a minute (proxy.http.upstream_faults'
    WARNING_INTERVAL) are logged at debug, so a pod doing it on every response cannot flood the log."""
    size = 40000

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(answer(size) + body(size) + b"EXTRA BYTES")
        await writer.drain()
        await reader.read()  # the proxy closes this connection (out of step)

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    caplog.set_level(logging.DEBUG, "pyngress.proxy")
    ids = []
    for _ in range(2):
        reader, writer = await connect(proxy.port)
        writer.write(encode_request("/"))
        response = await read_response(reader)
        assert response.body == body(size)
        ids.append(response.header("X-Request-ID"))
        writer.close()
    await wait_until(lambda: all(any(i in r.getMessage() and "Content-Length" in r.getMessage()
                                     for r in caplog.records) for i in ids), timeout=10)
    lines = [(r.levelno, r.getMessage()) for i in ids for r in caplog.records
             if r.name == "pyngress.proxy" and i in r.getMessage() and "Content-Length" in r.getMessage()]
    address, port = backend.endpoint
    assert [level for level, _ in lines] == [logging.WARNING, logging.DEBUG]
    for _, message in lines:
        assert f"upstream {address}:{port} sent more than its Content-Length" in message
        assert "service=app" in message


@pytest.mark.parametrize("with_head", [True, False], ids=["with-head", "later-read"])
async def test_pod_closing_before_the_body_ends_cuts_the_client(make_proxy, make_backend, caplog, with_head):
    size = 100000
    proxy = None

    async def handler(reader, writer):
        await read_head(reader)
        data = answer(size) + body(size // 2)
        if not with_head:
            writer.write(data[:100])
            await writer.drain()
            await wait_until(lambda: consumed(proxy), timeout=10)
            data = data[100:]
        writer.write(data)
        await writer.drain()
        writer.transport.abort()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/"))
    with caplog.at_level(logging.WARNING, logger="pyngress.proxy"):
        received = await read_all(reader)  # the proxy closes the client connection
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert len(received.partition(b"\r\n\r\n")[2]) < size
        await wait_until(lambda: any("response aborted after it started" in r.getMessage() for r in caplog.records))
    writer.close()


async def test_head_204_and_304_with_a_long_content_length_have_no_body(make_proxy, make_backend):
    """Content-Length on a HEAD answer, a 204 or a 304 frames no body (RFC 9110 8.6, 15.3.5, 15.4.5): the raw
    path is not taken, and the next answer on the connection is read whole."""
    size = 5 * RAW_MIN

    async def handler(reader, writer):
        while True:
            line, _ = await read_head(reader)
            if b"/204" in line:
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n" % size)
            elif b"/304" in line:
                writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: %d\r\n\r\n" % size)
            elif line.startswith(b"HEAD"):
                writer.write(answer(size))
            else:
                writer.write(answer(size) + body(size))
            await writer.drain()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    for method, path, status in (("HEAD", "/", 200), ("GET", "/204", 204), ("GET", "/304", 304), ("GET", "/", 200)):
        writer.write(encode_request(path, method=method))
        response = await read_response(reader, head=method == "HEAD")
        assert response.status == status
        assert response.body == (body(size) if method == "GET" and status == 200 else b"")
    assert backend.connections == 1
    writer.close()


async def test_http10_client_gets_the_raw_body(make_proxy, make_backend):
    size = 3 * RAW_MIN

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(answer(size) + body(size))
        await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port)
    writer.write(b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")
    received = await read_all(reader)
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: %d" % size in head
    assert rest == body(size)
    writer.close()


async def test_access_log_counts_every_byte_of_a_raw_response(make_proxy, make_backend):
    size = 200000

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(answer(size))
        data = body(size)
        for offset in range(0, size, 30000):
            writer.write(data[offset:offset + 30000])
            await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    thread = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b"")))
    thread.start()
    proxy.server.access_log = AccessLog(write_end, interval=0.01)
    try:
        reader, writer = await connect(proxy.port)
        writer.write(encode_request("/", headers=[("Connection", "close")]))
        received = await read_all(reader)
        writer.close()
        assert received.endswith(body(size))
    finally:
        proxy.server.access_log.close()
        os.close(write_end)
        thread.join(timeout=10)
        os.close(read_end)
    (entry,) = [json.loads(line) for line in b"".join(chunks).splitlines()]
    assert (entry["status"], entry["bytes_out"]) == (200, len(received))


def noise(size: int) -> bytes:
    """A body with no period: a read buffer reused while a piece of it still waits to be written would put bytes
    of a later read at an earlier offset, which a repeating pattern (body()) could hide."""
    return random.Random(size).randbytes(size)


def client_side_pending(proxy) -> int:  # type: ignore[no-untyped-def]
    """Bytes the proxy's transport to its one client holds, not yet written to the socket."""
    return sum(conn.transport.get_write_buffer_size() for conn in proxy.server.connections)


async def test_slow_client_gets_every_byte_in_order(make_proxy, make_backend):
    """A client with a small receive buffer, read only once the proxy's transport to it holds what it could not
    write: pieces of the pod's reads wait there while the pod's next reads come in (pausing at the high-water
    mark, resuming at the low one with bytes still waiting). The body arrives exactly (RFC 9112 6.3: the
    Content-Length body, as ingress-nginx streams it with proxy-buffering off)."""
    size = 6 * 1024 * 1024 + 11
    data = noise(size)

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(answer(size) + data)
        await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port, rcvbuf=16384)
    writer.write(encode_request("/"))
    await wait_until(lambda: client_side_pending(proxy) > 0, timeout=10)
    response = await read_response(reader, timeout=60)
    assert response.status == 200 and len(response.body) == size
    assert response.body == data
    writer.close()


async def test_slow_client_then_the_next_response_on_the_same_connections(make_proxy, make_backend):
    """Two long bodies one after another on one client connection and one pod connection, the client reading
    only once the proxy holds unwritten bytes each time; then a short answer: every byte where it belongs."""
    sizes = [5 * 1024 * 1024 + 5, 6 * 1024 * 1024 + 3, 100]  # above the 4 MiB a sender's buffer grows to

    async def handler(reader, writer):
        for size in sizes:
            await read_head(reader)
            writer.write(answer(size) + noise(size))
            await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await serve(make_proxy, backend)
    reader, writer = await connect(proxy.port, rcvbuf=16384)
    for size in sizes:
        writer.write(encode_request("/"))
        if size > RAW_MIN:
            await wait_until(lambda: client_side_pending(proxy) > 0, timeout=10)
        response = await read_response(reader, timeout=60)
        assert response.body == noise(size)
    assert backend.connections == 1
    writer.close()


async def test_raw_body_from_a_pod_over_tls(make_proxy, tmp_path):
    """A pod spoken to over TLS (backend-protocol HTTPS): the TLS layer decrypts into the proxy's read buffer on
    uvloop; long bodies, split and whole, arrive exactly and the connection is reused."""
    pki = Pki(tmp_path, name="pods")
    sizes = [RAW_MIN, 700 * 1024 + 1, 64 * 1024]
    connections = 0

    async def handler(reader, writer):
        nonlocal connections
        connections += 1
        try:
            for size in sizes:
                await read_head(reader)
                data = answer(size) + noise(size)
                for offset in range(0, len(data), 50000):
                    writer.write(data[offset:offset + 50000])
                    await writer.drain()
            await reader.read()
        except ConnectionError:
            pass
        finally:
            writer.close()

    key = "default/secure:443"
    server = await asyncio.start_server(handler, "127.0.0.9", 0,
                                        ssl=server_context(pki.leaf("secure.default.svc")))
    try:
        proxy = await make_proxy()
        policy = ClusterPolicy(tls=BackendTLS(ca=root_pem(pki)))
        port = server.sockets[0].getsockname()[1]
        proxy.publish([Rule("", "/", key)], [cluster(key, [("127.0.0.9", port)], policy=policy)])
        reader, writer = await connect(proxy.port)
        for size in sizes:
            writer.write(encode_request("/"))
            response = await read_response(reader, timeout=30)
            assert (size, response.status) == (size, 200) and response.body == noise(size)
        assert connections == 1
        writer.close()
    finally:
        server.close()
