"""Flow control both ways, cancels, upstream failures and draining on HTTP/2 streams.

ingress-nginx has no e2e test for these (nginx's own HTTP/2 module does them); the behaviour reproduced is
RFC 9113's (5.2 flow control, 6.4 RST_STREAM, 6.8 GOAWAY) and the issue's: a slow reader of one stream
holds back only its own pod and never makes the proxy buffer without bound; a client cancel cancels the
upstream request; SIGTERM sends GOAWAY and lets streams in flight finish (as the HTTP/1.1 drain does).
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from hpack import Decoder
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame

from h2_client import RawH2
from proxy.http.downstream import BLOCK_UPSTREAM
from proxy.http2.connection import STREAM_WINDOW, H2ClientConnection
from server_harness import Rule, cluster, read_head

APP = "default/app:80"
DEADLINE = 10.0


@pytest.fixture
async def proxy_and_pod(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    return proxy, pod


def h2_connections(proxy) -> list[H2ClientConnection]:
    return [conn for conn in proxy.server.connections if isinstance(conn, H2ClientConnection)]


async def until(condition, what: str) -> None:
    """Poll `condition` until true, with a deadline (state inside the proxy has no event to wait on)."""
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


async def test_slow_reader_holds_back_only_its_own_stream(proxy_and_pod, h2_clients):
    proxy, _ = proxy_and_pod
    size = 16 * 1024 * 1024
    slow = await h2_clients(proxy.port, read=False)
    download = slow.request(f"/download?size={size}")
    # The proxy's stream queue fills up to what one upstream read brings, then its pod stops being read.
    await until(lambda: any(s.write_paused for c in h2_connections(proxy) for s in c.streams.values()),
                "the slow stream paused")
    [conn] = [c for c in h2_connections(proxy) if c.streams]
    stream = conn.streams[download]
    assert stream.exchange.conn is not None and stream.exchange.conn.reading_paused
    queued = sum(len(chunk) for chunk in stream.writer.out)
    assert queued <= 1024 * 1024, queued  # bounded: one upstream read, not the 16 MiB body
    # Other streams of the same connection, and other clients, go on.
    assert (await slow.get("/other")).status == 200
    fast = await h2_clients(proxy.port)
    other = await fast.get("/download?size=1000000")
    assert other.status == 200 and len(other.body) == 1000000
    # The slow reader catches up: the whole body arrives.
    async with asyncio.timeout(DEADLINE * 3):
        while not slow.streams[download].done.is_set():
            slow.streams[download].data.clear()
            slow.read(download)
            await slow.streams[download].data.wait()
    assert len(slow.streams[download].body) == size


async def test_request_body_waits_for_a_pod_that_does_not_read(make_proxy, make_backend, h2_clients):
    """The proxy acknowledges body bytes (reopens the client's window) only as the pod takes them."""
    reading = asyncio.Event()

    async def lazy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, headers = await read_head(reader)
        await reading.wait()
        total, digest = 0, hashlib.sha256()
        while True:
            line = await reader.readuntil(b"\r\n")
            length = int(line.strip(), 16)
            piece = await reader.readexactly(length + 2)
            if not length:
                break
            digest.update(piece[:-2])
            total += length
        body = b"%d %s" % (total, digest.hexdigest().encode())
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    backend = await make_backend(lazy)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    client = await h2_clients(proxy.port)
    body = b"z" * (32 * 1024 * 1024)
    stream_id = client.request("/upload", method="POST", end=False)
    sender = asyncio.ensure_future(client.send_body(stream_id, body))
    try:
        def blocked() -> bool:
            streams = [s for c in h2_connections(proxy) for s in c.streams.values()]
            return bool(streams) and bool(streams[0].blocked & BLOCK_UPSTREAM) and streams[0].unacked > 0
        await until(blocked, "the stream blocked on its upstream")
        [stream] = [s for c in h2_connections(proxy) for s in c.streams.values()]
        held = sum(len(piece) for piece in stream.exchange.up_out)
        assert held <= STREAM_WINDOW + 16384, held  # at most the stream's window waits in the proxy
        assert not sender.done()
        reading.set()
        await asyncio.wait_for(sender, DEADLINE * 3)
    finally:
        sender.cancel()
    response = await client.response(stream_id, DEADLINE * 3)
    assert response.status == 200
    assert bytes(response.body) == b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())


