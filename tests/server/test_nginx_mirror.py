"""ingress-nginx's mirror annotations end to end: Ingress → builder → proxy → a pod and a mirror receiver.

Reproduces test/e2e/annotations/mirror.go ("should set mirror-target to http://localhost/mirror", "... to
https://test.env.com/$request_uri", "should disable mirror-request-body") and the "Mirror" section of
docs/user-guide/nginx-configuration/annotations.md (the copy's Host is the target's host or mirror-host; the
mirror's answer is ignored), as what the receiver actually gets. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from proxy.http import mirror
from server_harness import TIMEOUT, Pod, RawBackend, read_head, request
from test_nginx_annotations import ingress, serve

HOST = "mirror.foo.com"


class Receiver(RawBackend):
    """A mirror backend: records each request (line, headers, body) and answers 500 (ignored by the proxy)."""

    name = "mirror"
    got: asyncio.Queue[tuple[bytes, dict[str, str], bytes]]

    @classmethod
    async def started(cls) -> Receiver:
        receiver = cls("127.0.0.9", cls._answer)
        receiver.got = asyncio.Queue()
        receiver.handler = receiver._answer
        return cast(Receiver, await receiver.start())

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, headers = await read_head(reader)
            body = b""
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                body = await reader.readuntil(b"0\r\n\r\n")
            await self.got.put((line, headers, body))
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nnope")
            await writer.drain()

    async def next(self) -> tuple[bytes, dict[str, str], bytes]:
        return await asyncio.wait_for(self.got.get(), TIMEOUT)


async def start(make_proxy: Any, make_pods: Any, **annotations: str) -> tuple[Any, Pod, Receiver]:
    (echo,) = await make_pods("echo")
    receiver = await Receiver.started()
    proxy = await make_proxy()
    serve(proxy, [echo, cast(Pod, receiver)], ingress("m", HOST, ("/", "Prefix", "echo"), **annotations))
    return proxy, echo, receiver


async def test_the_request_is_copied_to_the_target_with_request_uri_and_its_body(make_proxy, make_pods):
    """mirror.go "should set mirror-target to https://test.env.com/$request_uri" (http here): the copy's URI
    is the target's path with $request_uri rendered, Host the target's host, the body included; the pod's
    answer reaches the client, the mirror's 500 is ignored."""
    proxy, echo, receiver = await start(make_proxy, make_pods, mirror_target="http://mirror.default.svc:80$request_uri")
    try:
        answer = await request(proxy.port, "/foo?x=1", host=HOST, method="POST", body=b"hello")
        assert answer.status == 200 and echo.requests == 1
        line, headers, body = await receiver.next()
        assert line == b"POST /foo?x=1 HTTP/1.1"
        assert headers["host"] == "mirror.default.svc" and body == b"hello"
        assert headers["x-request-id"]  # the rest of the head is the one sent to the pod
    finally:
        await receiver.stop()


async def test_a_plain_path_target_gets_the_query_and_mirror_host(make_proxy, make_pods):
    """mirror.go "should set mirror-target to http://localhost/mirror"; annotations.md: mirror-host sets Host."""
    proxy, _, receiver = await start(make_proxy, make_pods, mirror_target="http://mirror/mirror",
                                     mirror_host="test.env.com")
    try:
        assert (await request(proxy.port, "/a/b?q=2", host=HOST)).status == 200
        line, headers, _ = await receiver.next()
        assert line == b"GET /mirror?q=2 HTTP/1.1" and headers["host"] == "test.env.com"
    finally:
        await receiver.stop()


async def test_mirror_request_body_off_sends_the_copy_without_its_body(make_proxy, make_pods):
    """mirror.go "should disable mirror-request-body": the copy has no body, nor Content-Length or
    Transfer-Encoding; the pod still gets the whole body."""
    proxy, echo, receiver = await start(make_proxy, make_pods, mirror_target="http://mirror$request_uri",
                                        mirror_request_body="off")
    try:
        answer = await request(proxy.port, "/up", host=HOST, method="PUT", body=b"x" * 1000)
        assert answer.status == 200 and echo.requests == 1
        line, headers, body = await receiver.next()
        assert line == b"PUT /up HTTP/1.1" and body == b""
        assert "content-length" not in headers and "transfer-encoding" not in headers
    finally:
        await receiver.stop()


async def test_an_unusable_target_mirrors_nothing_and_serves(make_proxy, make_pods):
    """A target pyngress cannot dial (an outside host): a warning, the Ingress served, nothing copied."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    config = serve(proxy, [echo], ingress("m", HOST, ("/", "Prefix", "echo"),
                                          mirror_target="http://1.2.3.4$request_uri"))
    assert any("mirror-target" in warning.message for warning in config.warnings)
    sent = mirror.STATS.sent
    assert (await request(proxy.port, "/", host=HOST)).status == 200
    assert mirror.STATS.sent == sent
