"""HTTP/2 clients reach the same routes as HTTP/1.1 ones: h2c with prior knowledge and h2 by ALPN over TLS,
bodies both ways, many streams on one connection, the proxy's own answers, 421, the access log.

ingress-nginx serves HTTP/2 on its TLS port by default (docs/user-guide/nginx-configuration/configmap.md,
`use-http2`: "Enables or disables HTTP/2 support in secure connections", default true); its e2e suite checks
that a TLS client negotiates h2 (test/e2e/settings/tls.go uses an h2-capable client) and that
`use-http2: false` falls back to HTTP/1.1. h2c with prior knowledge is pyngress's own (issue 13).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import ssl

import pytest

from h2_client import H2Client
from proxy.tls.default import generate_default_certificate
from proxy.tls.store import CertStore, CertStoreHolder
from server_harness import Rule, cluster, read_response

APP = "default/app:80"


@pytest.fixture
async def proxy_and_pod(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    return proxy, pod


@pytest.fixture(scope="module")
def certificates():
    return generate_default_certificate(), generate_default_certificate()


def tls_holder(certificates) -> CertStoreHolder:
    """secure.example on its own certificate, every other name on the default one (as the controller builds)."""
    own, default = certificates
    return CertStoreHolder(CertStore({"secure.example": own}, default=default))


def client_context(alpn: tuple[str, ...] = ("h2", "http/1.1")) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    return context


async def test_h2c_get_reaches_the_pod_as_http11_with_the_authority_as_host(proxy_and_pod, h2_clients):
    proxy, _ = proxy_and_pod
    client = await h2_clients(proxy.port)
    response = await client.get("/echo?x=1", authority="app.example",
                                headers=[("x-custom", "v"), ("cookie", "a=1"), ("cookie", "b=2")])
    assert response.status == 200
    seen = response.json()
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert seen["path"] == "/echo?x=1" and seen["version"] == "1.1" and seen["method"] == "GET"
    assert headers["host"] == "app.example" and headers["x-custom"] == "v"
    assert headers["cookie"] == "a=1; b=2"  # crumbs joined for HTTP/1.1 (RFC 9113 8.2.3)
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-host"] == "app.example"
    assert response.header(b"x-request-id") == headers["x-request-id"].encode()
    assert response.header(b"x-pod") == b"a"


async def test_h2c_post_bodies_with_and_without_length(proxy_and_pod, h2_clients):
    proxy, _ = proxy_and_pod
    client = await h2_clients(proxy.port)
    body = bytes(range(256)) * 1024  # 256 KiB: several windows' worth
    with_length = client.request("/upload", method="POST", end=False, headers=[("content-length", str(len(body)))])
    await client.send_body(with_length, body)
    without_length = client.request("/upload", method="POST", end=False)
    await client.send_body(without_length, body)
    for stream_id, chunked in ((with_length, False), (without_length, True)):
        response = await client.response(stream_id)
        assert response.status == 200
        seen = response.json()
        assert seen["size"] == len(body) and seen["sha256"] == hashlib.sha256(body).hexdigest()
        assert seen["chunked"] is chunked  # no length: chunked to the HTTP/1.1 pod


async def test_many_concurrent_streams_on_one_connection(proxy_and_pod, h2_clients):
    proxy, pod = proxy_and_pod
    client = await h2_clients(proxy.port)
    ids = [client.request(f"/n/{index}") for index in range(100)]
    responses = await asyncio.gather(*(client.response(stream_id) for stream_id in ids))
    assert [r.status for r in responses] == [200] * 100
    assert [r.json()["path"] for r in responses] == [f"/n/{index}" for index in range(100)]
    assert proxy.server.active_connections == 1


async def test_large_download_and_head(proxy_and_pod, h2_clients):
    proxy, _ = proxy_and_pod
    client = await h2_clients(proxy.port)
    size = 3 * 1024 * 1024 + 7
    fixed, chunked = client.request(f"/download?size={size}"), client.request(f"/download?size={size}&chunked=1")
    for stream_id in (fixed, chunked):
        response = await client.response(stream_id)
        assert response.status == 200 and len(response.body) == size
    head = await client.get("/echo", method="HEAD")
    assert head.status == 200 and head.body == b"" and head.header(b"content-length") is not None


async def test_proxy_answers_on_a_stream_leave_the_connection_open(make_proxy, h2_clients):
    proxy = await make_proxy()
    proxy.publish([Rule("app.example", "/", APP)], [cluster(APP, [])])
    client = await h2_clients(proxy.port)
    missing = await client.get("/", authority="other.example")
    assert missing.status == 404 and b"request id: " in missing.body
    assert missing.header(b"content-type") == b"text/plain; charset=utf-8"
    empty = await client.get("/", authority="app.example")
    assert empty.status == 503
    assert (await client.get("/", authority="other.example")).status == 404  # same connection, still serving
    assert not client.closed.is_set()


async def test_tls_alpn_h2_and_http11_fallback(proxy_and_pod, certificates, h2_clients):
    proxy, _ = proxy_and_pod
    await proxy.server.start_https(tls_holder(certificates).server_context(), port=0)
    port = proxy.server.https_port
    client = await h2_clients(port, context=client_context(), server_hostname="app.example")
    assert client.writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    response = await client.get("/tls", scheme="https")
    assert response.status == 200
    headers = {name.lower(): value for name, value in response.json()["headers"]}
    assert headers["x-forwarded-proto"] == "https"
    assert response.header(b"strict-transport-security") is not None  # the HTTPS listener's HSTS
    # A client offering only http/1.1 gets HTTP/1.1 on the same listener.
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(("http/1.1",)),
                                                   server_hostname="app.example")
    assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    writer.write(b"GET /h1 HTTP/1.1\r\nHost: app.example\r\n\r\n")
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_misdirected_request_over_h2(proxy_and_pod, certificates, h2_clients):
    """421 when :authority is served by another certificate than the SNI's (as Host over HTTP/1.1; nginx answers
    421 the same way since 1.25 for HTTP/2 connection reuse across certificates)."""
    proxy, _ = proxy_and_pod
    holder = tls_holder(certificates)
    await proxy.server.start_https(holder.server_context(), port=0, certificates=holder)
    client = await h2_clients(proxy.server.https_port, context=client_context(), server_hostname="secure.example")
    assert (await client.get("/", authority="secure.example", scheme="https")).status == 200
    assert (await client.get("/", authority="other.example", scheme="https")).status == 421


async def test_access_log_says_http2(make_proxy, make_pods, h2_clients, capfd):
    (pod,) = await make_pods("a")
    proxy = await make_proxy(access_log=True)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    client = await h2_clients(proxy.port)
    response = await client.get("/logged", authority="log.example")
    assert response.status == 200
    request_id = response.header(b"x-request-id").decode()
    async with asyncio.timeout(10):
        while True:
            lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
            entry = next((line for line in lines if line["request_id"] == request_id), None)
            if entry is not None:
                break
            await asyncio.sleep(0.02)  # polling the log's writer thread, with the deadline above
    assert entry["protocol"] == "HTTP/2.0" and entry["host"] == "log.example" and entry["status"] == 200


async def test_http11_still_served_on_the_plain_listener(proxy_and_pod):
    """The preface sniffer hands every non-h2 connection to HTTP/1.1, even one whose first read is one byte."""
    proxy, _ = proxy_and_pod
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for byte in b"POST /slowly HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok":
        writer.write(bytes([byte]))
        await writer.drain()
    response = await read_response(reader)
    assert response.status == 200 and response.json()["body"] == "ok"
    writer.write(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await read_response(reader)).json()["path"] == "/again"
    writer.close()


async def test_no_http2_refuses_the_preface(make_proxy, make_pods):
    """--no-http2: the plain listener is HTTP/1.1 only (the preface is a bad request, as before)."""
    (pod,) = await make_pods("a")
    proxy = await make_proxy(http2=False)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    response = await read_response(reader)
    assert response.status == 400
    writer.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_http2_prior_knowledge(proxy_and_pod):
    proxy, _ = proxy_and_pod
    process = await asyncio.create_subprocess_exec(
        "curl", "-s", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_version}", "-d", "hello",
        proxy.url("/curl"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 10)
    if process.returncode and b"not support" in err.lower():
        pytest.skip(f"this curl has no HTTP/2: {err!r}")
    body, _, version = out.rpartition(b"\n")
    assert process.returncode == 0 and version == b"2"
    assert json.loads(body)["body"] == "hello"


async def test_h2_client_library_sees_a_clean_connection(proxy_and_pod):
    """Many requests, then the client closes: the proxy's connection count goes back to zero."""
    proxy, _ = proxy_and_pod
    client = await H2Client.connect(proxy.port)
    for index in range(20):
        assert (await client.get(f"/seq/{index}")).status == 200
    await client.close()
    async with asyncio.timeout(10):
        while proxy.server.active_connections:
            await asyncio.sleep(0.01)  # polled with the deadline above
