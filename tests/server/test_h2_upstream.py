"""HTTP/2 to pods (issue 13, upstream half): HTTP/1.1 clients → the proxy → h2c pods and a real grpcio server.

Until the proxy speaks HTTP/2 to clients, gRPC calls are made the spec-valid HTTP/1.1 way: a POST with
Content-Type application/grpc, `TE: trailers` and length-prefixed messages; the pod's trailers come back as
the chunked body's trailer fields. Behaviour reproduced:

- ingress-nginx test/e2e/annotations/backendprotocol.go "should set backend protocol to grpc:// and use
  grpc_pass" (GRPC, GRPCS) and test/e2e/annotations/grpc.go (gRPC through the controller; headers and
  metadata reach the backend, grpc-status comes back);
- Gateway API conformance HTTPRouteBackendProtocolH2C (a Service port with appProtocol kubernetes.io/h2c is
  spoken to in h2c);
- gRPC's PROTOCOL-HTTP2.md (trailers-only responses, grpc-timeout) and http-grpc-status-mapping.md (the
  proxy's own errors as gRPC statuses: no route 12, no endpoints / connect failure 14, timeout 4, HTTP 200).
Every wait is bounded (server_harness.TIMEOUT).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from backend_pods import Pki, server_context
from h2_pods import H2Pod, grpc_call
from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.policies import HTTP2
from proxy.settings import Settings
from server_harness import Proxy, Rule, cluster, connect, logged_lines, read_response, request, wait_until
from test_nginx_annotations import ingress

GRPC_KEY = "default/grpc:50051"
H2_KEY = "default/h2:80"




def serve_h2(proxy: Proxy, key: str, host: str, port: int) -> None:
    proxy.publish([Rule("", "/", key)], [cluster(key, [(host, port)], protocol=HTTP2)])


# ------------------------------------------------------------------ gRPC through a real grpcio server


async def test_unary_call_with_trailers(make_proxy, grpc_pod):
    """grpc.go: a unary call through the proxy; the message and grpc-status 0 come back (as chunked trailers to an
    HTTP/1.1 client that sent TE: trailers)."""
    proxy = await make_proxy()
    serve_h2(proxy, GRPC_KEY, grpc_pod.host, grpc_pod.port)
    answer = await grpc_call(proxy.port, "Unary", b"hello")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/grpc")
    assert answer.headers["transfer-encoding"] == "chunked"
    assert answer.messages == [b"echo:hello"]
    assert answer.grpc_status == "0"
    assert "grpc-status" in answer.trailers


async def test_a_grpc_error_status_and_message_are_carried(make_proxy, grpc_pod):
    """PROTOCOL-HTTP2.md: the pod's status and message arrive as trailers."""
    proxy = await make_proxy()
    serve_h2(proxy, GRPC_KEY, grpc_pod.host, grpc_pod.port)
    answer = await grpc_call(proxy.port, "Unary", b"fail:no such thing")
    assert answer.status == 200
    assert answer.grpc_status == "9"  # FAILED_PRECONDITION
    assert answer.grpc_message == "no such thing"


