"""HTTPS through the real `pyngress` process: SNI certificates from Ingress spec.tls, the default
certificate, broken Secrets, rotation, HTTP->HTTPS redirects, HSTS and domain fronting (421).

Certificates come from a test CA made here with `cryptography` (tests/tls/conftest.py's Pki).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import ssl
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from e2e_harness import DEADLINE, INGRESS_CLASS, eventually, ingress, scrape, service

_spec = importlib.util.spec_from_file_location("tls_pki", Path(__file__).resolve().parents[1] / "tls" / "conftest.py")
tls_pki = importlib.util.module_from_spec(_spec)
sys.modules["tls_pki"] = tls_pki  # dataclasses look their module up
_spec.loader.exec_module(tls_pki)
Pki = tls_pki.Pki
NOW = tls_pki.NOW


def secret_manifest(leaf: Any, name: str, namespace: str = "default") -> dict:
    obj = leaf.secret(namespace, name)
    obj["metadata"].pop("resourceVersion", None)
    return {"apiVersion": "v1", "kind": "Secret", **obj}


def with_tls(obj: dict, *entries: tuple[list[str] | None, str | None], annotations: dict | None = None) -> dict:
    tls = []
    for hosts, secret in entries:
        entry: dict[str, Any] = {}
        if hosts is not None:
            entry["hosts"] = hosts
        if secret is not None:
            entry["secretName"] = secret
        tls.append(entry)
    obj["spec"]["tls"] = tls
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return obj


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, serial: int | None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.serial = serial  # the serial number of the certificate the server presented

    def json(self) -> Any:
        return json.loads(self.body)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            # a repeated field reads as one comma-joined value, so a duplicate shows
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


def client_context() -> ssl.SSLContext:
    # Certificates are checked by serial number: the default one is self-signed and not trusted.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class TlsConnection:
    """One keep-alive TLS connection to the proxy with a chosen SNI (or none)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        self.serial = x509.load_der_x509_certificate(der).serial_number

    @classmethod
    async def open(cls, port: int, sni: str | None) -> TlsConnection:
        async with asyncio.timeout(DEADLINE):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(), server_hostname=sni or "")
        return cls(reader, writer)

    async def get(self, path: str, host: str, *, close: bool = False) -> Response:
        extra = "Connection: close\r\n" if close else ""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        async with asyncio.timeout(DEADLINE):
            status, headers, body = await read_response(self.reader)
        return Response(status, headers, body, self.serial)

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(DEADLINE):
                await self.writer.wait_closed()
        except (OSError, ssl.SSLError, TimeoutError):
            pass


async def https_get(port: int, path: str, *, host: str, sni: str | None = "") -> Response:
    """One request on a fresh TLS connection; SNI is `host` unless given ("" or None: no SNI)."""
    conn = await TlsConnection.open(port, host if sni == "" else sni)
    try:
        return await conn.get(path, host, close=True)
    finally:
        await conn.close()


async def http_get(port: int, path: str, *, host: str) -> Response:
    async with asyncio.timeout(DEADLINE):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            status, headers, body = await read_response(reader)
        finally:
            writer.close()
    return Response(status, headers, body, None)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def setup_sites(echo_pods, manifests, pki):
    """a.test and b.test with their own certificates, *.wild.test with a wildcard one, one backend pod."""
    [pod] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    certs = {"a": pki.leaf("a.test"), "b": pki.leaf("b.test"), "wild": pki.leaf("*.wild.test")}
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[pod]))
    manifests.write("secrets.yaml", [secret_manifest(certs[n], f"{n}-tls") for n in certs])
    manifests.write("ingress.yaml", [
        with_tls(ingress("a", host="a.test", paths=[("/", "Prefix", "web", 80)]), (["a.test"], "a-tls")),
        with_tls(ingress("b", host="b.test", paths=[("/", "Prefix", "web", 80)]), (None, "b-tls")),
        with_tls(ingress("wild", host="*.wild.test", paths=[("/", "Prefix", "web", 80)]),
                 (["*.wild.test"], "wild-tls")),
        ingress("plain", host="plain.test", paths=[("/", "Prefix", "web", 80)]),
    ])
    return pod, certs


