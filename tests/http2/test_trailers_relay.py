"""Trailer fields reach the clients that can take them (issue 13: "trailers dropped only where HTTP/1.1 cannot
carry them"): an HTTP/1.1 pod's chunked trailer section, and an HTTP/2 pod's trailers to HTTP/2 clients.

- HTTP/2 clients always get them, as a HEADERS frame with END_STREAM after the DATA (RFC 9113 8.1);
- HTTP/1.1 clients that sent ``TE: trailers`` get them as the chunked body's trailer section (RFC 9112 7.1.2);
  other HTTP/1.1 clients get the body without them (RFC 9110 6.5.1: a recipient may discard them);
- fields that must not be trailers (framing, routing, control data, authentication, RFC 9110 6.5.1), the
  hop-by-hop ones and the ones the pod's Connection header names are dropped.

ingress-nginx has no e2e test of HTTP/1.1 trailers (nginx passes them only for gRPC, test/e2e/annotations/grpc.go
reads grpc-status from them); these tests reproduce the RFC behaviour above. The pod is a raw socket so the
trailer section is exactly what a pod would write.
"""

from __future__ import annotations

import asyncio

import pytest

from h2_pods import read_grpc_answer
from proxy.routing.policies import HTTP2
from server_harness import Rule, cluster, connect, read_head, read_response

APP = "default/app:80"

BODY_PIECES = (b"first piece,", b"second piece")
TRAILER_SECTION = (
    b"X-Checksum: abc123\r\n"
    b"Grpc-Status: 0\r\n"
    b"X-Hop: gone\r\n"  # named by the pod's Connection header: hop-by-hop
    b"Content-Type: text/html\r\n"  # content processing: never a trailer
    b"Set-Cookie: s=1\r\n"  # authentication: never a trailer
    b"Keep-Alive: timeout=5\r\n"
    b"X-Request-ID: from-the-pod\r\n"
    b"\r\n"
)


async def chunked_pod_with_trailers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request with a chunked body and a trailer section; records whether TE: trailers came."""
    while True:
        try:
            _, headers = await read_head(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                     b"Trailer: X-Checksum, Grpc-Status\r\nConnection: X-Hop\r\n\r\n")
        for piece in BODY_PIECES:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n" + TRAILER_SECTION)
        await writer.drain()


async def chunked_pod_without_trailers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            await read_head(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in BODY_PIECES:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        await writer.drain()


@pytest.fixture
async def proxy_port(make_proxy, make_backend):
    async def make(handler) -> int:
        backend = await make_backend(handler)
        proxy = await make_proxy()
        proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
        return proxy.port

    return make


async def test_h2_client_gets_the_pods_trailers_as_headers_with_end_stream(proxy_port, h2_clients):
    client = await h2_clients(await proxy_port(chunked_pod_with_trailers))
    for _ in range(2):  # the pod connection is reused: the second response's trailers are its own again
        response = await client.get("/t")
        assert response.status == 200 and response.reset is None
        assert bytes(response.body) == b"".join(BODY_PIECES)
        assert response.trailers == [(b"x-checksum", b"abc123"), (b"grpc-status", b"0")]
        assert response.header(b"trailer") is None  # hop-by-hop in the head (HTTP/2 needs no announcement)


async def test_h2_client_without_trailers_gets_a_plain_end(proxy_port, h2_clients):
    client = await h2_clients(await proxy_port(chunked_pod_without_trailers))
    response = await client.get("/t")
    assert response.status == 200 and response.reset is None
    assert bytes(response.body) == b"".join(BODY_PIECES) and response.trailers == []


async def test_http11_client_with_te_trailers_gets_the_trailer_section(proxy_port):
    port = await proxy_port(chunked_pod_with_trailers)
    reader, writer = await connect(port)
    try:
        for _ in range(2):  # keep-alive on both sides: the trailer section ends the message cleanly
            writer.write(b"GET /t HTTP/1.1\r\nHost: app.example\r\nTE: trailers\r\n\r\n")
            answer = await read_grpc_answer(reader)
            assert answer.status == 200 and answer.headers.get("transfer-encoding") == "chunked"
            assert answer.body == b"".join(BODY_PIECES)
            assert answer.trailers == {"x-checksum": "abc123", "grpc-status": "0"}
    finally:
        writer.close()


async def test_http11_client_without_te_trailers_gets_the_body_without_them(proxy_port):
    port = await proxy_port(chunked_pod_with_trailers)
    reader, writer = await connect(port)
    try:
        for _ in range(2):
            writer.write(b"GET /t HTTP/1.1\r\nHost: app.example\r\n\r\n")
            answer = await read_grpc_answer(reader)
            assert answer.status == 200 and answer.body == b"".join(BODY_PIECES)
            assert answer.trailers == {}
        writer.write(b"GET /t HTTP/1.1\r\nHost: app.example\r\n\r\n")
        assert (await read_response(reader)).status == 200  # the connection is still in step
    finally:
        writer.close()


async def test_h2_pods_trailers_reach_an_h2_client_that_sent_no_te(make_proxy, make_h2_pod, h2_clients):
    """HTTP/2 can always carry trailers (RFC 9113 8.1): no TE: trailers needed from an HTTP/2 client."""
    pod = await make_h2_pod()
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [(pod.host, pod.port)], protocol=HTTP2)])
    client = await h2_clients(proxy.port)
    response = await client.get("/trailers")
    assert response.status == 200 and bytes(response.body) == b"some body"
    assert response.trailers == [(b"x-checksum", b"abc"), (b"grpc-status", b"0")]
    assert "te" not in pod.seen[-1]  # the client did not ask; nothing was asked of the pod for it
