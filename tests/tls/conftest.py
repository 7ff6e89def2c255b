"""A tiny PKI made with `cryptography` for the TLS tests: a root, an intermediate, leaves."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.now(UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


@dataclass
class Leaf:
    cert: x509.Certificate
    key: Any
    chain_pem: bytes  # leaf, then the intermediate
    key_pem: bytes

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def secret(self, namespace: str = "default", name: str = "tls", *, key_pem: bytes | None = None) -> dict:
        """A kubernetes.io/tls Secret dict as the API would return it."""
        return {
            "metadata": {"namespace": namespace, "name": name, "resourceVersion": "1"},
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64.b64encode(self.chain_pem).decode(),
                "tls.key": base64.b64encode(key_pem if key_pem is not None else self.key_pem).decode(),
            },
        }


class Pki:
    """Root CA → intermediate CA → leaves; clients trust only the root file."""

    def __init__(self, folder: Path, *, name: str = "pyngress test") -> None:
        # Two Pki objects need different names: a client finds issuers by name, and a same-named
        # root of another Pki would fail the signature check (decrypt_error) instead of being unknown.
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca(f"{name} root", self.root_key, None, None)
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = self._ca(f"{name} intermediate", self.inter_key, self.root, self.root_key)
        self.cafile = folder / "root.pem"
        self.cafile.write_bytes(_pem(self.root))

    @staticmethod
    def _ca(cn: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(issuer_key or key, hashes.SHA256())
        )

    def leaf(
        self,
        *dns_names: str,
        rsa_bits: int = 0,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        digest: hashes.HashAlgorithm | None = None,
        curve: ec.EllipticCurve | None = None,
    ) -> Leaf:
        key = (rsa.generate_private_key(65537, rsa_bits) if rsa_bits
               else ec.generate_private_key(curve or ec.SECP256R1()))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else "leaf")]))
            .issuer_name(self.inter.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - timedelta(hours=1))
            .not_valid_after(not_after or NOW + timedelta(days=7))
        )
        if dns_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
            )
        cert = builder.sign(self.inter_key, digest or hashes.SHA256())
        return Leaf(cert, key, _pem(cert) + _pem(self.inter), _key_pem(key))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)