async def test_a_trailers_only_answer_from_the_pod(make_proxy, grpc_pod):
    """PROTOCOL-HTTP2.md "Trailers-Only": a method the pod does not know is answered with one HEADERS frame
    (grpc-status 12); an HTTP/1.1 client gets it as a head with Content-Length 0, then the next answer on the
    same connection."""
    proxy = await make_proxy()
    serve_h2(proxy, GRPC_KEY, grpc_pod.host, grpc_pod.port)
    from h2_pods import SERVICE, frame, read_grpc_answer

    reader, writer = await connect(proxy.port)
    try:
        for method, expected in (("Nope", "12"), ("Unary", "0")):
            body = frame(b"m")
            writer.write(f"POST /{SERVICE}/{method} HTTP/1.1\r\nHost: g\r\nContent-Type: application/grpc\r\n"
                         f"TE: trailers\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            answer = await read_grpc_answer(reader)
            assert answer.status == 200 and answer.grpc_status == expected
        assert answer.messages == [b"echo:m"]
    finally:
        writer.close()


async def test_server_streaming(make_proxy, grpc_pod):
    proxy = await make_proxy()
    serve_h2(proxy, GRPC_KEY, grpc_pod.host, grpc_pod.port)
    answer = await grpc_call(proxy.port, "ServerStream", b"5")
    assert answer.messages == [b"item-%d" % i for i in range(5)]
    assert answer.grpc_status == "0"


async def test_client_streaming_with_a_chunked_request_body(make_proxy, grpc_pod):
    """The request body is streamed (chunked from the client, DATA frames to the pod), one message per chunk."""
    proxy = await make_proxy()
    serve_h2(proxy, GRPC_KEY, grpc_pod.host, grpc_pod.port)
    answer = await grpc_call(proxy.port, "ClientStream", b"a", b"b", b"c", chunked=True)
    assert answer.messages == [b"a+b+c"]
    assert answer.grpc_status == "0"


async def test_grpc_timeout_bounds_the_upstream_request(make_proxy, grpc_pod):
    """PROTOCOL-HTTP2.md grpc-timeout: forwarded, and the proxy ends the call with DEADLINE_EXCEEDED (4) once it
    passes, whether or not the pod answers in time."""
    proxy = await make_proxy()
    serve_h2(proxy, GRPC_KEY, grpc_pod.host, grpc_pod.port)
    answer = await grpc_call(proxy.port, "Unary", b"sleep:2", headers=(("grpc-timeout", "200m"),))
    assert answer.status == 200
    assert answer.grpc_status == "4"


async def test_many_concurrent_calls_share_one_pod_connection(make_proxy, make_h2_pod):
    """One multiplexed connection per pod: 40 concurrent requests, one TCP connection, several streams at once."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    answers = await asyncio.gather(*(request(proxy.port, f"/hold/{i}", method="POST", body=b"x") for i in range(40)),
                                   _release_when(pod, lambda: pod.requests >= 40))
    assert all(answer.status == 200 for answer in answers[:-1])
    assert pod.connections == 1
    assert pod.most_streams == 40


async def _release_when(pod: H2Pod, predicate: Callable[[], bool]) -> None:
    await wait_until(predicate)
    pod.release.set()


# ------------------------------------------------------------------ the h2c echo pod: translation, limits


async def test_request_translation(make_proxy, make_h2_pod):
    """HTTP/1.1 → HTTP/2: pseudo-headers from the request line and Host, hop-by-hop fields dropped, the body as
    DATA; the answer comes back with its own length."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    answer = await request(proxy.port, "/echo/x?q=1", host="app.example", method="PUT", body=b"payload",
                           headers=[("Keep-Alive", "timeout=5"), ("X-Custom", "yes"), ("Connection", "keep-alive")])
    assert answer.status == 200
    echoed = answer.json()
    headers = echoed["headers"]
    assert (headers[":method"], headers[":scheme"], headers[":authority"], headers[":path"]) == (
        "PUT", "http", "app.example", "/echo/x?q=1")
    assert headers["x-custom"] == "yes"
    assert "keep-alive" not in headers and "connection" not in headers and "host" not in headers
    assert "te" not in headers  # the client did not ask for trailers and this is no gRPC call
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert echoed["body"] == "payload"
    assert answer.header("x-pod") == pod.host


async def test_keep_alive_clients_get_whole_answers(make_proxy, make_h2_pod):
    """Several requests on one client connection: each answer is framed whole (the pod ends its streams with an
    empty DATA frame, which must not become the chunked body's last chunk early)."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    reader, writer = await connect(proxy.port)
    try:
        for index in range(3):
            writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n%d" % index)
            answer = await read_response(reader)
            assert answer.status == 200 and answer.json()["body"] == str(index)
    finally:
        writer.close()
    assert pod.connections == 1


async def test_trailers_only_for_clients_that_accept_them(make_proxy, make_h2_pod):
    """A pod's trailers reach an HTTP/1.1 client as chunked trailers when it sent TE: trailers, else are dropped."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    from h2_pods import read_grpc_answer  # the harness's reader drops trailers

    for te, expected in ((True, {"x-checksum": "abc", "grpc-status": "0"}), (False, {})):
        reader, writer = await connect(proxy.port)
        try:
            writer.write(b"GET /trailers HTTP/1.1\r\nHost: a\r\n" + (b"TE: trailers\r\n" if te else b"") + b"\r\n")
            answer = await read_grpc_answer(reader)
        finally:
            writer.close()
        assert answer.body == b"some body"
        assert answer.trailers == expected
    assert pod.seen[0].get("te") == "trailers" and "te" not in pod.seen[1]


