"""CA Secrets of ingress-nginx's auth-tls-secret and the per-host contexts the certificate store prepares for them.

Facts from ingress-nginx's docs ("Client Certificate Authentication": `ca.crt`, optionally `ca.crl`) and
authtls/main.go (a Secret that cannot be used denies the location). The handshakes themselves are
tests/e2e/test_auth_tls.py's.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from proxy.objects import Snapshot
from proxy.tls.certs import Certificate, parse_secret
from proxy.tls.client_auth import available, parse_ca_secret
from proxy.tls.hosts import build_store

NOW = datetime.now(UTC)


def ca_secret(**data: bytes) -> dict:
    return {"metadata": {"namespace": "default", "name": "ca"}, "type": "Opaque",
            "data": {key.replace("_", "."): base64.b64encode(value).decode() for key, value in data.items()}}


def certificate(leaf) -> Certificate:
    parsed = parse_secret(leaf.secret())
    assert not isinstance(parsed, str)
    return parsed


def crl_pem(pki) -> bytes:
    crl = (x509.CertificateRevocationListBuilder().issuer_name(pki.inter.subject).last_update(NOW)
           .next_update(NOW + timedelta(days=1)).sign(pki.inter_key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM)


def test_ca_secret_is_checked_once(pki):
    root = pki.cafile.read_bytes()
    assert parse_ca_secret(ca_secret()) == "missing 'ca.crt'"
    assert parse_ca_secret({"data": {"ca.crt": "not base64!"}}) == "data['ca.crt'] is not valid base64"
    assert parse_ca_secret(ca_secret(ca_crt=b"garbage")) == "ca.crt: no valid PEM certificate"
    assert "ca.crl" in str(parse_ca_secret(ca_secret(ca_crt=root, ca_crl=b"garbage")))
    both = parse_ca_secret(ca_secret(ca_crt=root, ca_crl=crl_pem(pki) + crl_pem(pki)))
    assert not isinstance(both, str) and both.crl_pem.count(b"BEGIN X509 CRL") == 2
    # Any Secret type, stringData too (file mode).
    plain = parse_ca_secret({"stringData": {"ca.crt": root.decode()}, "type": "kubernetes.io/tls"})
    assert not isinstance(plain, str) and plain.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_hosts_asking_certificates_get_their_own_context_reused_across_builds(pki):
    assert available()[0]
    leaf = pki.leaf("auth.test", "plain.test")
    snap = Snapshot(secrets={("default", "tls"): leaf.secret("default", "tls"),
                             ("default", "ca"): ca_secret(ca_crt=pki.cafile.read_bytes())})
    hosts = {"auth.test": ("default", "tls"), "plain.test": ("default", "tls")}
    wanted = {"auth.test": (("default", "ca"), "on", 1), "other.test": (("default", "ca"), "optional", 2)}
    store, warnings = build_store(snap, hosts, default=certificate(pki.leaf("default.test")),
                                  client_auth=wanted)
    assert warnings == []
    auth, other, plain = store.select("auth.test"), store.select("other.test"), store.select("plain.test")
    assert len({id(auth), id(other), id(plain)}) == 3
    assert store.client_auth[auth].secret == "default/ca" and plain not in store.client_auth
    assert (store.client_auth[other].verify, store.client_auth[other].depth) == ("optional", 2)
    assert store.certificate_for("other.test") == store.default  # not in spec.tls: the default certificate

    again, _ = build_store(snap, hosts, default=store.default, client_auth=wanted, reuse=store)
    assert again.select("auth.test") is auth and again.client_auth[auth] == store.client_auth[auth]


def test_a_missing_ca_secret_leaves_the_host_without_a_verdict(pki):
    """authtls/main.go: "error obtaining certificate" denies the location; the route's check answers 503."""
    leaf = pki.leaf("auth.test")
    snap = Snapshot(secrets={("default", "tls"): leaf.secret("default", "tls")})
    store, warnings = build_store(snap, {"auth.test": ("default", "tls")}, default=certificate(leaf),
                                  client_auth={"auth.test": (("default", "gone"), "on", 1)})
    assert store.client_auth == {}
    assert [(w.name, "not found" in w.message) for w in warnings] == [("gone", True)]
