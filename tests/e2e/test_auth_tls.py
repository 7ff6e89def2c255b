"""Client certificates (ingress-nginx's `auth-tls-*` annotations) through the real `pyngress` process.

Real TLS clients present certificates made here with `cryptography` (tests/tls/conftest.py's Pki: a root and an
intermediate per CA; a client sends its leaf and the intermediate, the auth-tls Secret's `ca.crt` holds the
root). Cases and status codes are ingress-nginx's test/e2e/annotations/authtls.go (cited per test) and its
docs/user-guide/nginx-configuration/annotations.md "Client Certificate Authentication".

The CA Secrets are kubernetes.io/tls Secrets that also carry `ca.crt` (the host's certificate and its client CA
in one Secret, common in practice): the Secret watch sees that type today.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from e2e_harness import DEADLINE, INGRESS_CLASS, eventually, ingress, service
from test_tls_listener import NOW, Pki, read_response, secret_manifest, tls_pki

A = "nginx.ingress.kubernetes.io/"


class Client:
    """A TLS client of the proxy, with or without a client certificate (leaf + intermediate)."""

    def __init__(self, server_pki: Pki, leaf: Any = None) -> None:
        self.context = ssl.create_default_context(cafile=str(server_pki.cafile))
        if leaf is not None:
            folder = server_pki.cafile.parent
            chain, key = folder / f"client-{leaf.serial}.pem", folder / f"client-{leaf.serial}.key"
            chain.write_bytes(leaf.chain_pem)
            key.write_bytes(leaf.key_pem)
            self.context.load_cert_chain(chain, key)

    async def get(self, port: int, host: str, path: str = "/", *, sni: str | None = None,
                  headers: str = "") -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection; SNI `host` unless `sni` says otherwise ("": none)."""
        async with asyncio.timeout(DEADLINE):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=self.context,
                                                           server_hostname=host if sni is None else sni)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode())
                return await read_response(reader)
            finally:
                writer.close()


def ca_secret(leaf: Any, name: str, ca_pki: Pki) -> dict:
    """A kubernetes.io/tls Secret with the host's certificate and, in `ca.crt`, the client CA's root."""
    obj = secret_manifest(leaf, name)
    obj["data"]["ca.crt"] = base64.b64encode(ca_pki.cafile.read_bytes()).decode()
    return obj


