"""The PROXY protocol (v1 text, v2 binary) on the HTTP and HTTPS listeners, over real sockets.

Headers are written byte by byte by the tests, as a load balancer would (HAProxy's proxy-protocol.txt is
the specification; ingress-nginx's configmap.md "use-proxy-protocol" turns it on, and test/e2e/settings/
proxy_protocol.go checks that the header's address reaches the backend as X-Forwarded-For). The address
a header names must be the client address everywhere: the forwarded headers, source ranges, the access log.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import socket
import ssl
import struct
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otlp_collector import Collector
from proxy.accesslog import AccessLog
from proxy.http.proxy_protocol import HeaderError, ProxyProtocolServer, parse_v1, parse_v2
from proxy.metrics import Metrics
from proxy.routing.policies import CONSISTENT_HASH, HASH_SOURCE_IP, ClusterPolicy, LoadBalancer
from server_harness import Rule, closed_by_peer, cluster, connect, encode_request, read_response, wait_until
from test_nginx_annotations import ingress, serve

APP = "default/app:80"
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(source: str, destination: str = "10.0.0.1", sport: int = 40000, dport: int = 80) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {destination} {sport} {dport}\r\n".encode()


def v2(source: str, destination: str = "10.0.0.1", sport: int = 40000, dport: int = 80, *, command: int = 1,
       tlvs: bytes = b"") -> bytes:
    """A v2 header: PROXY (1) or LOCAL (0), TCP over IPv4 or IPv6, with TLVs after the addresses."""
    if ":" in source:
        family = 0x21
        addresses = socket.inet_pton(socket.AF_INET6, source) + socket.inet_pton(socket.AF_INET6, destination)
    else:
        family = 0x11
        addresses = socket.inet_pton(socket.AF_INET, source) + socket.inet_pton(socket.AF_INET, destination)
    block = addresses + struct.pack("!HH", sport, dport) + tlvs
    return SIGNATURE + bytes((0x20 | command, family)) + struct.pack("!H", len(block)) + block


def echoed(response) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


# ---------------------------------------------------------------- the parsers (no sockets)


def test_v1_lines():
    assert parse_v1(b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n") == ("192.0.2.7", 443)
    assert parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 8443\r\n") == ("2001:db8::7", 8443)
    assert parse_v1(b"PROXY UNKNOWN\r\n") == ("", 0)
    assert parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") == ("", 0)
    for bad in (b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n", b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
                b"PROXY TCP6 192.0.2.7 10.0.0.1 1 2\r\n", b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",
                b"PROXY TCP4 192.0.2.7  10.0.0.1 1 2\r\n", b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
                b"PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n", b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n",
                b"PROXY TCP6 " + b"f" * 100 + b" ::1 1 2\r\n"):
        with pytest.raises(HeaderError):
            parse_v1(bad)


def test_v2_headers():
    assert parse_v2(v2("192.0.2.7", dport=443)) == ("192.0.2.7", 443)
    assert parse_v2(v2("2001:db8::7", "2001:db8::1", dport=8443)) == ("2001:db8::7", 8443)
    assert parse_v2(v2("192.0.2.7", tlvs=b"\x01\x00\x02h2" + b"\x04\x00\x00")) == ("192.0.2.7", 80)  # TLVs skipped
    assert parse_v2(v2("192.0.2.7", command=0)) == ("", 0)  # LOCAL: the peer stays the client
    unspec = SIGNATURE + b"\x21\x00\x00\x00"
    unix = SIGNATURE + b"\x21\x31" + struct.pack("!H", 216) + b"\x00" * 216
    assert parse_v2(unspec) == ("", 0) and parse_v2(unix) == ("", 0)
    good = v2("192.0.2.7")
    for bad in (b"\x31" + good[13:], b"\x22" + good[13:], b"\x51" + good[13:], good[:-1],
                SIGNATURE + b"\x21\x11\x00\x04" + b"\x00" * 4):
        header = bad if bad.startswith(SIGNATURE) else SIGNATURE + bad
        with pytest.raises(HeaderError):
            parse_v2(header)


# ---------------------------------------------------------------- the HTTP listener


@pytest.fixture
async def pp_proxy(make_proxy, make_pods):
    (pod,) = await make_pods("echo")
    proxy = await make_proxy(proxy_protocol=True, client_header_timeout=2.0)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    return proxy


async def ask(port: int, header: bytes, *, pieces: int = 1, source: str = "", host: str = "example.com",
              acceptor: ProxyProtocolServer | None = None):
    """Send `header` (in `pieces` writes: see send_in_pieces) then a request; the response."""
    reader, writer = await connect(port, source=source)
    try:
        await send_in_pieces(writer, header, pieces, acceptor)
        writer.write(encode_request("/", host=host))
        return await read_response(reader)
    finally:
        writer.close()


async def send_in_pieces(writer: asyncio.StreamWriter, data: bytes, pieces: int,
                         acceptor: ProxyProtocolServer | None) -> None:
    """Write `data` in `pieces` parts, each one only after the listener has read all the parts before (its
    header reader holds exactly those bytes): the header really arrives split."""
    step = max(1, -(-len(data) // pieces))
    sent = 0
    for start in range(0, len(data), step):
        if sent:
            assert acceptor is not None
            await wait_until(lambda read=sent: any(len(r.buffer) == read for r in acceptor.readers))
        writer.write(data[start:start + step])
        await writer.drain()
        sent += len(data[start:start + step])


def acceptor_of(proxy, index: int = 0) -> ProxyProtocolServer:
    server = proxy.server.listeners[index].server
    assert isinstance(server, ProxyProtocolServer)
    return server


async def test_v1_address_reaches_the_pod_as_forwarded_for_and_real_ip(pp_proxy):
    """proxy_protocol.go "should respect port passed by the PROXY Protocol": the header's address is the
    client's, in X-Forwarded-For and X-Real-IP (the socket's 127.0.0.1 appears nowhere), and the port the
    client reached on the balancer is X-Forwarded-Port; "...server port": 443 there means https."""
    response = await ask(pp_proxy.port, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1234\r\n")
    assert response.status == 200
    headers = echoed(response)
    assert headers["X-Forwarded-For"] == ["192.168.0.1"] and headers["X-Real-IP"] == ["192.168.0.1"]
    assert headers["X-Forwarded-Port"] == ["1234"] and headers["X-Forwarded-Proto"] == ["http"]
    headers = echoed(await ask(pp_proxy.port, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"))
    assert headers["X-Forwarded-Port"] == ["443"] and headers["X-Forwarded-Proto"] == ["https"]


async def test_v2_ipv4_and_ipv6_with_tlvs(pp_proxy):
    """proxy_protocol.go "should respect proto passed by the PROXY Protocol" with the binary (v2) header."""
    response = await ask(pp_proxy.port, v2("198.51.100.9", tlvs=b"\x01\x00\x08http/1.1"))
    assert echoed(response)["X-Real-IP"] == ["198.51.100.9"]
    response = await ask(pp_proxy.port, v2("2001:db8::42", "2001:db8::1"))
    assert echoed(response)["X-Forwarded-For"] == ["2001:db8::42"]


async def test_local_and_unknown_keep_the_socket_peer(pp_proxy):
    """proxy-protocol.txt: LOCAL (v2) and UNKNOWN (v1) carry no client; the connection's own peer is used."""
    for header in (v2("192.0.2.7", command=0), b"PROXY UNKNOWN\r\n"):
        headers = echoed(await ask(pp_proxy.port, header, source="127.0.4.4"))
        assert headers["X-Real-IP"] == ["127.0.4.4"] and headers["X-Forwarded-Port"] == [str(pp_proxy.port)]