async def test_client_reset_cancels_the_upstream_request(make_proxy, make_backend, h2_clients):
    arrived, upstream_closed = asyncio.Event(), asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        arrived.set()
        if not await reader.read(1):  # the proxy closes the upstream connection: EOF
            upstream_closed.set()

    backend = await make_backend(hold)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    client = await h2_clients(proxy.port)
    stream_id = client.request("/held")
    await asyncio.wait_for(arrived.wait(), DEADLINE)
    client.reset(stream_id)
    await asyncio.wait_for(upstream_closed.wait(), DEADLINE)
    await until(lambda: not any(c.streams for c in h2_connections(proxy)), "the stream forgotten")
    assert proxy.server.active_connections == 1  # the connection itself stays


async def test_upstream_failures_answer_or_reset_only_their_stream(make_proxy, make_backend, make_pods, h2_clients):
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _ = await read_head(reader)
        if b"/midway" in line:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            await writer.drain()
        writer.transport.abort()

    backend = await make_backend(broken)
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/broken", "default/broken:80"), Rule("", "/", APP)],
                  [cluster("default/broken:80", [backend.endpoint]), cluster(APP, [pod.endpoint])])
    client = await h2_clients(proxy.port)
    before = client.request("/broken/before")
    midway = client.request("/broken/midway")
    fine = client.request("/fine")
    assert (await client.response(before)).status == 502
    cut = await client.response(midway)
    assert cut.reset == 2 and cut.status == 200  # INTERNAL_ERROR after the head: the client sees it truncated
    assert (await client.response(fine)).status == 200


async def test_drain_sends_goaway_and_lets_streams_in_flight_finish(proxy_and_pod):
    """A raw client: the h2 library's client state machine takes any GOAWAY as the end of the connection, where
    RFC 9113 6.8 lets streams up to its last stream id finish, which is what a drain relies on."""
    proxy, pod = proxy_and_pod
    raw = await RawH2.connect(proxy.port)
    try:
        raw.send(raw.headers(1, "/wait"))
        await asyncio.wait_for(pod.waiting.wait(), DEADLINE)
        drain = asyncio.ensure_future(proxy.server.drain(DEADLINE))
        goaway = await raw.read_until(lambda frame: isinstance(frame, GoAwayFrame))
        assert goaway.error_code == 0 and goaway.last_stream_id == 1
        # A stream opened after the GOAWAY is refused (the client may retry it elsewhere).
        raw.send(raw.headers(3, "/late"))
        refused = await raw.read_until(lambda frame: isinstance(frame, RstStreamFrame) and frame.stream_id == 3)
        assert refused.error_code == 7  # REFUSED_STREAM
        pod.release.set()
        await raw.goaway()  # reads to the close
        answered = [frame for frame in raw.frames if frame.stream_id == 1]
        decoded = Decoder().decode(answered[0].data, raw=True)
        assert isinstance(answered[0], HeadersFrame) and (b":status", b"200") in decoded
        assert isinstance(answered[-1], DataFrame) and "END_STREAM" in answered[-1].flags
        assert raw.frames.index(goaway) < raw.frames.index(answered[0])
        assert await asyncio.wait_for(drain, DEADLINE) is True
    finally:
        raw.close()


async def test_a_stream_its_client_stops_reading_is_reset_after_the_send_timeout(make_proxy, make_pods, h2_clients):
    """nginx's send_timeout, per stream: the stream is reset (CANCEL), the connection and its other streams stay."""
    (pod,) = await make_pods("a")
    proxy = await make_proxy(client_send_timeout=0.3)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    slow = await h2_clients(proxy.port, read=False)
    stalled = slow.request("/download?size=16000000")
    response = await slow.response(stalled, DEADLINE)
    assert response.reset == 8
    assert (await slow.get("/after")).status == 200


async def test_idle_connection_gets_goaway_and_closes_after_the_keepalive_timeout(make_proxy, make_pods, h2_clients):
    """nginx closes an idle HTTP/2 connection after keepalive_timeout (it was http2_idle_timeout) with GOAWAY."""
    (pod,) = await make_pods("a")
    proxy = await make_proxy(client_keepalive_timeout=0.3)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    client = await h2_clients(proxy.port)
    assert (await client.get("/once")).status == 200
    await client.wait_closed(DEADLINE)
    assert client.goaway is not None and client.goaway.error_code == 0
    await until(lambda: proxy.server.active_connections == 0, "the connection counted as closed")
