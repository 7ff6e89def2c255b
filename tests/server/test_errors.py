"""Upstream failures become 502/503/504 (or a cut connection), retried only when nothing was sent."""

from __future__ import annotations

import asyncio
import logging
import re
import socket

import pytest

from proxy.runtime import Runtime
from server_harness import (
    Rule,
    closed_by_peer,
    cluster,
    connect,
    encode_request,
    read_all,
    read_head,
    read_request,
    read_response,
    request,
    upload_until_answered,
    wait_until,
)

APP = "default/app:80"


def dead_endpoint(host: str = "127.0.0.20") -> tuple[str, int]:
    """An address and port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return host, sock.getsockname()[1]


@pytest.fixture
def blackhole():
    """An endpoint whose accept queue is full: connecting to it hangs until the connect timeout."""
    sock = socket.socket()
    sock.bind(("127.0.0.30", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.30", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    yield ("127.0.0.30", port)
    for filler in fillers:
        filler.close()
    sock.close()


def error_logs(caplog, request_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pyngress.proxy" and request_id in r.getMessage()]


async def test_refused_endpoint_is_skipped(make_proxy, make_pods, caplog):
    (pod,) = await make_pods("a")
    proxy = await make_proxy(upstream_retries=3)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [dead_endpoint(), pod.endpoint, dead_endpoint("127.0.0.21")])])
    caplog.set_level(logging.INFO, "pyngress.proxy")
    for _ in range(9):
        response = await request(proxy.port, "/", method="POST", body=b"x")
        assert response.status == 200 and response.json()["body"] == "x"
    assert pod.requests == 9
    assert not [r for r in caplog.records if r.name == "pyngress.proxy" and r.levelno >= logging.INFO]


async def test_all_endpoints_refusing_is_502_logged_once(make_proxy, caplog):
    proxy = await make_proxy(upstream_retries=5)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [dead_endpoint(), dead_endpoint("127.0.0.21")])])
    caplog.set_level(logging.DEBUG, "pyngress.proxy")
    response = await request(proxy.port, "/x")
    assert response.status == 502
    request_id = response.header("X-Request-ID")
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert response.body == f"502 Bad Gateway\nrequest id: {request_id}\n".encode()
    logged = [r for r in error_logs(caplog, request_id) if r.levelno >= logging.INFO]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING
    assert "ConnectError" in logged[0].getMessage() and "refused" in logged[0].getMessage().lower()


async def test_connect_timeout_tries_the_next_endpoint(make_proxy, make_pods, blackhole):
    (pod,) = await make_pods("a")
    proxy = await make_proxy(upstream_connect_timeout=0.3)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [blackhole, pod.endpoint])])
    for _ in range(2):
        assert (await request(proxy.port, "/")).json()["pod"] == "a"
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [blackhole])])
    response = await request(proxy.port, "/")
    assert response.status == 502


async def test_slow_upstream_headers_is_504(make_proxy, make_pods, caplog):
    (pod,) = await make_pods("a")
    proxy = await make_proxy(upstream_read_timeout=0.3)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    caplog.set_level(logging.INFO, "pyngress.proxy")
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/slow?delay=1"))
    response = await read_response(reader)
    assert response.status == 504
    request_id = response.header("X-Request-ID")
    assert f"request id: {request_id}".encode() in response.body
    assert len(error_logs(caplog, request_id)) == 1
    # The client connection is still usable (the request was fully read).
    writer.write(encode_request("/fast"))
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_stalled_response_body_cuts_the_client_connection(make_proxy, make_backend):
    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(5)

    backend = await make_backend(handler)
    proxy = await make_proxy(upstream_read_timeout=0.3)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/"))
    data = await read_all(reader, timeout=5)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\npartial")
    writer.close()


async def test_no_endpoints_unknown_cluster_and_no_config_are_503(make_proxy):
    proxy = await make_proxy()
    response = await request(proxy.port, "/")
    assert response.status == 503 and b"no configuration loaded yet" in response.body
    proxy.publish([Rule("", "/", APP), Rule("", "/ghost", "default/ghost:80")], [cluster(APP, [])])
    response = await request(proxy.port, "/")
    assert response.status == 503
    assert response.body.startswith(b"503 Service Unavailable\n")
    assert (await request(proxy.port, "/ghost")).status == 503


async def test_no_route_is_404_with_request_id(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("a.example", "/", APP)], [cluster(APP, [pod.endpoint])])
    response = await request(proxy.port, "/", host="b.example", headers=[("X-Request-ID", "abc")])
    assert response.status == 404
    assert response.header("X-Request-ID") == "abc"
    assert response.body == b"404 Not Found\nrequest id: abc\n"
    assert pod.requests == 0


@pytest.mark.parametrize("framing", [b"Content-Length: 10000000000", b"Transfer-Encoding: chunked"])
async def test_no_route_does_not_read_an_unbounded_body(make_proxy, make_pods, framing):
    """A 404 (no route) whose body has not arrived yet closes the connection after its answer instead of reading
    (and discarding) a body of any size to keep the connection: nginx's client_max_body_size applies before its
    404, the close bounds the same work."""
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("a.example", "/", APP)], [cluster(APP, [pod.endpoint])])
    reader, writer = await connect(proxy.port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: b.example\r\n" + framing + b"\r\n\r\n")
        line, headers = await read_head(reader)
        assert line.startswith(b"HTTP/1.1 404 ") and headers.get("connection") == "close"
        assert await closed_by_peer(reader)
    finally:
        writer.close()
    assert pod.requests == 0


async def test_upstream_closing_mid_response_truncates_the_client(make_proxy, make_backend):
    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        writer.transport.abort()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/"))
    with pytest.raises(ConnectionError):
        await read_response(reader)
    writer.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"",  # closed without answering
    ],
)
async def test_broken_upstream_answers_are_502(make_proxy, make_backend, answer):
    async def handler(reader, writer):
        await read_head(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    response = await request(proxy.port, "/")
    assert response.status == 502


@pytest.mark.parametrize("framing", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                                     b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
                         ids=["content-length", "chunked", "connection-close", "http10"])
@pytest.mark.parametrize("extra", [b"EXTRA BYTES", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno"],
                         ids=["garbage", "next-response"])
async def test_bytes_after_a_complete_parsed_response_are_dropped_with_the_connection(
        make_proxy, make_backend, caplog, framing, extra):
    """A short body (the parser's path; test_raw_body.py has the raw path's twin) followed, in the same read, by
    bytes nobody asked for: the client got a complete, well-framed response, so it keeps it (and its connection);
    the extra bytes are not forwarded, and the pod connection, out of step, is closed and not reused (RFC 9112
    9.3: a response on a persistent connection ends at its framing), with a log line naming the request."""
    closed = asyncio.Event()

    async def handler(reader, writer):
        first = backend.connections == 1
        await read_head(reader)
        if not first:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.read()
            return
        writer.write(framing + extra)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the proxy closed this connection
        closed.set()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    caplog.set_level(logging.DEBUG, "pyngress.proxy")
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/"))
    response = await read_response(reader)
    assert (response.status, response.body) == (200, b"ok")
    request_id = response.header("X-Request-ID")
    async with asyncio.timeout(10):
        await closed.wait()
    writer.write(encode_request("/"))
    assert (await read_response(reader)).body == b"ok"  # the same client connection: nothing extra reached it
    assert backend.connections == 2
    writer.close()
    logged = [r for r in error_logs(caplog, request_id) if r.levelno >= logging.INFO]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING and "after the complete response" in (
        logged[0].getMessage())


async def test_pooled_connection_closed_while_idle_is_not_used(make_proxy, make_backend):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # closes the keep-alive connection the proxy just pooled

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    assert (await request(proxy.port, "/")).status == 200
    await wait_until(lambda: proxy.upstreams[APP].idle_connections() == 0, timeout=5)
    assert (await request(proxy.port, "/")).status == 200
    assert backend.connections == 2


async def test_stale_pooled_connection_is_retried_for_idempotent_requests(make_proxy, make_backend):
    """The race: the upstream drops a kept-alive connection just as the next request is sent on it."""
    served = []

    async def handler(reader, writer):
        line, _, _ = await read_request(reader)
        served.append(line)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_request(reader)  # the next request on this connection is never answered
        writer.transport.abort()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    assert (await request(proxy.port, "/one")).status == 200
    assert proxy.upstreams[APP].idle_connections() == 1
    response = await request(proxy.port, "/two", method="PUT", body=b"data")
    assert response.status == 200 and response.body == b"ok"
    assert served == [b"GET /one HTTP/1.1", b"PUT /two HTTP/1.1"]
    assert backend.connections == 2
    # A POST is not replayed once it may have reached the upstream.
    response = await request(proxy.port, "/three", method="POST", body=b"data")
    assert response.status == 502
    assert served[-1] == b"PUT /two HTTP/1.1"


async def test_success_path_logs_nothing_above_debug(make_proxy, make_pods, caplog):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        assert (await request(proxy.port, "/", method="POST", body=b"1")).status == 200
    assert not [r for r in caplog.records if r.name.startswith("pyngress") and r.levelno > logging.DEBUG]


async def test_runtime_is_read_once_per_request(make_proxy, make_pods):
    """A request started on one generation finishes on it even if another is published meanwhile."""
    a, b = await make_pods("a", "b")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [a.endpoint])])
    task = asyncio.ensure_future(request(proxy.port, "/wait"))
    async with asyncio.timeout(5):
        await a.waiting.wait()
    proxy.publish([Rule("", "/", "default/b:80")], [cluster("default/b:80", [b.endpoint])], keep_upstreams=False)
    assert isinstance(proxy.holder.current, Runtime)
    a.release.set()
    response = await task
    assert response.json()["pod"] == "a"
    assert (await request(proxy.port, "/")).json()["pod"] == "b"


async def test_upstream_not_reading_the_upload_is_504(make_proxy, make_backend):
    async def handler(reader, writer):
        await read_head(reader)
        await asyncio.sleep(10)  # never reads the body

    backend = await make_backend(handler)
    proxy = await make_proxy(upstream_read_timeout=0.3)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    response = await upload_until_answered(proxy.port)
    assert response.status == 504


async def test_client_not_reading_the_response_is_cut(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy(upstream_read_timeout=0.3, client_send_timeout=0.3)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request(f"/download?size={256 << 20}"))
    await wait_until(lambda: proxy.server.active_connections == 1)
    # Never read: the proxy's write buffer fills, and after the timeout it gives up on this client.
    await wait_until(lambda: proxy.server.active_connections == 0, timeout=10)
    writer.close()
    assert proxy.upstreams[APP].idle_connections() == 0  # the half-read upstream connection was dropped
