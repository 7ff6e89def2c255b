"""Certificates from kubernetes.io/tls Secrets: parsed and checked once, when the table is built.

Every check OpenSSL would otherwise make at load time (key matches, key size, signature digest)
happens here with `cryptography`, so a broken Secret becomes an error string (a warning for the
builder) instead of an exception in the middle of a build or, worse, a handshake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

SECRET_TYPE_TLS = "kubernetes.io/tls"
CERT_KEY = "tls.crt"
PRIVATE_KEY_KEY = "tls.key"

# OpenSSL security level 2 (what the listener uses) refuses smaller keys and weaker digests
# when the chain is loaded; checking here turns that into a warning with a reason.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 224
WEAK_DIGESTS = frozenset({"md5", "sha1"})

_PEM_ENCODING = serialization.Encoding.PEM


@dataclass(frozen=True, slots=True)
class Certificate:
    """A checked certificate chain and its key, ready to load into an SSLContext."""

    # Normalized PEM (re-encoded by cryptography): leaf first, then intermediates.
    chain_pem: bytes = field(repr=False)
    # Unencrypted PKCS#8 PEM; kept out of repr so a logged value never carries the key.
    key_pem: bytes = field(repr=False)
    subject: str
    serial: int
    not_before: datetime
    not_after: datetime
    # Lower-case SAN DNS names of the leaf (wildcards as written, "*.example.com").
    dns_names: tuple[str, ...]
    # SHA-256 of the leaf's DER, hex: the usual certificate fingerprint (for logs, metrics, admin).
    fingerprint: str
    # SHA-256 over chain and key: equal digests load into interchangeable SSLContexts.
    digest: str


def parse_secret(secret: Any, *, now: datetime | None = None) -> Certificate | str:
    """The Certificate in a kubernetes.io/tls Secret dict, or why it cannot be served.

    Reads base64 `data` and, for manifests in file mode, plain `stringData` (which wins, as the
    API server would merge it over `data`). Never raises on bad input.
    """
    if not isinstance(secret, Mapping):
        return "not an object"
    kind = secret.get("type")
    if kind != SECRET_TYPE_TLS:
        shown = "missing (Opaque)" if kind is None else repr(kind)
        return f"type is {shown}, want {SECRET_TYPE_TLS}"
    values: dict[str, bytes] = {}
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    if not isinstance(data, Mapping) or not isinstance(string_data, Mapping):
        return "data and stringData must be maps"
    for name in (CERT_KEY, PRIVATE_KEY_KEY):
        plain = string_data.get(name)
        if plain is not None:
            if not isinstance(plain, str):
                return f"stringData[{name!r}] is not a string"
            values[name] = plain.encode("utf-8", "replace")
            continue
        encoded = data.get(name)
        if encoded is None:
            return f"missing {name!r}"
        if not isinstance(encoded, str):
            return f"data[{name!r}] is not a string"
        try:
            values[name] = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            return f"data[{name!r}] is not valid base64"
    return parse_pem(values[CERT_KEY], values[PRIVATE_KEY_KEY], now=now)


def parse_pem(chain: bytes, key: bytes, *, now: datetime | None = None) -> Certificate | str:
    """Check a PEM chain (leaf first) and its private key; the Certificate or an error string.

    `now` defaults to the current time; the builder passes one instant for a whole build.
    """
    try:
        return _parse_pem(chain, key, now or datetime.now(UTC))
    except Exception as exc:  # noqa: BLE001  (a certificate cryptography chokes on is bad input, not a crash)
        return f"cannot parse certificate: {type(exc).__name__}: {exc}"


def _parse_pem(chain: bytes, key: bytes, now: datetime) -> Certificate | str:
    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError:
        return f"{CERT_KEY}: no valid PEM certificate"
    if not certs:
        return f"{CERT_KEY}: no valid PEM certificate"
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except TypeError:
        return f"{PRIVATE_KEY_KEY}: private key is encrypted; an unencrypted key is required"
    except UnsupportedAlgorithm:
        return f"{PRIVATE_KEY_KEY}: unsupported private key algorithm"
    except ValueError:
        return f"{PRIVATE_KEY_KEY}: no valid PEM private key"

    leaf = certs[0]
    key_spki = _spki(private_key.public_key())
    if _spki(leaf.public_key()) != key_spki:
        if any(_spki(cert.public_key()) == key_spki for cert in certs[1:]):
            return f"{CERT_KEY}: the chain must start with the certificate that matches {PRIVATE_KEY_KEY}"
        return f"{PRIVATE_KEY_KEY} does not match the certificate's public key"

    for position, cert in enumerate(certs):
        problem = _strength_problem(cert)
        if problem:
            where = "certificate" if position == 0 else f"chain certificate {position}"
            return f"{where}: {problem}"

    not_before = leaf.not_valid_before_utc
    not_after = leaf.not_valid_after_utc
    if now >= not_after:
        return f"certificate expired at {_iso(not_after)}"
    if now < not_before:
        return f"certificate is not valid before {_iso(not_before)}"

    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(dict.fromkeys(name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName)))
    except x509.ExtensionNotFound:
        dns_names = ()

    chain_pem = b"".join(cert.public_bytes(_PEM_ENCODING) for cert in certs)
    key_pem = private_key.private_bytes(
        _PEM_ENCODING, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Certificate(
        chain_pem=chain_pem,
        key_pem=key_pem,
        subject=leaf.subject.rfc4514_string(),
        serial=leaf.serial_number,
        not_before=not_before,
        not_after=not_after,
        dns_names=dns_names,
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        digest=hashlib.sha256(chain_pem + b"\0" + key_pem).hexdigest(),
    )


def covers(cert: Certificate, host: str) -> bool:
    """Whether the certificate's SAN DNS names cover `host` (RFC 6125: `*.` matches one whole label)."""
    host = host.lower().rstrip(".")
    if not host:
        return False
    names = cert.dns_names
    if host in names:
        return True
    dot = host.find(".")
    if dot <= 0:
        return False
    suffix = host[dot + 1 :]
    return any(name.startswith("*.") and name[2:] == suffix for name in names)


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(_PEM_ENCODING, serialization.PublicFormat.SubjectPublicKeyInfo)


def _strength_problem(cert: x509.Certificate) -> str:
    """Why OpenSSL at security level 2 would refuse this certificate ("" if it would not)."""
    public_key = cert.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            return f"RSA key of {public_key.key_size} bits is too small (minimum {MIN_RSA_BITS})"
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.key_size < MIN_EC_BITS:
            return f"EC key of {public_key.key_size} bits is too small (minimum {MIN_EC_BITS})"
    elif isinstance(public_key, dsa.DSAPublicKey):
        return "DSA keys are not supported"
    elif not isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return f"unsupported key type {type(public_key).__name__}"
    # A self-signed certificate's own signature is never checked by a client: do not judge it.
    if cert.issuer != cert.subject:
        algorithm = cert.signature_hash_algorithm
        if algorithm is not None and algorithm.name in WEAK_DIGESTS:
            return f"signed with {algorithm.name.upper()}, which is too weak"
    return ""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
