"""The exporter's small HTTP/1.1 client against a raw server: every framing a collector may answer with."""

from __future__ import annotations

import asyncio

import pytest

from proxy.tracing.post import CollectorConnection, CollectorError

DEADLINE = 10.0


async def serve(answers: list[bytes]):
    """A server reading one request per answer (head and Content-Length body) and writing the answers in turn;
    it closes the connection after an HTTP/1.0 answer, one saying close, and a broken one (no "\r\n\r\n"
    ending its framing as announced). Returns (server, port, requests)."""
    requests: list[bytes] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                requests.append(head + await reader.readexactly(length))
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if answer.startswith((b"HTTP/1.0", b"SSH")) or b"Connection: close" in answer or answer.endswith(
                        (b"short", b"x\r\n\r\n")):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], requests


@pytest.mark.parametrize(("answer", "status"), [
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 2\r\n\r\n\x0a\x00", 200),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nok\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n", 200),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", 202),
    (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", 503),
    (b"HTTP/1.1 204 No Content\r\n\r\n", 204),
])
async def test_answers_are_read_and_the_connection_kept(answer, status):
    server, port, requests = await serve([answer, answer])
    connection = CollectorConnection("http", "127.0.0.1", port, "/v1/traces", timeout=DEADLINE)
    try:
        assert await asyncio.to_thread(connection.post, b"span bytes") == status
        assert await asyncio.to_thread(connection.post, b"more") == status
        assert len(requests) == 2  # one connection carried both
        assert requests[0].startswith(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
        assert b"Content-Type: application/x-protobuf\r\n" in requests[0] and requests[0].endswith(b"span bytes")
    finally:
        connection.close()
        server.close()


async def test_close_delimited_and_connection_close_answers_reconnect():
    answers = [b"HTTP/1.0 200 OK\r\n\r\nbody until close", b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
               b"Content-Length: 0\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]
    server, port, requests = await serve(answers)
    connection = CollectorConnection("http", "127.0.0.1", port, "/", timeout=DEADLINE)
    try:
        for _ in range(3):
            assert await asyncio.to_thread(connection.post, b"x") == 200
        assert len(requests) == 3
    finally:
        connection.close()
        server.close()


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
async def test_broken_answers_are_errors_and_the_next_post_reconnects(answer):
    server, port, _ = await serve([answer, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    connection = CollectorConnection("http", "127.0.0.1", port, "/", timeout=DEADLINE)
    try:
        with pytest.raises((CollectorError, OSError)):
            await asyncio.to_thread(connection.post, b"x")
        assert await asyncio.to_thread(connection.post, b"x") == 200
    finally:
        connection.close()
        server.close()
