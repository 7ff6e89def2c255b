"""Real TLS handshakes against an asyncio server on 127.0.0.1 using the store's listener context."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from proxy.objects import Snapshot
from proxy.tls.certs import Certificate, parse_secret
from proxy.tls.default import generate_default_certificate
from proxy.tls.hosts import build_store, tls_hosts
from proxy.tls.store import CertStore, CertStoreHolder, new_server_context, prepare_context
from proxy.tls.tickets import TICKET_KEYS_LENGTH, new_ticket_keys, set_ticket_keys

NOW = datetime.now(UTC)
# Bound on every network wait: generous, since other suites share the two cores.
TIMEOUT = 10.0
AEAD_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
}


class OkProtocol(asyncio.Protocol):
    """Answers every chunk with "ok " + the chunk."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"ok " + data)


@dataclass
class Handshake:
    serial: int
    dns_names: list[str]
    version: str
    cipher: str
    alpn: str | None
    reused: bool
    session: ssl.SSLSession | None
    reply: bytes
    sock: ssl.SSLSocket | None


def _handshake(port: int, context: ssl.SSLContext, server_hostname: str | None, session, keep_open: bool) -> Handshake:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        tls = context.wrap_socket(raw, server_hostname=server_hostname, session=session)
    except BaseException:
        raw.close()
        raise
    try:
        tls.sendall(b"hi")
        reply = tls.recv(100)  # also reads the TLS 1.3 session tickets sent after the handshake
        cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = san.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
        return Handshake(
            serial=cert.serial_number,
            dns_names=names,
            version=tls.version(),
            cipher=tls.cipher()[0],
            alpn=tls.selected_alpn_protocol(),
            reused=tls.session_reused,
            session=tls.session,
            reply=reply,
            sock=tls if keep_open else None,
        )
    finally:
        if not keep_open:
            tls.close()


async def handshake(
    port: int, context: ssl.SSLContext, server_hostname: str | None = None, *, session=None, keep_open: bool = False
) -> Handshake:
    """One client connection (blocking ssl in a thread, so `session=` reuse is available)."""
    return await asyncio.wait_for(
        asyncio.to_thread(_handshake, port, context, server_hostname, session, keep_open), TIMEOUT * 2
    )


async def exchange(sock: ssl.SSLSocket, data: bytes) -> bytes:
    def run() -> bytes:
        sock.sendall(data)
        return sock.recv(100)

    return await asyncio.wait_for(asyncio.to_thread(run), TIMEOUT * 2)


@pytest.fixture
async def serve():
    """start(context) -> port of a TLS server answering "ok"."""
    servers: list[asyncio.Server] = []

    async def start(context: ssl.SSLContext) -> int:
        server = await asyncio.get_running_loop().create_server(OkProtocol, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def default_cert() -> Certificate:
    return generate_default_certificate()


def verifying(pki, *, alpn=("h2", "http/1.1"), maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.cafile))
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if maximum is not None:
        context.maximum_version = maximum
    return context


def trusting_anything() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def cert(leaf) -> Certificate:
    parsed = parse_secret(leaf.secret())
    assert isinstance(parsed, Certificate), parsed
    return parsed


@pytest.fixture
def site(pki, default_cert):
    """A holder serving a.test, b.test and *.wild.test, each with its own certificate."""
    leaves = {"a.test": pki.leaf("a.test"), "b.test": pki.leaf("b.test"), "*.wild.test": pki.leaf("*.wild.test")}
    store = CertStore({host: cert(leaf) for host, leaf in leaves.items()}, default=default_cert)
    return CertStoreHolder(store), leaves


async def test_sni_selects_the_certificate_of_each_host(pki, site, serve):
    holder, leaves = site
    port = await serve(holder.server_context())
    client = verifying(pki)
    for host, expected in [("a.test", "a.test"), ("b.test", "b.test"), ("x.wild.test", "*.wild.test"),
                           ("B.Test", "b.test")]:
        result = await handshake(port, client, host)  # verifies chain (leaf + intermediate) and hostname
        assert result.serial == leaves[expected].serial, host
        assert result.reply == b"ok hi"


async def test_wildcard_covers_one_label_and_unknown_or_missing_sni_get_default(pki, site, serve, default_cert):
    holder, _ = site
    port = await serve(holder.server_context())
    for host in ("a.b.wild.test", "wild.test", "unknown.test", None):
        result = await handshake(port, trusting_anything(), host)
        assert result.serial == default_cert.serial, host
        assert result.dns_names == ["ingress.local"]
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(port, verifying(pki), "a.b.wild.test")