async def test_a_header_split_over_several_packets(pp_proxy):
    """Packets arrive as the network cuts them: byte by byte for v1, and v2 in three pieces, then keep-alive."""
    acceptor = acceptor_of(pp_proxy)
    response = await ask(pp_proxy.port, v1("203.0.113.5"), pieces=len(v1("203.0.113.5")), acceptor=acceptor)
    assert echoed(response)["X-Real-IP"] == ["203.0.113.5"]
    reader, writer = await connect(pp_proxy.port)
    try:
        await send_in_pieces(writer, v2("203.0.113.6", tlvs=b"\x04\x00\x00"), 3, acceptor)
        for _ in range(2):  # the address holds for every request of the connection
            writer.write(encode_request("/"))
            assert echoed(await read_response(reader))["X-Real-IP"] == ["203.0.113.6"]
    finally:
        writer.close()


async def test_the_request_right_behind_the_header_is_not_eaten(pp_proxy):
    """Header and request in one segment: the header is consumed exactly, the request is served."""
    reader, writer = await connect(pp_proxy.port)
    try:
        writer.write(b"PROXY UNKNOWN\r\n" + encode_request("/first") + encode_request("/second"))
        assert (await read_response(reader)).json()["path"] == "/first"
        assert (await read_response(reader)).json()["path"] == "/second"
    finally:
        writer.close()