async def test_sni_selects_each_hosts_certificate(echo_pods, manifests, pyngress, pki):
    pod, certs = await setup_sites(echo_pods, manifests, pki)
    proc = await pyngress(manifests.path)
    port = proc.ports["https"]

    a = await https_get(port, "/x?q=1", host="a.test")
    assert a.serial == certs["a"].serial
    assert a.status == 200 and a.json()["pod"] == "web-1" and a.json()["path"] == "/x"
    seen = a.json()["headers"]
    assert seen["x-forwarded-proto"] == "https" and seen["x-forwarded-port"] == str(port)

    # A verifying client that trusts only the test root accepts the chain (leaf + intermediate) served.
    verifying = ssl.create_default_context(cafile=str(pki.cafile))
    async with asyncio.timeout(DEADLINE):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=verifying, server_hostname="a.test")
        writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() in (None, "http/1.1")
        writer.close()

    b = await https_get(port, "/", host="b.test")  # spec.tls without hosts: the rule hosts
    assert b.serial == certs["b"].serial and b.status == 200

    wild = await https_get(port, "/", host="api.wild.test")
    assert wild.serial == certs["wild"].serial and wild.status == 200
    assert (await https_get(port, "/", host="WWW.Wild.Test")).serial == certs["wild"].serial

    # Unknown SNI, no SNI: the generated default certificate (neither of ours), routing still by Host.
    unknown = await https_get(port, "/", host="plain.test")
    assert unknown.serial not in {c.serial for c in certs.values()}
    assert unknown.status == 200
    none = await https_get(port, "/", host="a.test", sni=None)
    assert none.serial == unknown.serial


async def test_broken_secret_falls_back_to_default_while_others_keep_theirs(echo_pods, manifests, pyngress, pki):
    pod, certs = await setup_sites(echo_pods, manifests, pki)
    expired = pki.leaf("a.test", not_before=NOW - timedelta(days=3), not_after=NOW - timedelta(days=1))
    mismatched = certs["b"].secret("default", "b-tls", key_pem=pki.leaf("b.test").key_pem)
    mismatched["metadata"].pop("resourceVersion")
    manifests.write("secrets.yaml", [secret_manifest(expired, "a-tls"), {"apiVersion": "v1", "kind": "Secret",
                                                                         **mismatched},
                                     secret_manifest(certs["wild"], "wild-tls")])
    proc = await pyngress(manifests.path)
    port = proc.ports["https"]
    default = (await https_get(port, "/", host="unknown.test")).serial
    a = await https_get(port, "/", host="a.test")
    b = await https_get(port, "/", host="b.test")
    assert a.serial == default and b.serial == default
    assert a.status == 200 and b.status == 200
    assert (await https_get(port, "/", host="x.wild.test")).serial == certs["wild"].serial
    assert "a-tls" in proc.log() and "b-tls" in proc.log()

    # Expiry per TLS host, read from the served store: the fallbacks report the default certificate.
    name = "pyngress_ssl_certificate_expiry_timestamp_seconds"
    wild_expiry = await scrape(proc, name, host="*.wild.test", secret="default/wild-tls")
    assert wild_expiry == certs["wild"].cert.not_valid_after_utc.timestamp()
    default_expiry = await scrape(proc, name, host="", secret="")
    assert default_expiry is not None and default_expiry > NOW.timestamp()
    assert await scrape(proc, name, host="a.test", secret="") == default_expiry