async def test_the_pods_stream_limit_is_kept(make_proxy, make_h2_pod):
    """SETTINGS_MAX_CONCURRENT_STREAMS from the pod: never more streams open at once on a connection; requests
    over it wait for a slot (or a further connection, at most h2_pool.MAX_CONNECTIONS) and all are answered."""
    proxy = await make_proxy()
    pod = await make_h2_pod(max_streams=2)
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    answers = await asyncio.gather(*(request(proxy.port, f"/hold/{i}") for i in range(12)),
                                   _release_when(pod, lambda: pod.requests >= 8))
    assert all(answer.status == 200 for answer in answers[:-1])
    assert pod.most_streams == 2
    assert pod.connections <= 4


async def test_goaway_from_the_pod_sends_unprocessed_streams_again(make_proxy, make_h2_pod):
    """GOAWAY (RFC 9113 6.8): a stream above the last-stream-id was not processed; the proxy sends it again on a
    new connection, so the client never sees it, even for a POST."""
    proxy = await make_proxy()
    pod = await make_h2_pod(goaway_on=2)
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    first = await request(proxy.port, "/echo/1", method="POST", body=b"one")
    second = await request(proxy.port, "/echo/2", method="POST", body=b"two")
    assert (first.status, second.status) == (200, 200)
    assert second.json()["body"] == "two"
    assert pod.connections == 2


async def test_a_stream_up_to_the_pods_goaway_last_stream_id_completes(make_proxy, make_h2_pod):
    """GOAWAY (RFC 9113 6.8): streams up to the last-stream-id may still complete: the pod's answer after its
    graceful GOAWAY reaches the client (h2 alone would have closed the connection's state and lost it); the next
    request goes on a new connection."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    answer = await request(proxy.port, "/drain/1", method="POST", body=b"last")
    assert answer.status == 200 and answer.json()["body"] == "last"
    assert (await request(proxy.port, "/echo/2")).status == 200
    assert pod.connections == 2


async def test_refused_streams_are_sent_again_a_bounded_number_of_times(make_proxy, make_h2_pod):
    """RST_STREAM REFUSED_STREAM (RFC 9113 8.7: the request was not processed): sent again, even a POST; a pod
    that refuses every time gets the request three times in all, then the client gets 502."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    pod.refuse_first = 1
    answer = await request(proxy.port, "/refuse-once", method="POST", body=b"again")
    assert answer.status == 200 and answer.json()["body"] == "again" and pod.refused == 1
    pod.refuse_first, pod.refused = -1, 0
    answer = await request(proxy.port, "/refuse-always")
    assert answer.status == 502 and pod.refused == 3


