"""Routing, round robin, keep-alive reuse and header rewriting, through real sockets."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from proxy.routing.model import PATH_EXACT
from server_harness import (
    Rule,
    cluster,
    connect,
    encode_request,
    read_head,
    read_request,
    read_response,
    request,
)

APP = "default/app:80"
ADMIN = "default/admin:80"
PUBLIC = "default/public:80"


async def test_routes_by_host_and_path_to_the_right_pod(make_proxy, make_pods):
    app, admin, public = await make_pods("app", "admin", "public")
    proxy = await make_proxy()
    proxy.publish(
        [
            Rule("example.com", "/", APP),
            Rule("example.com", "/admin", ADMIN),
            Rule("example.com", "/public", PUBLIC),
            Rule("other.com", "/exact", PUBLIC, PATH_EXACT),
        ],
        [cluster(APP, [app.endpoint]), cluster(ADMIN, [admin.endpoint]), cluster(PUBLIC, [public.endpoint])],
    )
    cases = [
        ("example.com", "/", "app"),
        ("example.com", "/admin/x", "admin"),
        ("EXAMPLE.com:8080", "/public", "public"),
        ("example.com", "/publicity", "app"),  # Prefix matches whole segments only
        ("other.com", "/exact", "public"),
    ]
    for host, path, pod in cases:
        response = await request(proxy.port, path, host=host)
        assert response.status == 200, (host, path, response.body)
        assert response.json()["pod"] == pod, (host, path)
    assert (await request(proxy.port, "/exact/more", host="other.com")).status == 404
    assert (await request(proxy.port, "/", host="unknown.com")).status == 404


async def test_round_robin_over_endpoints(make_proxy, make_pods):
    pods = await make_pods("a", "b", "c")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [p.endpoint for p in pods])])
    seen = [(await request(proxy.port, "/")).json()["pod"] for _ in range(9)]
    assert sorted(seen) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    # Strict rotation: each window of three consecutive requests hits every pod once.
    assert all(len(set(seen[i : i + 3])) == 3 for i in range(0, 9, 3))


async def test_keep_alive_connections_are_reused(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    for _ in range(20):
        assert (await request(proxy.port, "/")).status == 200
    assert pod.requests == 20
    assert len(pod.peers) == 1  # one upstream connection served every request
    assert proxy.upstreams[APP].idle_connections() == 1
    # Concurrent requests open more connections; afterwards they are all idle in the pool.
    async with aiohttp.ClientSession() as session:
        async def one() -> int:
            async with session.get(proxy.url("/slow?delay=0.2"), headers={"Host": "x"}) as r:
                await r.read()
                return r.status

        assert await asyncio.gather(*(one() for _ in range(5))) == [200] * 5
    assert 2 <= len(pod.peers) <= 6
    assert proxy.upstreams[APP].idle_connections() == len(pod.peers)


async def test_idle_limit_per_endpoint_closes_surplus_connections(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy(upstream_keepalive=2)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    async with aiohttp.ClientSession() as session:
        async def one() -> int:
            async with session.get(proxy.url("/slow?delay=0.2")) as r:
                await r.read()
                return r.status

        assert await asyncio.gather(*(one() for _ in range(6))) == [200] * 6
    assert len(pod.peers) == 6
    assert proxy.upstreams[APP].idle_connections() == 2


async def test_request_line_and_headers_are_preserved(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    sent = [
        ("X-Multi", "one"),
        ("Accept", "text/plain"),
        ("X-Multi", "two"),
        ("Cookie", "a=1"),
        ("X-Multi", "three"),
    ]
    response = await request(proxy.port, "/some/path?b=2&a=1&a=3", host="Example.COM:81", method="PATCH",
                             headers=sent, body=b"payload")
    data = response.json()
    assert data["method"] == "PATCH"
    assert data["path"] == "/some/path?b=2&a=1&a=3"
    assert data["body"] == "payload"
    headers = data["headers"]
    assert headers[0] == ["Host", "Example.COM:81"]
    forwarded = [h for h in headers if h[0] in ("X-Multi", "Accept", "Cookie")]
    assert forwarded == [list(h) for h in sent]  # order and duplicates kept


async def test_forwarded_headers(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])

    def values(data: dict, name: str) -> list[str]:
        return [v for k, v in data["headers"] if k.lower() == name.lower()]

    data = (await request(proxy.port, "/", host="shop.example.com:8443")).json()
    assert values(data, "X-Forwarded-For") == ["127.0.0.1"]
    assert values(data, "X-Real-IP") == ["127.0.0.1"]
    assert values(data, "X-Forwarded-Proto") == ["http"]
    assert values(data, "X-Forwarded-Host") == ["shop.example.com:8443"]
    assert values(data, "X-Forwarded-Port") == [str(proxy.port)]

    spoofed = [
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-For", "10.0.0.2, 10.0.0.3"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.com"),
        ("X-Forwarded-Port", "1"),
        ("X-Real-IP", "1.2.3.4"),
    ]
    data = (await request(proxy.port, "/", headers=spoofed)).json()
    assert values(data, "X-Forwarded-For") == ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]
    assert values(data, "X-Forwarded-Proto") == ["http"]
    assert values(data, "X-Forwarded-Host") == ["example.com"]
    assert values(data, "X-Forwarded-Port") == [str(proxy.port)]
    assert values(data, "X-Real-IP") == ["127.0.0.1"]


async def test_request_id_generated_kept_and_returned(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    ids = set()
    for _ in range(3):
        response = await request(proxy.port, "/")
        returned = response.header("X-Request-ID")
        assert returned and re.fullmatch(r"[0-9a-f]{32}", returned)
        upstream_saw = [v for k, v in response.json()["headers"] if k == "X-Request-ID"]
        assert upstream_saw == [returned]
        ids.add(returned)
    assert len(ids) == 3
    response = await request(proxy.port, "/", headers=[("X-Request-ID", "client-id-123")])
    assert response.header("X-Request-ID") == "client-id-123"
    assert [v for k, v in response.json()["headers"] if k == "X-Request-ID"] == ["client-id-123"]
    assert len(response.header_all("X-Request-ID")) == 1


async def test_hop_by_hop_headers_dropped_in_both_directions(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    hop = [
        ("Connection", "keep-alive, X-Private"),
        ("X-Private", "secret"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "X-T"),
        ("Upgrade", "h2c"),
        ("X-Kept", "yes"),
    ]
    data = (await request(proxy.port, "/", headers=hop)).json()
    names = {k.lower() for k, _ in data["headers"]}
    for dropped in ("connection", "x-private", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"):
        assert dropped not in names, dropped
    assert "x-kept" in names

    response = await request(proxy.port, "/hop")
    assert response.status == 200 and response.body == b"hop"
    names = {k.lower() for k, _ in response.headers}
    for dropped in ("x-secret", "keep-alive", "proxy-connection", "trailer", "upgrade"):
        assert dropped not in names, dropped
    assert response.header("Connection") is None
    assert response.header_all("Set-Cookie") == ["a=1", "b=2"]


async def test_path_is_normalized_before_matching_and_forwarding(make_proxy, make_pods):
    admin, public = await make_pods("admin", "public")
    proxy = await make_proxy()
    proxy.publish(
        [Rule("", "/public", PUBLIC), Rule("", "/admin", ADMIN, PATH_EXACT)],
        [cluster(ADMIN, [admin.endpoint]), cluster(PUBLIC, [public.endpoint])],
    )
    for raw in ("/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin", "//public/./../admin"):
        response = await request(proxy.port, raw + "?q=%2e1")
        assert response.status == 200, raw
        data = response.json()
        assert data["pod"] == "admin", raw
        assert data["path"] == "/admin?q=%2e1", raw  # the matched path is what is forwarded, query untouched
    assert public.requests == 0
    response = await request(proxy.port, "/public//a/./b")
    assert response.json()["path"] == "/public/a/b"
    for bad in ("/../etc/passwd", "/public/%zz", "/a%00b"):
        response = await request(proxy.port, bad)
        assert response.status == 400, bad
        assert b"request id: " in response.body
    assert public.requests == 1


async def test_absolute_form_request_target_uses_its_authority(make_proxy, make_pods):
    app, admin = await make_pods("app", "admin")
    proxy = await make_proxy()
    proxy.publish(
        [Rule("a.example", "/", APP), Rule("b.example", "/", ADMIN)],
        [cluster(APP, [app.endpoint]), cluster(ADMIN, [admin.endpoint])],
    )
    response = await request(proxy.port, "http://b.example/x?y=1", host="a.example")
    data = response.json()
    assert data["pod"] == "admin"
    assert data["path"] == "/x?y=1"
    assert [v for k, v in data["headers"] if k.lower() == "host"] == ["b.example"]


async def test_pipelined_requests_are_answered_in_order(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    reader, writer = await connect(proxy.port)
    batch = b"".join(
        [
            encode_request("/slow?delay=0.2"),
            encode_request("/one", method="POST", body=b"first-body"),
            encode_request("/two"),
            encode_request("/three", headers=[("Transfer-Encoding", "chunked")], method="POST")
            + b"5\r\nhello\r\n0\r\n\r\n",
        ]
    )
    writer.write(batch)
    paths = []
    for _ in range(4):
        response = await read_response(reader)
        assert response.status == 200
        paths.append((response.json()["path"], response.json()["body"]))
    assert paths == [("/slow?delay=0.2", ""), ("/one", "first-body"), ("/two", ""), ("/three", "hello")]
    writer.close()


async def test_http10_and_connection_close(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    # HTTP/1.0 without Host: routed to the host-less rules, answered, then closed.
    reader, writer = await connect(proxy.port)
    writer.write(b"GET /ten HTTP/1.0\r\n\r\n")
    response = await read_response(reader)
    assert response.status == 200 and response.json()["path"] == "/ten"
    # ... and forwarded with a Host an HTTP/1.1 upstream accepts: the Service's cluster DNS name
    assert [v for k, v in response.json()["headers"] if k.lower() == "host"] == ["app.default.svc"]
    assert await reader.read() == b""
    writer.close()
    # HTTP/1.0 keep-alive is honoured for a response with a known length.
    reader, writer = await connect(proxy.port)
    writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    response = await read_response(reader)
    assert response.header("Connection") == "keep-alive"
    writer.write(b"GET /b HTTP/1.0\r\n\r\n")
    assert (await read_response(reader)).json()["path"] == "/b"
    assert await reader.read() == b""
    writer.close()
    # ... and with Proxy-Connection: keep-alive (which the parser reads as Connection), still answered as HTTP/1.0:
    # kept alive with no Connection header, a request is taken for HTTP/1.1 without asking the parser its version.
    reader, writer = await connect(proxy.port)
    writer.write(b"GET /p HTTP/1.0\r\nHost: h\r\nProxy-Connection: keep-alive\r\n\r\n")
    response = await read_response(reader)
    assert response.json()["path"] == "/p" and response.header("Connection") == "keep-alive"
    writer.write(b"GET /q HTTP/1.0\r\nHost: h\r\n\r\n")
    assert (await read_response(reader)).json()["path"] == "/q"
    assert await reader.read() == b""
    writer.close()
    # Connection: close on HTTP/1.1.
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/c", headers=[("Connection", "close")]))
    response = await read_response(reader)
    assert response.header("Connection") == "close"
    assert await reader.read() == b""
    writer.close()


async def test_expect_100_continue_is_forwarded(make_proxy, make_backend):
    async def handler(reader, writer):
        line, headers = await read_head(reader)
        assert headers.get("expect") == "100-continue"
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(int(headers["content-length"]))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        await reader.read()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    async with asyncio.timeout(5):
        interim = await reader.readuntil(b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
    writer.write(b"data")
    response = await read_response(reader)
    assert response.status == 200 and response.body == b"data"
    writer.close()


async def test_head_204_and_304_have_no_body_and_keep_the_connection(make_proxy, make_backend):
    async def handler(reader, writer):
        while True:
            line, headers = await read_head(reader)
            if line.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n")
            elif b"/204" in line:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif b"/304" in line:
                writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/", method="HEAD"))
    response = await read_response(reader, head=True)
    assert response.status == 200 and response.header("Content-Length") == "1234"
    for path, status in (("/204", 204), ("/304", 304), ("/", 200)):
        writer.write(encode_request(path))
        response = await read_response(reader)
        assert response.status == status
        assert response.body == (b"ok" if status == 200 else b"")
    writer.write(encode_request("/", method="HEAD"))
    assert (await read_response(reader, head=True)).status == 200
    writer.write(encode_request("/"))
    assert (await read_response(reader)).body == b"ok"
    assert backend.connections == 1  # every exchange above reused one upstream connection
    writer.close()


async def test_upstream_sees_one_request_per_exchange_with_http11(make_proxy, make_backend):
    seen = []

    async def handler(reader, writer):
        while True:
            line, headers, body = await read_request(reader)
            seen.append((line, headers))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [backend.endpoint])])
    reader, writer = await connect(proxy.port)
    writer.write(b"GET /old HTTP/1.0\r\nHost: h\r\n\r\n")
    assert (await read_response(reader)).status == 200
    writer.close()
    line, headers = seen[0]
    assert line == b"GET /old HTTP/1.1"
    assert "connection" not in headers


async def test_answer_before_the_request_body_is_in_closes_the_connection(make_proxy, make_pods):
    """An upstream that answers an upload early (nginx `return 413`) leaves body bytes unread:
    the client must be told `Connection: close` instead of sending its next request into a close."""
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    reader, writer = await connect(proxy.port)
    head = encode_request("/status/413", method="POST", headers=[("Content-Length", str(1 << 20))])
    writer.write(head + b"x" * 1024)  # the rest of the body never comes
    response = await read_response(reader)
    assert response.status == 413
    assert (response.header("Connection") or "").lower() == "close"
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    # A request with its whole body still keeps the connection alive.
    reader, writer = await connect(proxy.port)
    writer.write(encode_request("/one", method="POST", body=b"whole"))
    response = await read_response(reader)
    assert response.status == 200 and response.header("Connection") is None
    writer.write(encode_request("/two"))
    assert (await read_response(reader)).status == 200
    writer.close()