async def test_broken_secrets_fall_back_to_default_and_others_keep_working(pki, serve, default_cert):
    good = pki.leaf("good.test")
    expired = pki.leaf("old.test", not_before=NOW - timedelta(days=9), not_after=NOW - timedelta(days=1))
    mismatched = pki.leaf("bad.test")
    secrets = [good.secret("ns", "good"), expired.secret("ns", "old"),
               mismatched.secret("ns", "bad", key_pem=good.key_pem)]
    snapshot = Snapshot(secrets={("ns", s["metadata"]["name"]): s for s in secrets})
    ingress = {
        "metadata": {"namespace": "ns", "name": "web"},
        "spec": {
            "tls": [
                {"hosts": ["good.test"], "secretName": "good"},
                {"hosts": ["old.test"], "secretName": "old"},
                {"hosts": ["bad.test"], "secretName": "bad"},
            ]
        },
    }
    host_map, warnings = tls_hosts(snapshot, [ingress])
    assert warnings == []
    store, warnings = build_store(snapshot, host_map, default=default_cert)
    assert sorted(w.name for w in warnings) == ["bad", "old"]
    port = await serve(CertStoreHolder(store).server_context())

    assert (await handshake(port, verifying(pki), "good.test")).serial == good.serial
    for host in ("old.test", "bad.test"):
        assert (await handshake(port, trusting_anything(), host)).serial == default_cert.serial


async def test_rotation_serves_new_handshakes_and_keeps_open_connections(pki, site, serve):
    holder, leaves = site
    listener = holder.server_context()
    port = await serve(listener)
    client = verifying(pki)
    before = await handshake(port, client, "a.test", keep_open=True)
    assert before.serial == leaves["a.test"].serial
    try:
        rotated = pki.leaf("a.test")
        old = holder.current
        holder.publish(CertStore({**old.certificates, "a.test": cert(rotated)}, default=old.default, reuse=old))
        assert holder.server_context() is listener

        after = await handshake(port, client, "a.test")
        assert after.serial == rotated.serial
        assert (await handshake(port, client, "b.test")).serial == leaves["b.test"].serial
        # The connection opened before the swap still talks, on the certificate it started with.
        assert await exchange(before.sock, b"again") == b"ok again"
        served = x509.load_der_x509_certificate(before.sock.getpeercert(binary_form=True))
        assert served.serial_number == leaves["a.test"].serial
    finally:
        before.sock.close()


async def test_default_certificate_rotation(site, serve, default_cert):
    holder, _ = site
    port = await serve(holder.server_context())
    assert (await handshake(port, trusting_anything(), None)).serial == default_cert.serial
    new_default = generate_default_certificate()
    holder.publish(CertStore(holder.current.certificates, default=new_default, reuse=holder.current))
    assert (await handshake(port, trusting_anything(), None)).serial == new_default.serial
    assert (await handshake(port, trusting_anything(), "nobody.test")).serial == new_default.serial


def _old_protocol_client(*, maximum: ssl.TLSVersion, ciphers: str) -> ssl.SSLContext:
    context = trusting_anything()
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = maximum
    context.set_ciphers(ciphers)
    return context


async def _permissive_server(serve, certificate: Certificate) -> int:
    """A control server that accepts anything, proving the old-protocol clients below really work."""
    context = prepare_context(certificate)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    return await serve(context)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_1_1_is_refused(site, serve, default_cert):
    holder, _ = site
    port = await serve(holder.server_context())
    client = _old_protocol_client(maximum=ssl.TLSVersion.TLSv1_1, ciphers="ALL:@SECLEVEL=0")
    control = await _permissive_server(serve, default_cert)
    assert (await handshake(control, client, "a.test")).version == "TLSv1.1"
    with pytest.raises(ssl.SSLError):
        await handshake(port, client, "a.test")
    # The AEAD-only suite list alone would refuse TLS 1.1 too (asyncio closes without an alert, so the
    # client cannot tell why): check that the version floor itself is set, on listener and per-host contexts.
    assert holder.server_context().minimum_version is ssl.TLSVersion.TLSv1_2
    assert holder.current.select("a.test").minimum_version is ssl.TLSVersion.TLSv1_2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_1_2_uses_forward_secret_aead_suites_only(pki, serve, default_cert):
    ec_leaf, rsa_leaf = pki.leaf("ec.test"), pki.leaf("rsa.test", rsa_bits=2048)
    store = CertStore({"ec.test": cert(ec_leaf), "rsa.test": cert(rsa_leaf)}, default=default_cert)
    port = await serve(CertStoreHolder(store).server_context())
    client = verifying(pki, maximum=ssl.TLSVersion.TLSv1_2)
    for host, kind in (("ec.test", "ECDSA"), ("rsa.test", "RSA")):
        result = await handshake(port, client, host)
        assert result.version == "TLSv1.2" and result.cipher in AEAD_TLS12, result.cipher
        assert result.cipher.startswith(f"ECDHE-{kind}-")

    cbc_only = _old_protocol_client(
        maximum=ssl.TLSVersion.TLSv1_2,
        ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-SHA:AES256-GCM-SHA384"
    )
    control = await _permissive_server(serve, cert(ec_leaf))
    assert (await handshake(control, cbc_only, "ec.test")).version == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        await handshake(port, cbc_only, "ec.test")