def named_leaf(pki: Pki, name: x509.Name) -> Any:
    """A client certificate of `pki`'s intermediate with the subject `name`."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(pki.inter.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - timedelta(hours=1))
            .not_valid_after(NOW + timedelta(days=1)).sign(pki.inter_key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return tls_pki.Leaf(cert, key, pem + pki.inter.public_bytes(serialization.Encoding.PEM), key_pem)


def crl(issuer: Any, key: Any, *revoked: Any) -> bytes:
    """A PEM CRL of `issuer` listing the `revoked` leaves."""
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
               .last_update(NOW - timedelta(hours=1)).next_update(NOW + timedelta(days=1)))
    for leaf in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(leaf.serial).revocation_date(NOW - timedelta(minutes=5))
            .build())
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def site(name: str, host: str, secret: str, annotations: dict[str, str]) -> dict:
    obj = ingress(name, host=host, paths=[("/", "Prefix", "web", 80)])
    obj["spec"]["tls"] = [{"hosts": [host], "secretName": secret}]
    obj["metadata"]["annotations"] = {A + key: value for key, value in annotations.items()}
    return obj


@pytest.fixture
def pkis(tmp_path: Path) -> dict[str, Pki]:
    found = {}
    for name in ("server", "clients", "other"):
        (tmp_path / name).mkdir()
        found[name] = Pki(tmp_path / name, name=f"auth-tls {name}")
    return found


async def start(echo_pods, manifests, pyngress, pkis, ingresses: list[dict], *, secrets: list[dict] | None = None,
                flags: tuple[str, ...] = ()):
    [pod] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    server = pkis["server"]
    hosts = sorted({i["spec"]["rules"][0]["host"] for i in ingresses} | {"plain.test"})
    leaf = server.leaf(*hosts)
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[pod]))
    manifests.write("secrets.yaml", secrets if secrets is not None else [
        ca_secret(leaf, "auth", pkis["clients"]), ca_secret(leaf, "auth-other", pkis["other"]),
        secret_manifest(leaf, "plain")])
    plain = site("plain", "plain.test", "plain", {})
    manifests.write("ingress.yaml", [*ingresses, plain])
    proc = await pyngress(manifests.path, *flags)
    return proc, proc.ports["https"], leaf


async def test_verify_on_requires_a_certificate_of_the_ca(echo_pods, manifests, pyngress, pkis):
    """authtls.go "should set sslClientCertificate, sslVerifyClient and sslVerifyDepth with auth-tls-secret":
    no certificate 400, a certificate of the CA 200; the ssl-client-* headers as its template sets them."""
    proc, port, _ = await start(echo_pods, manifests, pyngress, pkis,
                                [site("auth", "auth.test", "auth", {"auth-tls-secret": "default/auth"})])
    server = pkis["server"]
    status, _, body = await Client(server).get(port, "auth.test")
    assert status == 400 and b"No required SSL certificate was sent" in body

    good = pkis["clients"].leaf("authtls-client")
    status, _, body = await Client(server, good).get(port, "auth.test", headers="ssl-client-verify: forged\r\n"
                                                     "ssl-client-cert: forged\r\n")
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen["ssl-client-verify"] == "SUCCESS"  # the client's own value replaced
    assert seen["ssl-client-subject-dn"] == "CN=authtls-client"
    assert seen["ssl-client-issuer-dn"] == "CN=auth-tls clients intermediate"
    assert "ssl-client-cert" not in seen  # not passed without the annotation, and the forged one dropped

    # A certificate of another CA: the handshake completes (as nginx's), the request gets 400.
    stranger = pkis["other"].leaf("authtls-client")
    status, _, body = await Client(server, stranger).get(port, "auth.test")
    assert status == 400 and b"The SSL certificate error" in body

    # The subject as nginx's $ssl_client_s_dn prints it (RFC 2253, OpenSSL's short names, last RDN first).
    named = named_leaf(pkis["clients"], x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc"),
        x509.NameAttribute(NameOID.COMMON_NAME, "ops"), x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ops@example.com")]))
    status, _, body = await Client(server, named).get(port, "auth.test")
    subject = json.loads(body)["headers"]["ssl-client-subject-dn"]
    assert status == 200 and subject == r"emailAddress=ops@example.com,CN=ops,O=Example\, Inc,C=DE"

    # The host without auth-tls asks nothing and sends no ssl-client-* header.
    status, _, body = await Client(server, stranger).get(port, "plain.test")
    assert status == 200 and "ssl-client-verify" not in json.loads(body)["headers"]


async def test_verify_modes_off_optional_and_optional_no_ca(echo_pods, manifests, pyngress, pkis):
    """authtls.go "should validate auth-tls-verify-client" (on, then off: 200 without certificate) and
    "should set valid auth-tls-secret, sslVerify to off"; optional and optional_no_ca as nginx's ssl_verify_client."""
    proc, port, _ = await start(echo_pods, manifests, pyngress, pkis, [
        site("off", "off.test", "auth", {"auth-tls-secret": "default/auth", "auth-tls-verify-client": "off",
                                         "auth-tls-verify-depth": "2"}),
        site("opt", "optional.test", "auth", {"auth-tls-secret": "default/auth",
                                              "auth-tls-verify-client": "optional"}),
        site("noca", "noca.test", "auth", {"auth-tls-secret": "default/auth",
                                           "auth-tls-verify-client": "optional_no_ca"}),
    ])
    server = pkis["server"]
    good, stranger = pkis["clients"].leaf("good"), pkis["other"].leaf("stranger")
    for host in ("off.test", "optional.test", "noca.test"):
        status, _, body = await Client(server).get(port, host)
        assert status == 200, host
        assert json.loads(body)["headers"]["ssl-client-verify"] == "NONE"
    status, _, body = await Client(server, good).get(port, "optional.test")
    assert status == 200 and json.loads(body)["headers"]["ssl-client-verify"] == "SUCCESS"
    assert (await Client(server, stranger).get(port, "optional.test"))[0] == 400
    status, _, body = await Client(server, stranger).get(port, "noca.test")
    seen = json.loads(body)["headers"]
    assert status == 200 and seen["ssl-client-verify"].startswith("FAILED:")
    assert seen["ssl-client-subject-dn"] == "CN=stranger"