async def test_rotated_secret_reaches_new_handshakes_and_open_connections_stay(echo_pods, manifests, pyngress,
                                                                                 pki):
    pod, certs = await setup_sites(echo_pods, manifests, pki)
    proc = await pyngress(manifests.path)
    port = proc.ports["https"]
    kept = await TlsConnection.open(port, "a.test")
    try:
        assert kept.serial == certs["a"].serial
        assert (await kept.get("/", "a.test")).status == 200

        rotated = pki.leaf("a.test")
        manifests.write("secrets.yaml", [secret_manifest(rotated, "a-tls"), secret_manifest(certs["b"], "b-tls"),
                                         secret_manifest(certs["wild"], "wild-tls")])

        async def new_serial() -> bool:
            return (await https_get(port, "/", host="a.test")).serial == rotated.serial

        await eventually(new_serial)
        again = await kept.get("/", "a.test")  # the open keep-alive connection still works
        assert again.status == 200 and again.json()["pod"] == "web-1"
        assert (await https_get(port, "/", host="b.test")).serial == certs["b"].serial
    finally:
        await kept.close()


async def test_plain_http_to_tls_hosts_is_redirected_and_https_carries_hsts(echo_pods, manifests, pyngress, pki):
    pod, certs = await setup_sites(echo_pods, manifests, pki)
    forced = ingress("forced", host="forced.test", paths=[("/", "Prefix", "web", 80)])
    forced["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}
    forced2 = ingress("forced2", host="forced2.test", paths=[("/", "Prefix", "web", 80)])
    forced2["metadata"]["annotations"] = {"pyngress.dev/force-ssl-redirect": "true"}
    manifests.write("forced.yaml", [forced, forced2])
    manifests.write("more.yaml", [
        with_tls(ingress("optout", host="optout.test", paths=[("/", "Prefix", "web", 80)]),
                 (["optout.test"], "a-tls"), annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
        with_tls(ingress("optout2", host="optout2.test", paths=[("/", "Prefix", "web", 80)]),
                 (["optout2.test"], "a-tls"), annotations={"pyngress.dev/ssl-redirect": "false"}),
    ])
    proc = await pyngress(manifests.path)
    http, https = proc.ports["http"], proc.ports["https"]

    for host in ("a.test", "b.test", "x.wild.test", "forced.test", "forced2.test"):
        moved = await http_get(http, "/some/path?q=1&r=2", host=host)
        assert moved.status == 308, (host, moved.status)
        # No port: lua_ingress.lua writes none without use-port-in-redirects (--publish-https-port for us).
        assert moved.headers["location"] == f"https://{host}/some/path?q=1&r=2"
        assert "strict-transport-security" not in moved.headers
    for host in ("plain.test", "optout.test", "optout2.test"):
        served = await http_get(http, "/p", host=host)
        assert served.status == 200 and served.json()["headers"]["x-forwarded-proto"] == "http"
        assert "strict-transport-security" not in served.headers
    # ACME HTTP-01 challenges stay on plain HTTP.
    assert (await http_get(http, "/.well-known/acme-challenge/token", host="a.test")).status == 200

    secure = await https_get(https, "/", host="a.test")
    assert secure.status == 200
    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert (await https_get(https, "/", host="plain.test")).headers["strict-transport-security"]
    # an upstream that sets its own policy keeps it, without a second header from the proxy
    own = await https_get(https, "/?respond-header=Strict-Transport-Security:max-age=60", host="a.test")
    assert own.status == 200 and own.headers["strict-transport-security"] == "max-age=60"


async def test_host_served_by_another_certificate_than_the_sni_is_misdirected(echo_pods, manifests, pyngress,
                                                                              pki):
    pod, certs = await setup_sites(echo_pods, manifests, pki)
    proc = await pyngress(manifests.path)
    port = proc.ports["https"]
    fronted = await https_get(port, "/", host="b.test", sni="a.test")
    assert fronted.status == 421 and fronted.serial == certs["a"].serial
    assert fronted.headers["strict-transport-security"].startswith("max-age=")  # also on the proxy's own answers
    assert (await https_get(port, "/", host="plain.test", sni="a.test")).status == 421
    # Same certificate for both names (the wildcard): allowed, and so is a Host with a port or in capitals.
    same = await https_get(port, "/", host="one.wild.test", sni="two.wild.test")
    assert same.status == 200 and same.json()["pod"] == "web-1"
    assert (await https_get(port, "/", host="A.test:443", sni="a.test")).status == 200
    # Both on the default certificate: nothing to front.
    assert (await https_get(port, "/", host="plain.test", sni="other.test")).status == 200


async def test_default_ssl_certificate_flag_serves_unknown_names_and_follows_its_secret(echo_pods, manifests,
                                                                                        pyngress, pki):
    pod, certs = await setup_sites(echo_pods, manifests, pki)
    fallback = pki.leaf("fallback.test")
    manifests.write("default.yaml", secret_manifest(fallback, "fallback", namespace="ingress"))
    proc = await pyngress(manifests.path, "--default-ssl-certificate", "ingress/fallback")
    port = proc.ports["https"]
    assert (await https_get(port, "/", host="plain.test")).serial == fallback.serial
    assert (await https_get(port, "/", host="a.test", sni=None)).serial == fallback.serial
    assert (await https_get(port, "/", host="a.test")).serial == certs["a"].serial

    # No Ingress names this Secret, yet changing it reaches new handshakes (always relevant).
    renewed = pki.leaf("fallback.test")
    manifests.write("default.yaml", secret_manifest(renewed, "fallback", namespace="ingress"))

    async def renewed_served() -> bool:
        return (await https_get(port, "/", host="plain.test")).serial == renewed.serial

    await eventually(renewed_served)
    assert await scrape(proc, "pyngress_ssl_certificate_expiry_timestamp_seconds", host="",
                        secret="ingress/fallback") == renewed.cert.not_valid_after_utc.timestamp()


async def test_handshakes_are_counted_and_failures_by_reason(echo_pods, manifests, pyngress, pki):
    await setup_sites(echo_pods, manifests, pki)
    proc = await pyngress(manifests.path)
    port = proc.ports["https"]
    assert (await https_get(port, "/", host="a.test")).status == 200
    # plain HTTP on the TLS port, and bytes that are not TLS at all: each handshake fails, visibly
    for payload in (b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", b"\x00" * 64):
        async with asyncio.timeout(DEADLINE):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            assert await reader.read() == b""  # closed without an answer
            writer.close()
    assert (await https_get(port, "/", host="b.test")).status == 200  # and the listener still serves

    async def counted() -> bool:
        return await scrape(proc, "pyngress_ssl_handshake_failures_total", reason="not_tls") == 1

    await eventually(counted)
    assert await scrape(proc, "pyngress_ssl_handshake_failures_total", reason="plain_http") == 1
    assert await scrape(proc, "pyngress_ssl_handshake_failures_total", reason="timeout") == 0
    assert await scrape(proc, "pyngress_ssl_handshakes_total") == 2


async def test_hsts_and_redirect_port_flags(echo_pods, manifests, pyngress, pki):
    await setup_sites(echo_pods, manifests, pki)
    tuned = await pyngress(manifests.path, "--hsts-max-age", "600", "--no-hsts-include-subdomains", "--hsts-preload",
                           "--publish-https-port", "443")
    assert (await https_get(tuned.ports["https"], "/", host="a.test")).headers["strict-transport-security"] == (
        "max-age=600; preload")
    moved = await http_get(tuned.ports["http"], "/p?q=1", host="a.test")
    assert moved.status == 308 and moved.headers["location"] == "https://a.test/p?q=1"  # 443 is left out

    off = await pyngress(manifests.path, "--no-hsts", "--publish-https-port", "30443")
    answer = await https_get(off.ports["https"], "/", host="a.test")
    assert answer.status == 200 and "strict-transport-security" not in answer.headers
    moved = await http_get(off.ports["http"], "/p?q=1", host="a.test")
    assert moved.status == 308 and moved.headers["location"] == "https://a.test:30443/p?q=1"