@pytest.mark.parametrize("first", [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",  # no header at all
    b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",  # a field missing
    b"PROXY TCP4 " + b"1" * 120 + b"\r\n",  # longer than 107 bytes
    b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12 + b"GET / HTTP/1.1\r\n\r\n",  # v2 version 3
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04\x00\x00\x00\x00GET / HTTP/1.1\r\n\r\n",  # INET block too short
], ids=["missing", "v1-fields", "v1-too-long", "v2-version", "v2-short"])
async def test_missing_or_malformed_header_closes_without_an_answer(pp_proxy, first):
    """configmap.md "use-proxy-protocol": a connection must start with the header; nginx drops one without it."""
    reader, writer = await connect(pp_proxy.port)
    try:
        writer.write(first)
        async with asyncio.timeout(5):
            answer = await reader.read()  # EOF (or a reset) with nothing before it
        assert answer == b""
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    assert acceptor_of(pp_proxy).rejected == 1
    text = Metrics(holder=pp_proxy.holder, server=pp_proxy.server, process=False).render().decode()
    assert 'pyngress_proxy_protocol_rejected_total{listener="http"} 1.0' in text


async def test_a_stalled_header_is_closed_after_the_header_timeout(pp_proxy):
    """Half a header, then silence: closed once client-header-timeout (2 s here) has passed, no answer."""
    reader, writer = await connect(pp_proxy.port)
    try:
        writer.write(b"PROXY TCP4 192.0")
        assert await closed_by_peer(reader, timeout=10)
    finally:
        writer.close()


async def test_a_silent_client_is_closed_too(pp_proxy):
    """Connected, nothing sent: accept is deferred until data comes (TCP_DEFER_ACCEPT, Linux) for about a
    second, then the header timeout (2 s here) runs as for any connection; closed without an answer."""
    reader, writer = await connect(pp_proxy.port)
    try:
        assert await closed_by_peer(reader, timeout=20)
    finally:
        writer.close()


