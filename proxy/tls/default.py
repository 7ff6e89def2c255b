"""The self-signed certificate served when no --default-ssl-certificate is given.

Key generation and signing are CPU work (about a millisecond for P-256, far more for RSA):
the caller runs `generate_default_certificate` once at start-up, off the event loop
(`await asyncio.to_thread(generate_default_certificate)`), and reuses the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxy.tls.certs import Certificate, parse_pem

DEFAULT_COMMON_NAME = "pyngress default certificate"
DEFAULT_DNS_NAMES = ("ingress.local",)
DEFAULT_VALIDITY = timedelta(days=365)
# Backdated so a client whose clock is a little behind ours still accepts it.
CLOCK_SKEW = timedelta(hours=1)


def generate_default_certificate(
    *,
    now: datetime | None = None,
    dns_names: Iterable[str] = DEFAULT_DNS_NAMES,
    validity: timedelta = DEFAULT_VALIDITY,
) -> Certificate:
    """A fresh self-signed EC P-256 certificate: CPU work, call it off the event loop."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEFAULT_COMMON_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    parsed = parse_pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        now=now,
    )
    if isinstance(parsed, str):  # our own certificate failed our own checks: a bug, not bad input
        raise RuntimeError(f"generated default certificate is invalid: {parsed}")
    return parsed