async def test_error_page_pass_certificate_and_match_cn(echo_pods, manifests, pyngress, pkis):
    """authtls.go "should 302 redirect to error page instead of 400 when auth-tls-error-page is set", "should pass
    URL-encoded certificate to upstream", "should return 403 using auth-tls-match-cn with no matching CN" and
    "... where atleast one of the regex options matches CN from client"."""
    proc, port, _ = await start(echo_pods, manifests, pyngress, pkis, [
        site("page", "page.test", "auth", {"auth-tls-secret": "default/auth",
                                           "auth-tls-error-page": "http://page.test/error"}),
        site("pass", "pass.test", "auth", {"auth-tls-secret": "default/auth",
                                           "auth-tls-pass-certificate-to-upstream": "true"}),
        site("nocn", "nocn.test", "auth", {"auth-tls-secret": "default/auth", "auth-tls-match-cn": "CN=notgonnamatch"}),
        site("cn", "cn.test", "auth", {"auth-tls-secret": "default/auth",
                                       "auth-tls-match-cn": "CN=(itwillmatch|withthenextoption|authtls)"}),
    ])
    server = pkis["server"]
    good = pkis["clients"].leaf("authtls")
    status, headers, _ = await Client(server).get(port, "page.test")
    assert status == 302 and headers["location"] == "http://page.test/error"
    assert (await Client(server, good).get(port, "page.test"))[0] == 200

    assert (await Client(server).get(port, "pass.test"))[0] == 400
    status, _, body = await Client(server, good).get(port, "pass.test")
    sent = json.loads(body)["headers"]["ssl-client-cert"]
    assert status == 200 and sent.startswith("-----BEGIN%20CERTIFICATE-----%0A")

    assert (await Client(server, good).get(port, "nocn.test"))[0] == 403
    assert (await Client(server, good).get(port, "cn.test"))[0] == 200


async def test_missing_ca_secret_and_bad_values_fail_closed(echo_pods, manifests, pyngress, pkis):
    """ingress-nginx denies the location when the auth-tls Secret cannot be obtained (authtls/main.go:
    LocationDenied): 503 for that Ingress's routes, the other hosts keep serving; an invalid match-cn too."""
    proc, port, _ = await start(echo_pods, manifests, pyngress, pkis, [
        site("gone", "gone.test", "auth", {"auth-tls-secret": "default/missing"}),
        site("badcn", "badcn.test", "auth", {"auth-tls-secret": "default/auth", "auth-tls-match-cn": "CN=(x"}),
        site("ok", "ok.test", "auth", {"auth-tls-secret": "default/auth"}),
    ])
    server = pkis["server"]
    good = pkis["clients"].leaf("good")
    assert (await Client(server, good).get(port, "gone.test"))[0] == 503
    assert (await Client(server, good).get(port, "badcn.test"))[0] == 503
    assert (await Client(server, good).get(port, "ok.test"))[0] == 200
    assert (await Client(server).get(port, "plain.test"))[0] == 200

    await eventually(lambda: "default/missing" in proc.log() and "auth-tls-match-cn" in proc.log())

    # The Secret appears: the host asks for certificates from then on.
    server_leaf = server.leaf("gone.test", "badcn.test", "ok.test", "plain.test")
    manifests.write("secrets.yaml", [ca_secret(server_leaf, "auth", pkis["clients"]),
                                     ca_secret(server_leaf, "missing", pkis["clients"]),
                                     secret_manifest(server_leaf, "plain")])

    async def served() -> bool:
        return (await Client(server, good).get(port, "gone.test"))[0] == 200

    await eventually(served)
    assert (await Client(server).get(port, "gone.test"))[0] == 400