async def test_source_range_is_decided_on_the_proxy_address(make_proxy, make_pods):
    """ipwhitelist.go / ipdenylist.go semantics with the client address from the PROXY header: the socket
    (127.0.0.1) would be refused, the header's allowed address is served, a denied one gets 403."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(proxy_protocol=True)
    serve(proxy, [echo], ingress("acl", "acl.foo.com", ("/", "Prefix", "echo"),
                                 whitelist_source_range="192.0.2.0/24", denylist_source_range="192.0.2.66"))
    assert (await ask(proxy.port, v1("192.0.2.7"), host="acl.foo.com")).status == 200
    assert (await ask(proxy.port, v2("192.0.2.66"), host="acl.foo.com")).status == 403
    assert (await ask(proxy.port, b"PROXY UNKNOWN\r\n", host="acl.foo.com")).status == 403  # 127.0.0.1 itself
    assert echo.requests == 1


async def test_hash_balancing_on_the_proxy_address(make_proxy, make_pods):
    """upstreamhashby.go "should connect to the same pod" (`upstream-hash-by: $remote_addr`, a source-address
    hash) with the PROXY header's address: each address keeps its pod, and the addresses spread over the pods
    although every connection comes from 127.0.0.1 (which alone would pin all of them to one pod)."""
    pods = await make_pods("a", "b", "c")
    proxy = await make_proxy(proxy_protocol=True)
    policy = ClusterPolicy(load_balancer=LoadBalancer(CONSISTENT_HASH, HASH_SOURCE_IP))
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [p.endpoint for p in pods], policy=policy)])
    addresses = [f"198.51.100.{n}" for n in range(1, 13)]
    first = {address: (await ask(proxy.port, v1(address))).json()["pod"] for address in addresses}
    again = {address: (await ask(proxy.port, v2(address))).json()["pod"] for address in addresses}
    assert first == again
    assert len(set(first.values())) >= 2


async def test_access_log_client_is_the_proxy_address(make_proxy, make_pods):
    """The access log's "client" field (nginx's $remote_addr, which use-proxy-protocol sets from the header)."""
    (pod,) = await make_pods("echo")
    proxy = await make_proxy(proxy_protocol=True)
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b"")))
    reader.start()
    proxy.server.access_log = AccessLog(write_end, interval=0.01)
    assert (await ask(proxy.port, v2("2001:db8::9", "2001:db8::1"))).status == 200
    proxy.server.access_log.close()
    os.close(write_end)
    reader.join(timeout=10)
    os.close(read_end)
    [entry] = [json.loads(line) for line in b"".join(chunks).splitlines()]
    assert entry["client"] == "2001:db8::9"


async def test_span_client_address_is_the_proxy_address(make_proxy, make_pods):
    """Tracing's `client.address` (the OpenTelemetry attribute ingress-nginx's module fills from $remote_addr)."""
    (pod,) = await make_pods("echo")
    collector = await Collector().start()
    try:
        proxy = await make_proxy(proxy_protocol=True, otlp_endpoint=collector.url, otlp_export_interval=0.05,
                                 trace_sample_ratio=1.0)
        proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
        assert (await ask(proxy.port, v1("192.0.2.77"))).status == 200
        [span] = await collector.wait_for(1)
        assert span.attributes["client.address"] == "192.0.2.77"
    finally:
        await collector.stop()


async def test_a_plain_listener_takes_no_header(make_proxy, make_pods):
    """Without --proxy-protocol a PROXY line is just a bad request line (400), as today."""
    (pod,) = await make_pods("echo")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    assert (await ask(proxy.port, b"")).status == 200
    assert (await ask(proxy.port, v1("192.0.2.7"))).status == 400


# ---------------------------------------------------------------- the HTTPS listener


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("secure.example")]), critical=False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
async def tls_pp_proxy(make_proxy, make_pods, certificate):
    (pod,) = await make_pods("echo")
    proxy = await make_proxy(proxy_protocol=True, client_header_timeout=2.0)
    proxy.publish([Rule("secure.example", "/", APP)], [cluster(APP, [pod.endpoint])])
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    await proxy.server.start_https(server_context, port=0)
    return proxy, ssl.create_default_context(cafile=certificate[0])


async def tls_ask(proxy, header: bytes, context: ssl.SSLContext, *, pieces: int = 1):
    """The header in the clear, then TLS on the same socket (the ClientHello right behind it), then a request."""
    reader, writer = await connect(proxy.server.https_port)
    try:
        await send_in_pieces(writer, header, pieces, acceptor_of(proxy, 1))
        await writer.start_tls(context, server_hostname="secure.example")
        writer.write(encode_request("/", host="secure.example"))
        return await read_response(reader)
    finally:
        writer.close()


async def test_https_header_before_the_client_hello(tls_pp_proxy):
    """proxy_protocol.go "should enable PROXY Protocol for HTTPS": the header comes before TLS, which then runs
    as on any HTTPS connection; the header's address is the client's, its port X-Forwarded-Port, the scheme
    https (v1 and v2, v1 cut into pieces)."""
    proxy, context = tls_pp_proxy
    response = await tls_ask(proxy, v1("192.0.2.10", dport=1234), context)
    assert response.status == 200
    headers = echoed(response)
    assert headers["X-Real-IP"] == ["192.0.2.10"] and headers["X-Forwarded-Proto"] == ["https"]
    assert headers["X-Forwarded-Port"] == ["1234"]
    assert echoed(await tls_ask(proxy, v2("2001:db8::10", "2001:db8::1"), context))["X-Forwarded-For"] == [
        "2001:db8::10"]
    assert echoed(await tls_ask(proxy, v1("192.0.2.11"), context, pieces=5))["X-Real-IP"] == ["192.0.2.11"]
    assert echoed(await tls_ask(proxy, v2("192.0.2.1", command=0), context))["X-Real-IP"] == ["127.0.0.1"]
    assert proxy.server.listeners[1].handshakes.completed == 4


async def test_https_without_header_is_closed_before_any_handshake(tls_pp_proxy):
    """A ClientHello where the header should be: closed, no TLS alert, no handshake counted."""
    proxy, context = tls_pp_proxy
    reader, writer = await connect(proxy.server.https_port)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            async with asyncio.timeout(5):
                await writer.start_tls(context, server_hostname="secure.example")
    finally:
        writer.close()
    listener = proxy.server.listeners[1]
    assert acceptor_of(proxy, 1).rejected == 1
    assert listener.handshakes.completed == 0 and sum(listener.handshakes.failures.values()) == 0