async def test_tls_1_3_preferred_and_alpn_h2_then_http_1_1(pki, site, serve):
    holder, _ = site
    port = await serve(holder.server_context())
    result = await handshake(port, verifying(pki, alpn=("h2", "http/1.1")), "a.test")
    assert result.version == "TLSv1.3" and result.alpn == "h2"  # HTTP/2 by default (--http2, proxy/http2/)
    assert (await handshake(port, verifying(pki, alpn=("h2",)), "a.test")).alpn == "h2"
    assert (await handshake(port, verifying(pki, alpn=("http/1.1",)), "a.test")).alpn == "http/1.1"
    # One without ALPN still connects (and speaks HTTP/1.1).
    assert (await handshake(port, verifying(pki, alpn=()), "a.test")).alpn is None


@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
async def test_session_resumption_survives_context_switch_and_store_swap(pki, site, serve, maximum):
    holder, leaves = site
    listener = holder.server_context()
    port = await serve(listener)
    client = verifying(pki, maximum=maximum)
    hits = listener.session_stats()["hits"]

    first = await handshake(port, client, "b.test")
    assert not first.reused and first.session is not None
    second = await handshake(port, client, "b.test", session=first.session)
    assert second.reused and second.serial == leaves["b.test"].serial

    # A new store (another host rotated) does not invalidate sessions: the tickets belong to the listener.
    old = holder.current
    holder.publish(CertStore({**old.certificates, "a.test": cert(pki.leaf("a.test"))}, default=old.default, reuse=old))
    third = await handshake(port, client, "b.test", session=second.session)
    assert third.reused and third.reply == b"ok hi"
    assert listener.session_stats()["hits"] >= hits + 2


@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
async def test_listeners_given_the_same_ticket_keys_resume_each_others_sessions(pki, site, serve, maximum):
    """What `--workers N` relies on (tls.tickets): each worker has its own listener context, and a returning client
    may land on any of them. nginx shares its ticket keys among workers the same way (keys drawn by the master, or
    `ssl_session_ticket_key`, ingress-nginx's `ssl-session-ticket-key`: docs/user-guide/nginx-configuration/
    configmap.md)."""
    holder, leaves = site
    keys = new_ticket_keys()
    first_worker = CertStoreHolder(holder.current, ticket_keys=keys)
    second_worker = CertStoreHolder(holder.current, ticket_keys=keys)
    assert first_worker.shared_tickets and second_worker.shared_tickets
    ports = [await serve(first_worker.server_context()), await serve(second_worker.server_context())]
    client = verifying(pki, maximum=maximum)

    first = await handshake(ports[0], client, "b.test")
    assert not first.reused and first.session is not None
    second = await handshake(ports[1], client, "b.test", session=first.session)
    assert second.reused and second.serial == leaves["b.test"].serial and second.reply == b"ok hi"
    # And back: the ticket the second listener issued opens on the first.
    third = await handshake(ports[0], client, "b.test", session=second.session)
    assert third.reused


@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
async def test_listeners_with_their_own_ticket_keys_do_not_resume_each_others_sessions(pki, site, serve, maximum):
    """The counterpart of the test above (what workers did before they shared keys): a full handshake."""
    holder, _ = site
    ports = [await serve(CertStoreHolder(holder.current).server_context()),
             await serve(CertStoreHolder(holder.current, ticket_keys=new_ticket_keys()).server_context())]
    client = verifying(pki, maximum=maximum)
    first = await handshake(ports[0], client, "b.test")
    assert (await handshake(ports[0], client, "b.test", session=first.session)).reused
    elsewhere = await handshake(ports[1], client, "b.test", session=first.session)
    assert not elsewhere.reused and elsewhere.reply == b"ok hi"


def test_ticket_keys_are_checked_and_read_back():
    context = new_server_context()
    with pytest.raises(ValueError, match="80 bytes"):
        set_ticket_keys(context, b"short")
    keys = new_ticket_keys()
    assert len(keys) == TICKET_KEYS_LENGTH and keys != new_ticket_keys()
    assert set_ticket_keys(context, keys) is None  # None: set, and read back equal
    # A holder without keys keeps OpenSSL's random ones.
    assert not CertStoreHolder(CertStore(default=generate_default_certificate())).shared_tickets
