"""ingress-nginx's `proxy-http-version` end to end: what the pod receives, and its connections.

Reproduces test/e2e/annotations/proxy.go "should change the default proxy HTTP version" (`proxy_http_version
1.0;` in the location) as behaviour: the pod gets HTTP/1.0 requests with "Connection: close" (nginx's
default `proxy_set_header Connection close`; nginx keeps no upstream keepalive with 1.0), one connection per
request; a chunked body cannot be sent in 1.0 (nginx buffers it; pyngress answers 411). Waits are bounded.
"""

from __future__ import annotations

import asyncio
from typing import cast

from server_harness import Pod, RawBackend, connect, encode_request, read_head, read_response
from test_nginx_annotations import ingress, serve

HOST = "version.foo.com"


class Recorder(RawBackend):
    """A pod that records request lines and headers, answers 200, and closes when asked ("Connection: close")."""

    name = "echo"
    seen: list[tuple[bytes, dict[str, str]]]

    @classmethod
    async def started(cls) -> Recorder:
        pod = cls("127.0.0.7", cls._answer)
        pod.seen = []
        pod.handler = pod._answer
        return cast(Recorder, await pod.start())

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, headers = await read_head(reader)
            if "content-length" in headers:
                await reader.readexactly(int(headers["content-length"]))
            self.seen.append((line, headers))
            closing = headers.get("connection", "").lower() == "close"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + (b"Connection: close\r\n" if closing else b"")
                         + b"\r\nok")
            await writer.drain()
            if closing:
                return


async def two_requests(port: int) -> None:
    reader, writer = await connect(port)
    try:
        for body in (None, b"data"):
            writer.write(encode_request("/", host=HOST, method="POST" if body else "GET", body=body))
            assert (await read_response(reader)).status == 200
    finally:
        writer.close()


async def test_http_1_0_to_the_pod_one_connection_per_request(make_proxy):
    pod = await Recorder.started()
    try:
        proxy = await make_proxy()
        serve(proxy, [cast(Pod, pod)], ingress("v", HOST, ("/", "Prefix", "echo"), proxy_http_version="1.0"))
        await two_requests(proxy.port)
        assert [line for line, _ in pod.seen] == [b"GET / HTTP/1.0", b"POST / HTTP/1.0"]
        assert all(headers.get("connection") == "close" for _, headers in pod.seen)
        assert pod.seen[1][1]["content-length"] == "4"
        assert pod.connections == 2
    finally:
        await pod.stop()


async def test_the_default_stays_http_1_1_with_a_kept_connection(make_proxy):
    pod = await Recorder.started()
    try:
        proxy = await make_proxy()
        serve(proxy, [cast(Pod, pod)], ingress("v", HOST, ("/", "Prefix", "echo"), proxy_http_version="1.1"))
        await two_requests(proxy.port)
        assert [line for line, _ in pod.seen] == [b"GET / HTTP/1.1", b"POST / HTTP/1.1"]
        assert pod.connections == 1
    finally:
        await pod.stop()


async def test_a_chunked_body_is_refused_with_411_under_http_1_0(make_proxy):
    pod = await Recorder.started()
    try:
        proxy = await make_proxy()
        serve(proxy, [cast(Pod, pod)], ingress("v", HOST, ("/", "Prefix", "echo"), proxy_http_version="1.0"))
        reader, writer = await connect(proxy.port)
        try:
            writer.write(encode_request("/", host=HOST, method="POST", headers=[("Transfer-Encoding", "chunked")])
                         + b"4\r\ndata\r\n0\r\n\r\n")
            assert (await read_response(reader)).status == 411
        finally:
            writer.close()
        assert pod.seen == []
    finally:
        await pod.stop()
