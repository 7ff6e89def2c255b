"""ingress-nginx's `proxy-request-buffering` end to end (test/e2e/annotations/proxy.go "should turn off
proxy-request-buffering"; configmap.md "proxy-request-buffering"; nginx's proxy_request_buffering): "on" reads the
whole body before the pod is dialed, "off" (pyngress's default) streams it as it comes."""

from __future__ import annotations

from typing import Any

from proxy.http import buffering
from server_harness import connect, read_response, wait_until
from test_nginx_annotations import ingress, serve

HOST = "buffer.foo.com"
BODY = b"x" * 4000


def exchanges_received(proxy: Any) -> list[int]:
    """Body bytes each open client connection's request has read so far (how far the proxy got)."""
    found = []
    for conn in proxy.server.connections:
        ex = getattr(conn, "active", None)
        if ex is not None:
            found.append(ex.received)
    return found


async def test_buffered_body_reaches_the_pod_only_when_complete(make_proxy, make_pods):
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("buffered", HOST, ("/", "Prefix", "echo"), proxy_request_buffering="on"))
    reader, writer = await connect(proxy.port)
    try:
        writer.write(b"POST /up HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                     + BODY[:1000])
        await wait_until(lambda: 1000 in exchanges_received(proxy))  # the proxy has read the first part
        assert echo.peers == set() and echo.requests == 0  # and has not dialed the pod
        writer.write(BODY[1000:])
        response = await read_response(reader)
        assert response.status == 200
        assert response.json()["body"] == BODY.decode()
    finally:
        writer.close()


async def test_chunked_buffered_body_and_its_limit(make_proxy, make_pods):
    """A chunked body is held too, and still bounded by proxy-body-size (413)."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], ingress("buffered", HOST, ("/", "Prefix", "echo"), proxy_request_buffering="ON",
                                 proxy_body_size="2k"))
    reader, writer = await connect(proxy.port)
    try:
        writer.write(b"POST /up HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3e8\r\n" + BODY[:1000] + b"\r\n")
        await wait_until(lambda: 1000 in exchanges_received(proxy))
        assert echo.requests == 0 and echo.peers == set()
        writer.write(b"5\r\nhello\r\n0\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 200 and response.json()["body"] == BODY[:1000].decode() + "hello"
        writer.write(b"POST /up HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"bb8\r\n" + b"y" * 3000 + b"\r\n0\r\n\r\n")
        assert (await read_response(reader)).status == 413
    finally:
        writer.close()
    assert echo.requests == 1


async def test_streamed_when_off_and_past_the_memory_bound(make_proxy, make_pods, monkeypatch):
    """"off" (and no annotation): the pod gets the request while the body still streams; "on" past
    REQUEST_BUFFER_LIMIT streams the rest (memory stays bounded)."""
    monkeypatch.setattr(buffering, "REQUEST_BUFFER_LIMIT", 2000)
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    for given in ({"proxy_request_buffering": "off"}, {}, {"proxy_request_buffering": "on"}):
        echo.requests = 0
        serve(proxy, [echo], ingress("route", HOST, ("/", "Prefix", "echo"), **given))
        reader, writer = await connect(proxy.port)
        try:
            sent = 2500 if given.get("proxy_request_buffering") == "on" else 1000
            writer.write(b"POST /up HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nContent-Length: %d\r\n\r\n"
                         % len(BODY) + BODY[:sent])
            await wait_until(lambda: echo.requests == 1)  # the pod's handler runs before the body is complete
            writer.write(BODY[sent:])
            response = await read_response(reader)
            assert response.status == 200 and response.json()["body"] == BODY.decode(), given
        finally:
            writer.close()
