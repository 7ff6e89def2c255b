"""Pods for upstream tests: HTTPS servers with certificates made here, and health endpoints whose answer a
test sets. Real sockets on 127.0.0.x; certificates from tests/tls/conftest.py's Pki (root → intermediate →
leaves), extended with IP and URI SANs."""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.tls.store import load_chain

if "tls_pki" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("tls_pki",
                                                   Path(__file__).resolve().parents[1] / "tls" / "conftest.py")
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["tls_pki"] = _module  # dataclasses look their module up
    _spec.loader.exec_module(_module)
tls_pki: Any = sys.modules["tls_pki"]
Pki = tls_pki.Pki
Leaf = tls_pki.Leaf
NOW: datetime = tls_pki.NOW


def root_pem(pki: Any) -> bytes:
    return pki.cafile.read_bytes()


def leaf_with(pki: Any, *, dns: tuple[str, ...] = (), uris: tuple[str, ...] = (), ips: tuple[str, ...] = (),
              not_before: datetime | None = None, not_after: datetime | None = None) -> Any:
    """A leaf of `pki` with exactly these SANs (DNS names, URIs, IP addresses)."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pod")]))
        .issuer_name(pki.inter.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(hours=1))
        .not_valid_after(not_after or NOW + timedelta(days=7))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(pki.inter_key, hashes.SHA256())
    return Leaf(cert, key, tls_pki._pem(cert) + tls_pki._pem(pki.inter), tls_pki._key_pem(key))


def client_leaf(pki: Any, name: str = "pyngress") -> Any:
    """A client certificate (for mutual TLS) issued by `pki`."""
    return pki.leaf(name)


def server_context(leaf: Any, *, client_ca: bytes | None = None, names: list[str] | None = None) -> ssl.SSLContext:
    """A server context presenting `leaf`; `client_ca`: require a client certificate issued under it;
    `names`: collects the SNI name of each handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_chain(context, leaf.chain_pem, leaf.key_pem)
    context.set_alpn_protocols(["http/1.1"])
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca.decode())
    if names is not None:
        def remember(ssl_object: Any, name: str | None, _context: Any) -> None:
            names.append(name or "")
        context.sni_callback = remember
    return context


@dataclass
class HttpServer:
    """A small HTTP/1.1 server (TLS when given a context): answers each request with `status` and the body
    "ok" on a keep-alive connection. `mode`: "answer", "silent" (reads, never answers), "garbage" (not HTTP).
    Records connections, requests, SNI names, ALPN and client certificate subjects."""

    host: str
    context: ssl.SSLContext | None = None
    status: int = 200
    mode: str = "answer"
    port: int = 0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    server_names: list[str] = field(default_factory=list)
    alpn: list[str | None] = field(default_factory=list)
    client_subjects: list[str] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    on_accept: Callable[[], None] | None = None  # called as each connection is accepted

    async def start(self) -> HttpServer:
        self.server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.on_accept is not None:
            self.on_accept()
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.alpn.append(ssl_object.selected_alpn_protocol())
            peer = ssl_object.getpeercert()
            if peer:
                self.client_subjects.append(dict(item[0] for item in peer["subject"])["commonName"])
        try:
            first = b""
            if self.context is None:  # a plain HTTP pod answers a TLS ClientHello with 400, as real servers do
                first = await reader.readexactly(1)
                if first == b"\x16":
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    await writer.drain()
                    return
            while True:
                head = first + await reader.readuntil(b"\r\n\r\n")
                first = b""
                self.requests.append(head)
                if self.mode == "silent":
                    await reader.read()  # until the client gives up
                    return
                if self.mode == "garbage":
                    writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
                    await writer.drain()
                    return
                status = self.status
                self.answered.append(status)
                close = b"connection: close" in head.lower()
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n%s\r\nok"
                             % (status, b"Connection: close\r\n" if close else b""))
                await writer.drain()
                if close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.open_now -= 1
            self.handlers.discard(task)
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()
        for handler in list(self.handlers):
            handler.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)


async def raw_get(conn: Any, path: str = "/", host: str = "pod") -> bytes:
    """One keep-alive GET on an UpstreamConnection taken from a pool: the response bytes (head and "ok")."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    received = bytearray()

    class User:
        def upstream_data(self, data: bytes) -> None:
            received.extend(data)
            if received.endswith(b"\r\n\r\nok") and not done.done():
                done.set_result(bytes(received))

        def upstream_eof(self) -> None:
            if not done.done():
                done.set_exception(ConnectionError("eof"))

        def upstream_lost(self, exc: Exception | None) -> None:
            if not done.done():
                done.set_exception(exc or ConnectionError("lost"))

        def upstream_write_paused(self) -> None:
            pass

        def upstream_write_resumed(self) -> None:
            pass

    conn.user = User()
    conn.transport.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    try:
        async with asyncio.timeout(10):
            return await done
    finally:
        conn.user = None
