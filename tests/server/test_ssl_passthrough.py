"""SSL passthrough on the HTTPS listener: real TLS clients, a pod that terminates TLS itself, our own
certificate for every other host.

Reproduces ingress-nginx's test/e2e/settings/ssl_passthrough.go ("should pass unknown traffic to default
backend and handle known traffic": the annotated host reaches the pod's own TLS server, a host without the
annotation on the same port is served by the proxy) and docs/user-guide/tls.md "SSL Passthrough" (the
flag is off by default; without it the annotation does nothing).
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.passthrough import HIGH_WATER
from proxy.routing import Config, Route, RouteTable, VirtualHost
from proxy.routing.model import PATH_PREFIX
from server_harness import TIMEOUT, RawBackend, closed_by_peer, cluster, connect, read_response, wait_until

APP = "default/app:80"
PASS = "default/secure-pod:443"
PASS_HOST = "pass.example"
OUR_HOST = "secure.example"


def _certificate(folder: Path, name: str) -> tuple[str, str]:
    """A self-signed certificate for `name` (files: cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, tuple[str, str]]:
    folder = tmp_path_factory.mktemp("passthrough")
    return {name: _certificate(folder, name) for name in (OUR_HOST, PASS_HOST)}


class TlsEchoPod:
    """A pod that terminates TLS itself (its own certificate for pass.example): answers "pod:" + each line."""

    def __init__(self, host: str, cert: tuple[str, str]) -> None:
        self.host = host
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(*cert)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.connections = 0

    async def start(self) -> TlsEchoPod:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                while line := await reader.readline():
                    writer.write(b"pod:" + line)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_client, self.host, 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def _table(*, passthrough: bool = True) -> RouteTable:
    passed = Route("default", "tls-app", PASS_HOST, "/", PATH_PREFIX, PASS, passthrough=passthrough)
    ours = Route("default", "app", OUR_HOST, "/", PATH_PREFIX, APP)
    return RouteTable(hosts={PASS_HOST: VirtualHost(prefix={"": passed}), OUR_HOST: VirtualHost(prefix={"": ours})},
                      any_host=VirtualHost(prefix={"": ours}))


@pytest.fixture
async def tls_pod(certificates):
    pod = await TlsEchoPod("127.0.0.7", certificates[PASS_HOST]).start()
    yield pod
    await pod.stop()


async def _proxy(make_proxy, certificates, pods, *, enabled: bool = True, passthrough_endpoints=None, **settings):
    proxy = await make_proxy(ssl_passthrough=enabled, **settings)
    clusters = [cluster(APP, [pods[0].endpoint]), cluster(PASS, passthrough_endpoints or [pods[1].endpoint])]
    proxy.publish_config(Config(table=_table(), clusters={c.key: c for c in clusters}), clusters)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificates[OUR_HOST])
    await proxy.server.start_https(context, port=0)
    return proxy


@pytest.fixture
async def passthrough_proxy(make_proxy, make_pods, certificates, tls_pod):
    (app,) = await make_pods("app")
    return await _proxy(make_proxy, certificates, [app, tls_pod])


def _client(certificates, name: str) -> ssl.SSLContext:
    """A client trusting only `name`'s certificate: it finishes a handshake only with whoever holds that key."""
    return ssl.create_default_context(cafile=certificates[name][0])


def _peer_name(writer: asyncio.StreamWriter) -> str:
    cert = writer.get_extra_info("peercert")
    return dict(item[0] for item in cert["subject"])["commonName"]


async def test_passthrough_host_reaches_the_pods_own_tls(passthrough_proxy, certificates):
    proxy = passthrough_proxy
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.https_port,
                                                       ssl=_client(certificates, PASS_HOST),
                                                       server_hostname=PASS_HOST)
        assert _peer_name(writer) == PASS_HOST  # the pod's certificate, not ours
        writer.write(b"hello\n")
        assert await reader.readline() == b"pod:hello\n"
        writer.write(b"again\n")
        assert await reader.readline() == b"pod:again\n"
        writer.close()
    stats = proxy.server.passthrough
    await wait_until(lambda: stats.active == 0)
    counts = stats.hosts[PASS_HOST]
    assert counts.connections == 1
    assert counts.received > len(b"hello\nagain\n") and counts.sent > len(b"pod:hello\npod:again\n")


async def test_other_host_on_the_same_port_is_terminated_by_the_proxy(passthrough_proxy, certificates):
    proxy = passthrough_proxy
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.https_port,
                                                       ssl=_client(certificates, OUR_HOST), server_hostname=OUR_HOST)
        assert _peer_name(writer) == OUR_HOST
        writer.write(f"GET /x HTTP/1.1\r\nHost: {OUR_HOST}\r\nConnection: close\r\n\r\n".encode())
        response = await read_response(reader)
        writer.close()
    assert response.status == 200
    assert response.json()["pod"] == "app"
    assert proxy.server.passthrough.hosts == {} or proxy.server.passthrough.hosts[PASS_HOST].connections == 0
    assert proxy.server.listeners[-1].handshakes.completed == 1


