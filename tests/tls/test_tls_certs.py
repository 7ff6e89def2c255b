"""Parsing and checking kubernetes.io/tls Secrets; SAN matching; the generated default."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from proxy.tls.certs import Certificate, covers, parse_pem, parse_secret
from proxy.tls.default import DEFAULT_COMMON_NAME, generate_default_certificate

NOW = datetime.now(UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_valid_secret_gives_a_certificate(pki):
    leaf = pki.leaf("a.test", "*.wild.test", "A.Upper.test")
    cert = parse_secret(leaf.secret())
    assert isinstance(cert, Certificate), cert
    assert cert.serial == leaf.serial
    assert cert.subject == "CN=a.test"
    assert cert.dns_names == ("a.test", "*.wild.test", "a.upper.test")
    assert cert.not_after == leaf.cert.not_valid_after_utc
    assert cert.not_before == leaf.cert.not_valid_before_utc
    assert cert.fingerprint == hashlib.sha256(leaf.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    # Chain kept in order (leaf, intermediate); key re-encoded as unencrypted PKCS#8.
    chain = x509.load_pem_x509_certificates(cert.chain_pem)
    assert [c.serial_number for c in chain] == [leaf.serial, pki.inter.serial_number]
    assert cert.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b"PRIVATE KEY" not in repr(cert).encode()


def test_digest_follows_content_not_object(pki):
    leaf = pki.leaf("a.test")
    first, second = parse_secret(leaf.secret()), parse_secret(leaf.secret("other", "copy"))
    assert first.digest == second.digest
    assert parse_secret(pki.leaf("a.test").secret()).digest != first.digest


def test_string_data_is_accepted_and_wins_over_data(pki):
    leaf, other = pki.leaf("a.test"), pki.leaf("b.test")
    secret = other.secret()
    secret["stringData"] = {"tls.crt": leaf.chain_pem.decode(), "tls.key": leaf.key_pem.decode()}
    cert = parse_secret(secret)
    assert isinstance(cert, Certificate) and cert.serial == leaf.serial
    only_string = {"type": "kubernetes.io/tls", "stringData": secret["stringData"]}
    assert parse_secret(only_string).serial == leaf.serial


def test_base64_with_line_breaks_is_accepted(pki):
    leaf = pki.leaf("a.test")
    secret = leaf.secret()
    encoded = secret["data"]["tls.crt"]
    secret["data"]["tls.crt"] = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert isinstance(parse_secret(secret), Certificate)


def _with(secret: dict, **data: object) -> dict:
    secret = dict(secret)
    secret["data"] = {**secret["data"], **data}
    return secret


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s, leaf: "nope", "not an object"),
        (lambda s, leaf: {**s, "type": "Opaque"}, "type is 'Opaque', want kubernetes.io/tls"),
        (lambda s, leaf: {k: v for k, v in s.items() if k != "type"}, "type is missing"),
        (lambda s, leaf: {**s, "data": None}, "missing 'tls.crt'"),
        (lambda s, leaf: {**s, "data": ["x"]}, "must be maps"),
        (lambda s, leaf: {**s, "data": {"tls.crt": s["data"]["tls.crt"]}}, "missing 'tls.key'"),
        (lambda s, leaf: _with(s, **{"tls.crt": 42}), "data['tls.crt'] is not a string"),
        (lambda s, leaf: _with(s, **{"tls.crt": "!!!not base64!!!"}), "data['tls.crt'] is not valid base64"),
        (lambda s, leaf: _with(s, **{"tls.key": "QUJ"}), "data['tls.key'] is not valid base64"),
        (lambda s, leaf: _with(s, **{"tls.crt": _b64(b"hello")}), "tls.crt: no valid PEM certificate"),
        (
            lambda s, leaf: _with(s, **{
                "tls.crt": _b64(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}),
            "tls.crt: no valid PEM certificate",
        ),
        (lambda s, leaf: _with(s, **{"tls.key": _b64(b"garbage")}), "tls.key: no valid PEM private key"),
        (lambda s, leaf: _with(s, **{"tls.key": _b64(os.urandom(300))}), "tls.key: no valid PEM private key"),
        (
            lambda s, leaf: _with(
                s,
                **{
                    "tls.key": _b64(
                        leaf.key.private_bytes(
                            serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"secret"),
                        )
                    )
                },
            ),
            "encrypted",
        ),
    ],
    ids=[
        "not-a-dict", "wrong-type", "no-type", "no-data", "data-not-map", "no-key", "crt-not-string", "bad-base64",
        "bad-base64-padding", "crt-not-pem", "crt-bad-der", "key-not-pem", "key-random-bytes", "key-encrypted",
    ],
)
def test_bad_secrets_give_clear_errors(pki, mutate, expected):
    leaf = pki.leaf("a.test")
    result = parse_secret(mutate(leaf.secret(), leaf))
    assert isinstance(result, str)
    assert expected in result


def test_key_mismatch_is_refused(pki):
    leaf, other = pki.leaf("a.test"), pki.leaf("b.test")
    result = parse_secret(leaf.secret(key_pem=other.key_pem))
    assert result == "tls.key does not match the certificate's public key"


def test_chain_must_start_with_the_leaf(pki):
    leaf = pki.leaf("a.test")
    inter_pem = pki.inter.public_bytes(serialization.Encoding.PEM)
    leaf_pem = leaf.cert.public_bytes(serialization.Encoding.PEM)
    result = parse_pem(inter_pem + leaf_pem, leaf.key_pem)
    assert isinstance(result, str) and "must start with the certificate that matches" in result


def test_expired_and_not_yet_valid_are_refused(pki):
    expired = pki.leaf("old.test", not_before=NOW - timedelta(days=10), not_after=NOW - timedelta(days=1))
    result = parse_secret(expired.secret())
    assert isinstance(result, str) and result.startswith("certificate expired at ")
    future = pki.leaf("new.test", not_before=NOW + timedelta(days=1), not_after=NOW + timedelta(days=10))
    result = parse_secret(future.secret())
    assert isinstance(result, str) and result.startswith("certificate is not valid before ")
    # The check uses the instant it is given.
    assert isinstance(parse_secret(future.secret(), now=NOW + timedelta(days=2)), Certificate)
    assert isinstance(parse_secret(expired.secret(), now=NOW - timedelta(days=5)), Certificate)


def test_weak_keys_are_refused(pki):
    small = pki.leaf("small.test", rsa_bits=1024)
    assert "RSA key of 1024 bits is too small" in parse_secret(small.secret())
    small_ec = pki.leaf("ec.test", curve=ec.SECP192R1())
    assert "EC key of 192 bits is too small" in parse_secret(small_ec.secret())
    # cryptography 48 cannot sign with SHA-1 any more, so the weak-digest check is not exercised here.


def test_self_signed_rsa_without_san():
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "nosan")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(NOW - timedelta(hours=1)).not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    parsed = parse_pem(cert.public_bytes(serialization.Encoding.PEM), key_pem)
    assert isinstance(parsed, Certificate)
    assert parsed.dns_names == () and parsed.serial == 7
    assert not covers(parsed, "nosan")  # clients ignore the CN; so do we


def test_random_input_never_raises():
    rng = __import__("random").Random(1234)
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        chain = b"-----BEGIN CERTIFICATE-----\n" + base64.b64encode(blob) + b"\n-----END CERTIFICATE-----\n"
        assert isinstance(parse_pem(chain, blob), str)
        secret = {"type": "kubernetes.io/tls", "data": {"tls.crt": _b64(chain), "tls.key": _b64(blob)}}
        assert isinstance(parse_secret(secret), str)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a.test", True),
        ("A.TEST", True),
        ("a.test.", True),
        ("b.test", False),
        ("x.wild.test", True),
        ("X.Wild.Test", True),
        ("a.b.wild.test", False),  # a wildcard covers exactly one label
        ("wild.test", False),
        (".wild.test", False),
        ("*.wild.test", True),  # a wildcard TLS host is covered by the same wildcard SAN
        ("*.a.test", False),
        ("", False),
    ],
)
def test_covers(pki, host, expected):
    cert = parse_secret(pki.leaf("a.test", "*.wild.test").secret())
    assert covers(cert, host) is expected


def test_generated_default_certificate():
    cert = generate_default_certificate()
    assert isinstance(cert, Certificate)
    assert cert.subject == f"CN={DEFAULT_COMMON_NAME}"
    assert cert.dns_names == ("ingress.local",)
    assert timedelta(days=360) < cert.not_after - NOW < timedelta(days=370)
    assert cert.not_before < NOW
    leaf = x509.load_pem_x509_certificate(cert.chain_pem)
    leaf.verify_directly_issued_by(leaf)  # self-signed, signature valid
    key = serialization.load_pem_private_key(cert.key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    # Fresh key and serial each time.
    again = generate_default_certificate()
    assert again.fingerprint != cert.fingerprint and again.key_pem != cert.key_pem