async def test_no_bypass_by_sni_or_session_resumption(echo_pods, manifests, pyngress, pkis):
    """Not in ingress-nginx's e2e: a connection opened for a host without client certificates (SNI plain.test)
    cannot reach an authenticating host (421), and a session verified against one host's CA is not resumed on a
    host of another CA (a full handshake verifies again: 400)."""
    proc, port, _ = await start(echo_pods, manifests, pyngress, pkis, [
        site("a", "a.test", "auth", {"auth-tls-secret": "default/auth"}),
        site("b", "b.test", "auth-other", {"auth-tls-secret": "default/auth-other"}),
    ])
    server = pkis["server"]
    status, _, _ = await Client(server).get(port, "a.test", sni="plain.test")
    assert status == 421
    # No SNI at all: the default context asks nothing, and the route refuses to serve unverified.
    anonymous = Client(server)
    anonymous.context.check_hostname = False
    anonymous.context.verify_mode = ssl.CERT_NONE
    assert (await anonymous.get(port, "a.test", sni=""))[0] == 503

    good = pkis["clients"].leaf("good")
    client = Client(server, good)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        client.context.maximum_version = version

        def resume() -> tuple[bool, int]:
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
                with client.context.wrap_socket(raw, server_hostname="a.test") as first:
                    first.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                    assert first.recv(12).startswith(b"HTTP/1.1 200")
                    while first.recv(65536):
                        pass
                    session = first.session
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
                with client.context.wrap_socket(raw, server_hostname="b.test", session=session) as second:
                    second.sendall(b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
                    return second.session_reused, int(second.recv(12).split()[1])

        reused, status = await asyncio.get_running_loop().run_in_executor(None, resume)
        assert not reused and status == 400, version


async def test_worker_processes_ask_for_certificates_too(echo_pods, manifests, pyngress, pkis):
    """`--workers 2`: each worker builds its own certificate store and drives its own libssl."""
    proc, port, _ = await start(echo_pods, manifests, pyngress, pkis,
                                [site("auth", "auth.test", "auth", {"auth-tls-secret": "default/auth"})],
                                flags=("--workers", "2"))
    server = pkis["server"]
    good = Client(server, pkis["clients"].leaf("good"))
    for _ in range(4):  # connections land on either worker
        assert (await Client(server).get(port, "auth.test"))[0] == 400
        status, _, body = await good.get(port, "auth.test")
        assert status == 200 and json.loads(body)["headers"]["ssl-client-verify"] == "SUCCESS"


async def test_revoked_certificates_from_ca_crl(echo_pods, manifests, pyngress, pkis):
    """ingress-nginx's `ca.crl` key (docs: "Client Certificate Authentication", nginx's ssl_crl, which checks a CRL
    for every CA of the chain): a revoked client certificate is refused with 400, the others pass."""
    clients = pkis["clients"]
    kept, revoked = clients.leaf("kept"), clients.leaf("revoked")
    server_leaf = pkis["server"].leaf("auth.test", "plain.test")
    secret = ca_secret(server_leaf, "auth", clients)
    secret["data"]["ca.crl"] = base64.b64encode(
        crl(clients.root, clients.root_key) + crl(clients.inter, clients.inter_key, revoked)).decode()
    proc, port, _ = await start(echo_pods, manifests, pyngress, pkis,
                                [site("auth", "auth.test", "auth", {"auth-tls-secret": "default/auth"})],
                                secrets=[secret, secret_manifest(server_leaf, "plain")])
    server = pkis["server"]
    assert (await Client(server, kept).get(port, "auth.test"))[0] == 200
    status, _, body = await Client(server, revoked).get(port, "auth.test")
    assert status == 400 and b"The SSL certificate error" in body