async def test_no_server_name_gets_the_terminated_path_and_its_default_certificate(passthrough_proxy, certificates):
    proxy = passthrough_proxy
    context = _client(certificates, OUR_HOST)
    context.check_hostname = False  # no SNI: the name cannot be checked, the certificate still is
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.https_port, ssl=context)
        assert _peer_name(writer) == OUR_HOST
        writer.write(b"GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
        response = await read_response(reader)
        writer.close()
    assert response.status == 200


async def test_without_the_flag_the_annotated_host_is_terminated(make_proxy, make_pods, certificates, tls_pod):
    (app,) = await make_pods("app")
    proxy = await _proxy(make_proxy, certificates, [app, tls_pod], enabled=False)
    assert proxy.server.listeners[-1].sni is None  # the HTTPS listener is the plain TLS acceptor
    context = _client(certificates, OUR_HOST)
    context.check_hostname = False
    async with asyncio.timeout(TIMEOUT):
        _, writer = await asyncio.open_connection("127.0.0.1", proxy.server.https_port, ssl=context,
                                                  server_hostname=PASS_HOST)
        assert _peer_name(writer) == OUR_HOST
        writer.close()
    assert tls_pod.connections == 0


# ---------------------------------------------------------------- the ClientHello as it arrives


def _tls_client(name: str | None, cafile: str | None = None) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    context = ssl.create_default_context(cafile=cafile)
    if cafile is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    return context.wrap_bio(incoming, outgoing, server_hostname=name), incoming, outgoing


def _client_hello(name: str | None) -> bytes:
    obj, _, outgoing = _tls_client(name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _in_records(hello: bytes, size: int) -> bytes:
    """The same ClientHello message carried by several handshake records of `size` bytes."""
    message = hello[5:]
    return b"".join(hello[:3] + len(piece).to_bytes(2, "big") + piece
                    for piece in (message[i:i + size] for i in range(0, len(message), size)))


async def _finish_handshake(obj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                            reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    writer.write(pending)
                data = await reader.read(65536)
                assert data, "closed during the handshake"
                incoming.write(data)
        pending = outgoing.read()
        if pending:
            writer.write(pending)


@pytest.mark.parametrize("name", [PASS_HOST, OUR_HOST])
async def test_client_hello_split_over_records_and_segments(passthrough_proxy, certificates, name):
    """One byte per segment and 64 bytes per record: both paths see the exact bytes (the pod's TLS
    server and our terminator each complete the handshake on them)."""
    proxy = passthrough_proxy
    obj, incoming, outgoing = _tls_client(name, cafile=certificates[name][0])
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    flight = _in_records(outgoing.read(), 64)
    reader, writer = await connect(proxy.server.https_port)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for index in range(len(flight)):
        writer.write(flight[index:index + 1])
        await writer.drain()
    await _finish_handshake(obj, incoming, outgoing, reader, writer)
    assert dict(item[0] for item in obj.getpeercert()["subject"])["commonName"] == name
    writer.close()


async def test_malformed_client_hello_closes_the_connection(passthrough_proxy):
    proxy = passthrough_proxy
    reader, writer = await connect(proxy.server.https_port)
    # A handshake record whose message is a ServerHello (type 2), not a ClientHello.
    writer.write(b"\x16\x03\x01\x00\x08\x02\x00\x00\x04\x03\x03\x00\x00")
    assert await closed_by_peer(reader)
    assert proxy.server.passthrough.failures["malformed"] == 1


async def test_incomplete_client_hello_times_out(make_proxy, make_pods, certificates, tls_pod):
    (app,) = await make_pods("app")
    proxy = await _proxy(make_proxy, certificates, [app, tls_pod], client_header_timeout=0.2)
    reader, writer = await connect(proxy.server.https_port)
    writer.write(_client_hello(PASS_HOST)[:20])
    assert await closed_by_peer(reader)
    assert proxy.server.passthrough.failures["timeout"] == 1


async def test_plain_http_on_the_https_port_is_still_counted_as_before(passthrough_proxy):
    proxy = passthrough_proxy
    reader, writer = await connect(proxy.server.https_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await closed_by_peer(reader)
    handshakes = proxy.server.listeners[-1].handshakes
    await wait_until(lambda: handshakes.failures["plain_http"] == 1)


async def test_no_endpoint_closes_and_is_counted(make_proxy, make_pods, certificates, tls_pod):
    (app,) = await make_pods("app")
    proxy = await _proxy(make_proxy, certificates, [app, tls_pod])
    clusters = [cluster(APP, [app.endpoint]), cluster(PASS, [])]
    proxy.publish_config(Config(table=_table(), clusters={c.key: c for c in clusters}), clusters)
    reader, writer = await connect(proxy.server.https_port)
    writer.write(_client_hello(PASS_HOST))
    assert await closed_by_peer(reader)
    assert proxy.server.passthrough.failures["no_endpoint"] == 1


# ---------------------------------------------------------------- the splice: raw pods see the raw stream


async def _raw_proxy(make_proxy, make_pods, make_backend, certificates, handler):
    (app,) = await make_pods("app")
    backend = await make_backend(handler)
    return await _proxy(make_proxy, certificates, [app, backend]), backend


async def test_half_close_is_passed_on_both_ways(make_proxy, make_pods, make_backend, certificates):
    """The pod reads to EOF (the client's half-close), answers, then closes: the client gets all of it."""
    got: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's EOF
        got.append(data)
        writer.write(b"read %d bytes" % len(data))
        await writer.drain()

    proxy, _ = await _raw_proxy(make_proxy, make_pods, make_backend, certificates, handler)
    hello = _client_hello(PASS_HOST)
    reader, writer = await connect(proxy.server.https_port)
    writer.write(hello + b"payload after the hello")
    writer.write_eof()
    async with asyncio.timeout(TIMEOUT):
        answer = await reader.read()  # until the pod's close reaches us
    assert got == [hello + b"payload after the hello"]  # replayed first, byte for byte
    assert answer == b"read %d bytes" % len(got[0])
    stats = proxy.server.passthrough
    await wait_until(lambda: stats.active == 0)
    assert stats.hosts[PASS_HOST].received == len(got[0]) and stats.hosts[PASS_HOST].sent == len(answer)


async def test_slow_reader_keeps_the_proxy_buffer_bounded(make_proxy, make_pods, make_backend, certificates):
    """A pod sending far more than a client reads: the proxy stops reading the pod, holding ~HIGH_WATER."""
    total = 32 * 1024 * 1024
    sent = [0]
    done = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)  # the ClientHello's record header: the splice is up
        block = b"y" * 65536
        while sent[0] < total:
            writer.write(block)
            sent[0] += len(block)
            await writer.drain()
        done.set()

    proxy, _ = await _raw_proxy(make_proxy, make_pods, make_backend, certificates, handler)
    reader, writer = await connect(proxy.server.https_port, rcvbuf=64 * 1024)
    writer.write(_client_hello(PASS_HOST))
    sni = proxy.server.listeners[-1].sni
    await wait_until(lambda: any(r.client is not None for r in sni.open))
    (splice,) = [r for r in sni.open if r.client is not None]
    # The pod blocks: the proxy stopped reading it because the client's side is over its high-water mark.
    await wait_until(lambda: not splice.pod.transport.is_reading())
    stalled = sent[0]
    buffered = splice.client.transport.get_write_buffer_size()
    assert buffered <= HIGH_WATER + 256 * 1024
    assert not done.is_set() and stalled < total
    received = 0
    async with asyncio.timeout(TIMEOUT * 3):
        while received < total:
            chunk = await reader.read(1 << 20)
            assert chunk
            received += len(chunk)
            assert splice.client.transport.get_write_buffer_size() <= HIGH_WATER + 256 * 1024
    assert received == total
    writer.close()


async def test_client_stops_when_the_pod_does_not_read(make_proxy, make_pods, make_backend, certificates):
    """The other direction: a client uploading to a pod that does not read is paused in turn."""
    release = asyncio.Event()
    got = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        while data := await reader.read(1 << 20):
            got[0] += len(data)

    proxy, _ = await _raw_proxy(make_proxy, make_pods, make_backend, certificates, handler)
    reader, writer = await connect(proxy.server.https_port, sndbuf=64 * 1024)
    writer.write(_client_hello(PASS_HOST))
    sni = proxy.server.listeners[-1].sni
    await wait_until(lambda: any(r.client is not None for r in sni.open))
    (splice,) = [r for r in sni.open if r.client is not None]
    block = b"z" * 65536
    pushed = 0

    async def push() -> None:
        nonlocal pushed
        while True:
            writer.write(block)
            pushed += len(block)
            await writer.drain()

    pusher = asyncio.ensure_future(push())
    try:
        await wait_until(lambda: not splice.client.transport.is_reading())
        assert splice.pod.transport.get_write_buffer_size() <= HIGH_WATER + 256 * 1024
    finally:
        pusher.cancel()
        await asyncio.gather(pusher, return_exceptions=True)
    release.set()
    writer.write_eof()
    hello = len(_client_hello(PASS_HOST))
    await wait_until(lambda: got[0] >= pushed - 2 * hello, timeout=TIMEOUT * 3)


async def test_connect_failure_tries_another_endpoint(make_proxy, make_pods, make_backend, certificates):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(5))
        await writer.drain()

    (app,) = await make_pods("app")
    backend: RawBackend = await make_backend(handler)
    closed = socket.socket()
    closed.bind(("127.0.0.8", 0))
    dead = closed.getsockname()
    closed.close()  # nothing listens there: connection refused
    proxy = await _proxy(make_proxy, certificates, [app, backend], passthrough_endpoints=[dead, backend.endpoint])
    for _ in range(2):  # round robin starts on either endpoint: both orders reach the live one
        hello = _client_hello(PASS_HOST)
        reader, writer = await connect(proxy.server.https_port)
        writer.write(hello)
        async with asyncio.timeout(TIMEOUT):
            assert await reader.readexactly(5) == hello[:5]
        writer.close()
    assert proxy.server.passthrough.hosts[PASS_HOST].connections == 2