async def test_a_client_going_away_resets_its_stream(make_proxy, make_h2_pod):
    """RST_STREAM (CANCEL) when the client side goes away; the connection stays for the others."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    reader, writer = await connect(proxy.port)
    writer.write(b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
    await wait_until(lambda: pod.requests == 1)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()  # a reset (a FIN alone is a half-close: the proxy still answers, as nginx does)
    await wait_until(lambda: pod.resets == [0x8])  # CANCEL
    answer = await request(proxy.port, "/echo")
    assert answer.status == 200
    assert pod.connections == 1


async def test_a_slow_client_pauses_only_its_own_stream(make_proxy, make_h2_pod):
    """Flow control per stream: a client that stops reading a large download stops its stream's window; another
    request on the same pod connection is answered meanwhile."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    slow_reader, slow_writer = await connect(proxy.port, rcvbuf=16384)
    size = 8 << 20  # over the stream window plus every socket and transport buffer on the way
    slow_writer.write(b"GET /big?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
    await wait_until(lambda: pod.held_back > 0)  # the proxy stopped giving the slow stream's window back
    answer = await request(proxy.port, "/big?n=100000")
    assert answer.status == 200 and len(answer.body) == 100000
    assert pod.connections == 1 and pod.held_back > 0
    response = await read_response(slow_reader)  # reading again gives the window back: the download completes
    assert len(response.body) == size
    slow_writer.close()


async def test_a_mirror_to_an_http2_backend_gets_its_copy(make_proxy, make_pods, make_h2_pod):
    """Gateway API RequestMirror (conformance HTTPRouteRequestMirror) to a backend spoken to in HTTP/2: the copy
    reaches the h2c pod, its answer is read and dropped, the client's answer comes from the main backend."""
    from proxy.http import mirror
    from proxy.routing.filters import Mirror, compose
    from proxy.routing.model import KIND_HTTP_ROUTE, Route
    from proxy.routing.table import RouteTable, VirtualHost

    [main] = await make_pods("main")
    pod = await make_h2_pod()
    proxy = await make_proxy()
    route = Route("default", "r", "m.test", "/", "Prefix", kind=KIND_HTTP_ROUTE, cluster="default/main:80",
                  filters=compose([Mirror(H2_KEY)]))
    answered = mirror.STATS.answered
    proxy.publish_table(RouteTable(hosts={"m.test": VirtualHost(prefix={"": route})}),
                        [cluster("default/main:80", [main.endpoint]),
                         cluster(H2_KEY, [(pod.host, pod.port)], protocol=HTTP2)])
    answer = await request(proxy.port, "/copied", host="m.test", method="POST", body=b"payload")
    assert answer.status == 200 and answer.header("X-Pod") == "main"
    await wait_until(lambda: mirror.STATS.answered == answered + 1)
    assert pod.seen[0][":path"] == "/copied"
    await wait_until(lambda: mirror.STATS.in_flight == 0)


async def test_an_upload_waits_for_the_pods_window(make_proxy, make_h2_pod):
    """Flow control of request bodies (RFC 9113 6.9): the proxy sends no more than the pod's window (65,535 bytes,
    the default) and stops reading the client meanwhile; once the pod gives its window back, the rest follows."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    pod.hold_window = True
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    size = 32 << 20  # more than every socket buffer on the way could hold
    reader, writer = await connect(proxy.port, sndbuf=65536)

    async def upload() -> None:
        writer.write(b"PUT /count HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"u" * 65536)
            await writer.drain()

    sending = asyncio.ensure_future(upload())
    try:
        await wait_until(lambda: pod.received == 65535)
        assert not sending.done()  # held by the proxy (which sends nothing past the window) and the sockets
        assert pod.received == 65535
        pod.release_window()
        answer = await read_response(reader)
        assert answer.status == 200 and answer.json()["received"] == size
        await sending
    finally:
        sending.cancel()
        writer.close()


# ------------------------------------------------------------------ the proxy's own answers to gRPC requests


async def test_proxy_errors_are_grpc_errors(make_proxy):
    """http-grpc-status-mapping.md, with Envoy's timeouts: no route → 12 UNIMPLEMENTED, no endpoints and connect
    failures → 14 UNAVAILABLE; HTTP 200, no body (trailers-only)."""
    proxy = await make_proxy(upstream_connect_timeout=2.0)
    proxy.publish([Rule("grpc.example", "/test.Echo/Unary", "default/none:1"),
                   Rule("grpc.example", "/test.Echo/ClientStream", "default/refused:1")],
                  [cluster("default/none:1", [], protocol=HTTP2),
                   cluster("default/refused:1", [("127.0.0.8", 9)], protocol=HTTP2)])
    answer = await grpc_call(proxy.port, "ServerStream", b"1")
    assert (answer.status, answer.grpc_status, answer.body) == (200, "12", b"")
    answer = await grpc_call(proxy.port, "Unary", b"1")
    assert (answer.status, answer.grpc_status) == (200, "14")
    assert "no ready endpoints" in (answer.grpc_message or "")
    answer = await grpc_call(proxy.port, "ClientStream", b"1")
    assert (answer.status, answer.grpc_status) == (200, "14")
    plain = await request(proxy.port, "/nothing", host="grpc.example")  # not gRPC: the usual page
    assert plain.status == 404 and plain.header("grpc-status") is None


async def test_a_grpc_answer_the_pod_breaks_off_ends_with_a_grpc_error(make_proxy, make_h2_pod):
    """A gRPC answer already begun when the pod resets its stream: the client gets what came, then trailers with
    grpc-status 14 (UNAVAILABLE, as for the 502 it would have been), a complete answer rather than a cut
    connection; an HTTP/1.1 request without gRPC gets the cut, as before."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    from h2_pods import frame, read_grpc_answer, unframe

    reader, writer = await connect(proxy.port)
    try:
        body = frame(b"x")
        writer.write(b"POST /partial HTTP/1.1\r\nHost: a\r\nContent-Type: application/grpc\r\nTE: trailers\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = await read_grpc_answer(reader)
    finally:
        writer.close()
    assert answer.status == 200 and unframe(answer.body) == [b"first"]
    assert answer.grpc_status == "14" and "closed" in (answer.grpc_message or "")
    with pytest.raises(ConnectionError):
        await request(proxy.port, "/partial")


async def test_an_upstream_timeout_is_deadline_exceeded(make_proxy, make_h2_pod):
    """A pod that does not answer within the read timeout: 504 for HTTP, grpc-status 4 for gRPC."""
    proxy = await make_proxy(upstream_read_timeout=0.3)
    pod = await make_h2_pod()
    serve_h2(proxy, H2_KEY, pod.host, pod.port)
    reader, writer = await connect(proxy.port)
    from h2_pods import frame, read_grpc_answer

    try:
        body = frame(b"x")
        writer.write(b"POST /hang HTTP/1.1\r\nHost: a\r\nContent-Type: application/grpc+proto\r\nTE: trailers\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = await read_grpc_answer(reader)
    finally:
        writer.close()
    assert (answer.status, answer.grpc_status) == (200, "4")


async def test_access_log_and_metrics_count_http2_requests(make_proxy, grpc_pod):
    """The access log and the route's series see requests to HTTP/2 pods like any other: the pod's address, the
    status, bytes; the pod's grpc-status and a proxy-made gRPC error (logged as what was sent, HTTP 200, with its
    reason) are the line's grpc_status (Envoy's %GRPC_STATUS%)."""
    proxy = await make_proxy()
    with logged_lines(proxy) as lines:
        serve_h2(proxy, GRPC_KEY, grpc_pod.host, grpc_pod.port)
        assert (await grpc_call(proxy.port, "Unary", b"logged")).grpc_status == "0"
        proxy.publish([Rule("", "/", GRPC_KEY)], [cluster(GRPC_KEY, [], protocol=HTTP2)])
        assert (await grpc_call(proxy.port, "Unary", b"x")).grpc_status == "14"
    assert [(e["status"], e["upstream"], e["reason"], e["grpc_status"]) for e in lines] == [
        (200, f"{grpc_pod.host}:{grpc_pod.port}", None, 0), (200, None, "no-endpoints", 14)]  # 0: the pod's
    assert lines[0]["bytes_out"] > 0 and lines[0]["path"] == "/test.Echo/Unary"


async def test_grpc_to_an_http11_cluster_logs_the_grpc_status_its_client_got(make_proxy, make_backend, grpc_pod):
    """A gRPC call routed to an HTTP/1.1 cluster (no backend-protocol GRPC): the client gets the pod's HTTP/1.1
    answer as it is (its trailers as chunked trailers), and the access log's grpc_status says which gRPC status
    that is, as for HTTP/2 pods (Envoy's %GRPC_STATUS%: trailers, then the head, then gRPC's
    doc/http-grpc-status-mapping.md for the HTTP status): a grpc-status trailer, a trailers-only head, a 404
    (UNIMPLEMENTED, 12), a 200 that never says (UNKNOWN, 2). A grpcio pod, which speaks no HTTP/1.1, makes a broken
    answer: the proxy's own UNAVAILABLE (14). A request that is not gRPC logs null, TE: trailers or not."""
    from server_harness import read_request

    answers = {
        "/test.Echo/Trailer": b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n"
                              b"\r\n5\r\n\x00\x00\x00\x00\x00\r\n0\r\ngrpc-status: 5\r\n\r\n",
        "/test.Echo/Only": b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\ngrpc-status: 7\r\n"
                           b"Content-Length: 0\r\n\r\n",
        "/test.Echo/Missing": b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nno",
        "/test.Echo/Silent": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        "/plain": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    }

    async def handler(reader, writer):
        while True:
            try:
                line, _, _ = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(answers[line.split()[1].decode()])
            await writer.drain()

    backend = await make_backend(handler)
    proxy = await make_proxy()
    with logged_lines(proxy) as lines:
        proxy.publish([Rule("", "/", GRPC_KEY)], [cluster(GRPC_KEY, [backend.endpoint])])
        answer = await grpc_call(proxy.port, "Trailer", b"x")
        assert (answer.status, answer.grpc_status) == (200, "5")
        assert (await grpc_call(proxy.port, "Only", b"x")).grpc_status == "7"
        assert (await grpc_call(proxy.port, "Missing", b"x")).status == 404
        assert (await grpc_call(proxy.port, "Silent", b"x")).status == 200
        for te in ((), (("TE", "trailers"),)):
            assert (await request(proxy.port, "/plain", method="POST", headers=te)).status == 200
        proxy.publish([Rule("", "/", GRPC_KEY)], [cluster(GRPC_KEY, [(grpc_pod.host, grpc_pod.port)])])
        assert (await grpc_call(proxy.port, "Unary", b"x")).grpc_status == "14"
    assert [(e["path"], e["status"], e["grpc_status"]) for e in lines] == [
        ("/test.Echo/Trailer", 200, 5), ("/test.Echo/Only", 200, 7), ("/test.Echo/Missing", 404, 12),
        ("/test.Echo/Silent", 200, 2), ("/plain", 200, None), ("/plain", 200, None), ("/test.Echo/Unary", 200, 14)]


# ------------------------------------------------------------------ front ends: Ingress and HTTPRoute


async def test_backend_protocol_grpcs_is_h2_over_tls(make_proxy, make_h2_pod, tmp_path):
    """backendprotocol.go "should set backend protocol to grpcs:// and use grpc_pass": HTTP/2 over TLS, chosen by
    ALPN, without verification (ingress-nginx's default); the pod sees :scheme https."""
    proxy = await make_proxy()
    pod = await make_h2_pod(context=server_context(Pki(tmp_path, name="h2 pods").leaf("anything")))
    service, slices = _service("h2", 80, pod.port, pod.host)
    snap = Snapshot(ingresses={("default", "g"): ingress("g", "h2.example", ("/", "Prefix", "h2"),
                                                        backend_protocol="GRPCS")},
                    services={("default", "h2"): service}, endpoint_slices={("default", "h2"): slices})
    config = build(snap, proxy.settings)
    proxy.publish_config(config, list(config.clusters.values()))
    answer = await request(proxy.port, "/echo", host="h2.example")
    assert answer.status == 200, answer.body
    assert answer.json()["headers"][":scheme"] == "https"
    assert pod.connections == 1


async def test_a_tls_pod_without_h2_is_a_connect_failure(make_proxy, tmp_path):
    """GRPCS to a pod whose TLS does not offer h2 by ALPN: 502 (a connect failure), never HTTP/1.1 in disguise."""
    from backend_pods import HealthPod

    proxy = await make_proxy()
    pod = await HealthPod("h1", "127.0.0.9", context=server_context(Pki(tmp_path, name="h1 pods").leaf("x"))).start()
    try:
        service, slices = _service("h1", 80, pod.port, pod.host)
        snap = Snapshot(ingresses={("default", "g"): ingress("g", "h1.example", ("/", "Prefix", "h1"),
                                                            backend_protocol="GRPCS")},
                        services={("default", "h1"): service}, endpoint_slices={("default", "h1"): slices})
        config = build(snap, proxy.settings)
        proxy.publish_config(config, list(config.clusters.values()))
        answer = await request(proxy.port, "/", host="h1.example")
        assert answer.status == 502
    finally:
        await pod.stop()


def _service(name: str, port: int, target: int, host: str, app_protocol: str | None = None) -> tuple[dict, dict]:
    entry: dict[str, Any] = {"port": port, "protocol": "TCP", "targetPort": target, "name": "p"}
    if app_protocol:
        entry["appProtocol"] = app_protocol
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
               "spec": {"ports": [entry]}}
    slices = {f"{name}-1": {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
        "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
        "ports": [{"name": "p", "port": target, "protocol": "TCP"}]}}
    return service, slices


@pytest.mark.parametrize("protocol", ["GRPC", "H2C"])
async def test_backend_protocol_grpc_and_h2c_via_ingress(make_proxy, grpc_pod, make_h2_pod, protocol):
    """backendprotocol.go "should set backend protocol to grpc:// and use grpc_pass": an Ingress with
    backend-protocol GRPC reaches the gRPC pod in HTTP/2 (H2C: pyngress's name for the same on any HTTP/2 pod)."""
    proxy = await make_proxy()
    service, slices = _service("grpc", 80, grpc_pod.port, grpc_pod.host)
    snap = Snapshot(ingresses={("default", "g"): ingress("g", "grpc.example", ("/", "Prefix", "grpc"),
                                                        backend_protocol=protocol)},
                    services={("default", "grpc"): service}, endpoint_slices={("default", "grpc"): slices})
    config = build(snap, proxy.settings)
    assert all(c.policy is not None and c.policy.protocol == HTTP2 for c in config.clusters.values())
    proxy.publish_config(config, list(config.clusters.values()))
    answer = await grpc_call(proxy.port, "Unary", b"via-ingress")
    assert answer.messages == [b"echo:via-ingress"] and answer.grpc_status == "0"


async def test_app_protocol_h2c_via_httproute(make_proxy, make_h2_pod):
    """Gateway API HTTPRouteBackendProtocolH2C: the backend Service port's appProtocol kubernetes.io/h2c makes the
    proxy speak h2c (prior knowledge) to the pod."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    service, slices = _service("h2", 8081, pod.port, pod.host, app_protocol="kubernetes.io/h2c")
    gateway_class = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                     "metadata": {"name": "pyngress"}, "spec": {"controllerName": Settings().gateway_controller_name}}
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "gw", "namespace": "default"},
               "spec": {"gatewayClassName": "pyngress", "listeners": [{"name": "http", "port": 80,
                                                                       "protocol": "HTTP"}]}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "r", "namespace": "default"},
             "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "h2", "port": 8081}]}]}}
    snap = Snapshot(services={("default", "h2"): service}, endpoint_slices={("default", "h2"): slices},
                    gateway_classes={"pyngress": gateway_class}, gateways={("default", "gw"): gateway},
                    http_routes={("default", "r"): route})
    config = build(snap, Settings())  # (the gateway listener's own port is not the test proxy's: its cluster is)
    assert [c.protocol for c in config.clusters.values()] == [HTTP2]
    status = config.gateway_status.routes[("default", "r")].parents[0].conditions
    assert [(c.type, c.status) for c in status] == [("Accepted", "True"), ("ResolvedRefs", "True")]
    proxy.publish([Rule("", "/", "default/h2:8081")], list(config.clusters.values()))
    answer = await request(proxy.port, "/echo")
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["headers"][":path"] == "/echo"
    assert pod.connections == 1
