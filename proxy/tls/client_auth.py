"""Client certificates (ingress-nginx's `auth-tls-*`): CA Secrets, per-host contexts, and the verdict per connection.

A host with client authentication gets its own SSLContext (its certificate, the CA of its `auth-tls-secret`,
`verify_mode` CERT_OPTIONAL) that the SNI callback switches to. Python's `ssl` cannot do three things that
nginx's `ssl_verify_client` relies on, so `_OpenSsl` calls libssl (the one Python's `_ssl` is linked to)
through ctypes, only for connections to such hosts:

- OpenSSL takes the verify mode from the context a connection was *created* with (the listener's, which asks
  no certificate), not from the one the SNI callback switches to: `SSL_set_verify` makes the connection ask;
- nginx accepts the handshake whatever the verification says and answers 400 later (or redirects to the error
  page; `optional_no_ca` even forwards unverified certificates): a verify callback that always accepts, and
  `SSL_get_verify_result` read once per connection;
- the depth (`SSL_set_verify_depth`; not kept across the switch either), and for `ca.crl` the CRL checks, set on
  the host context's certificate store (`X509_STORE_set_flags`), which verification does read after the switch.

Session resumption: tickets and session ids are the listener's, shared by every host, so a session verified
against one host's CA could be resumed on another host. In the SNI callback a new session of an
authenticating host gets its own session id context, which OpenSSL then refuses to resume anywhere (every
full handshake verifies again), and a connection that resumed a session anyway counts as one without a
certificate: never a certificate verified for someone else.

The layout check (`available()`) reads the SSL pointer of one SSLObject and asks libssl which SSL_CTX it
belongs to: if that does not hold (another Python), client authentication is unavailable and the hosts using
it answer 503 (fail closed), with a warning.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import hashlib
import logging
import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

log = logging.getLogger("pyngress.tls")

CA_KEY = "ca.crt"
CRL_KEY = "ca.crl"
_CRL_BLOCK = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)

# ingress-nginx's auth-tls-verify-client values.
VERIFY_ON = "on"
VERIFY_OFF = "off"
VERIFY_OPTIONAL = "optional"
VERIFY_OPTIONAL_NO_CA = "optional_no_ca"

# OpenSSL's SSL_VERIFY_PEER, X509_V_FLAG_CRL_CHECK and X509_V_FLAG_CRL_CHECK_ALL.
_SSL_VERIFY_PEER = 0x01
_X509_V_FLAG_CRL_CHECK = 0x4
_X509_V_FLAG_CRL_CHECK_ALL = 0x8


@dataclass(frozen=True, slots=True)
class ClientCa:
    """The CA bundle (and optional CRL) of an auth-tls Secret, checked once; `ident` names it in verdicts."""

    ca_pem: bytes = field(repr=False)
    crl_pem: bytes = field(repr=False)
    digest: str


@dataclass(frozen=True, slots=True)
class ClientAuthContext:
    """What the SNI callback does for a host with client authentication."""

    secret: str  # "namespace/name" of the CA Secret: what the route's check expects
    verify: str
    depth: int
    session_context: bytes  # the session id context of its sessions (never resumed elsewhere)


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """One connection's client certificate as nginx's variables give it (routing.request.ClientCertificate)."""

    secret: str
    verify: str  # $ssl_client_verify: "SUCCESS", "NONE" or "FAILED:<reason>"
    error: int  # the X509_V_ERR_ code (0 when verified or absent)
    subject: str = ""  # $ssl_client_s_dn (RFC 4514/2253)
    issuer: str = ""  # $ssl_client_i_dn
    escaped_pem: str = ""  # $ssl_client_escaped_cert


def parse_ca_secret(secret: Any) -> ClientCa | str:
    """The CA (and CRL) of an auth-tls Secret (any type: the key `ca.crt` is what counts), or why not."""
    if not isinstance(secret, Mapping):
        return "not an object"
    values: dict[str, bytes] = {}
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    if not isinstance(data, Mapping) or not isinstance(string_data, Mapping):
        return "data and stringData must be maps"
    for name in (CA_KEY, CRL_KEY):
        plain = string_data.get(name)
        if isinstance(plain, str):
            values[name] = plain.encode("utf-8", "replace")
            continue
        encoded = data.get(name)
        if encoded is None:
            continue
        if not isinstance(encoded, str):
            return f"data[{name!r}] is not a string"
        try:
            values[name] = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            return f"data[{name!r}] is not valid base64"
    if CA_KEY not in values:
        return f"missing {CA_KEY!r}"
    try:
        certs = x509.load_pem_x509_certificates(values[CA_KEY])
    except ValueError:
        return f"{CA_KEY}: no valid PEM certificate"
    if not certs:
        return f"{CA_KEY}: no valid PEM certificate"
    ca_pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)
    crl_pem = b""
    if CRL_KEY in values:
        crls = []
        for block in _CRL_BLOCK.findall(values[CRL_KEY]):
            try:
                crls.append(x509.load_pem_x509_crl(block))
            except ValueError:
                return f"{CRL_KEY}: a certificate revocation list cannot be parsed"
        if not crls:
            return f"{CRL_KEY}: no PEM certificate revocation list"
        crl_pem = b"".join(crl.public_bytes(serialization.Encoding.PEM) for crl in crls)
    return ClientCa(ca_pem=ca_pem, crl_pem=crl_pem, digest=hashlib.sha256(ca_pem + b"\0" + crl_pem).hexdigest())


def add_client_ca(context: ssl.SSLContext, ca: ClientCa, *, secret: str, verify: str,
                  depth: int) -> ClientAuthContext:
    """Make `context` (a host's server context) verify client certificates against `ca`. CPU work, build time."""
    context.load_verify_locations(cadata=ca.ca_pem.decode("ascii"))
    if ca.crl_pem:
        _load_crl(context, ca.crl_pem)
        openssl().check_crls(context)
    context.verify_mode = ssl.CERT_NONE if verify == VERIFY_OFF else ssl.CERT_OPTIONAL
    # Tells ingress-nginx's "client certificate sent for this CA" apart from every other context's sessions.
    session_context = hashlib.sha256(f"{secret}\0{verify}\0{depth}\0{ca.digest}".encode()).digest()[:32]
    return ClientAuthContext(secret=secret, verify=verify, depth=depth, session_context=session_context)


def _load_crl(context: ssl.SSLContext, crl_pem: bytes) -> None:
    # load_verify_locations(cadata=) reads certificates only; a file is read for CRLs too.
    with tempfile.TemporaryDirectory(prefix="pyngress-crl-") as folder:
        path = os.path.join(folder, "ca.crl")
        with open(path, "wb") as file:
            file.write(crl_pem)
        context.load_verify_locations(cafile=path)


# ---------------------------------------------------------------------------------------------- libssl


_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept(_preverify_ok: int, _store: int | None) -> int:
    return 1  # nginx's ngx_http_ssl_verify_callback: the verdict is read after the handshake


class _OpenSsl:
    """The few libssl calls Python's ssl module lacks, bound once; `ok` False when they cannot be used."""

    def __init__(self) -> None:
        self.ok = False
        self.reason = ""
        self.accept = _VerifyCallback(_accept)
        try:
            import _ssl

            lib = ctypes.CDLL(_ssl.__file__)
            lib.SSL_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback]
            lib.SSL_set_verify.restype = None
            lib.SSL_set_verify_depth.argtypes = [ctypes.c_void_p, ctypes.c_int]
            lib.SSL_set_verify_depth.restype = None
            lib.SSL_get_verify_result.argtypes = [ctypes.c_void_p]
            lib.SSL_get_verify_result.restype = ctypes.c_long
            lib.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
            lib.SSL_get_SSL_CTX.restype = ctypes.c_void_p
            lib.SSL_session_reused.argtypes = [ctypes.c_void_p]
            lib.SSL_session_reused.restype = ctypes.c_int
            lib.SSL_get_session.argtypes = [ctypes.c_void_p]
            lib.SSL_get_session.restype = ctypes.c_void_p
            lib.SSL_SESSION_set1_id_context.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
            lib.SSL_SESSION_set1_id_context.restype = ctypes.c_int
            lib.SSL_CTX_get_cert_store.argtypes = [ctypes.c_void_p]
            lib.SSL_CTX_get_cert_store.restype = ctypes.c_void_p
            lib.X509_STORE_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
            lib.X509_STORE_set_flags.restype = ctypes.c_int
            lib.X509_verify_cert_error_string.argtypes = [ctypes.c_long]
            lib.X509_verify_cert_error_string.restype = ctypes.c_char_p
            self.lib = lib
            self.ok = self._layout_holds()
            if not self.ok:
                self.reason = "this Python's ssl objects are laid out differently than expected"
        except (OSError, AttributeError, ImportError) as exc:
            self.reason = f"libssl is not reachable: {exc}"

    @staticmethod
    def ssl_pointer(ssl_object: Any) -> int:
        native = getattr(ssl_object, "pyngress_ssl_pointer", None)  # the native transport's TlsInfo
        if native is not None:
            return int(native)
        # PySSLSocket: PyObject_HEAD (refcount, type), a weakref to the socket, then SSL *ssl.
        inner = ssl_object._sslobj
        return ctypes.c_void_p.from_address(id(inner) + 3 * ctypes.sizeof(ctypes.c_void_p)).value or 0

    @staticmethod
    def context_pointer(context: ssl.SSLContext) -> int:
        # PySSLContext: PyObject_HEAD, then SSL_CTX *ctx.
        return ctypes.c_void_p.from_address(id(context) + 2 * ctypes.sizeof(ctypes.c_void_p)).value or 0

    def _layout_holds(self) -> bool:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ssl_object = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="layout.check")
        pointer = self.ssl_pointer(ssl_object)
        return bool(pointer) and self.lib.SSL_get_SSL_CTX(pointer) == self.context_pointer(context)

    def check_crls(self, context: ssl.SSLContext) -> None:
        """nginx's ssl_crl: X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL (a CRL for every CA of the chain), on
        the context's certificate store: `verify_flags` would set them on the context's parameters, which a
        connection copies from the listener's context, not from the one the SNI callback switches to."""
        if not self.ok:
            raise ValueError(f"certificate revocation lists cannot be checked: {self.reason}")
        store = self.lib.SSL_CTX_get_cert_store(self.context_pointer(context))
        if not store or self.lib.X509_STORE_set_flags(store, _X509_V_FLAG_CRL_CHECK | _X509_V_FLAG_CRL_CHECK_ALL) != 1:
            raise ValueError("certificate revocation lists cannot be checked")

    def require(self, ssl_object: Any, auth: ClientAuthContext) -> None:
        """In the SNI callback, after switching to the host's context: ask for (and verify) a certificate."""
        pointer = self.ssl_pointer(ssl_object)
        lib = self.lib
        if auth.verify != VERIFY_OFF:
            lib.SSL_set_verify(pointer, _SSL_VERIFY_PEER, self.accept)
            lib.SSL_set_verify_depth(pointer, auth.depth)
        if not lib.SSL_session_reused(pointer):
            session = lib.SSL_get_session(pointer)
            if session:
                lib.SSL_SESSION_set1_id_context(session, auth.session_context, len(auth.session_context))

    def verdict(self, ssl_object: Any) -> tuple[bool, int]:
        """(the session was resumed, the X509_V_ERR_ code of the verification)."""
        pointer = self.ssl_pointer(ssl_object)
        return bool(self.lib.SSL_session_reused(pointer)), int(self.lib.SSL_get_verify_result(pointer))

    def error_text(self, code: int) -> str:
        text = self.lib.X509_verify_cert_error_string(code)
        return text.decode("ascii", "replace") if text else f"error {code}"


_openssl: _OpenSsl | None = None


def openssl() -> _OpenSsl:
    global _openssl
    if _openssl is None:
        _openssl = _OpenSsl()
        if not _openssl.ok:
            log.warning("client certificate authentication unavailable: %s", _openssl.reason)
    return _openssl


def available() -> tuple[bool, str]:
    """Whether client certificates can be asked for here (and why not)."""
    binding = openssl()
    return binding.ok, binding.reason


def require_client_certificate(ssl_object: Any, auth: ClientAuthContext) -> None:
    """The SNI callback's part for a host with client authentication (see the module docstring)."""
    binding = openssl()
    if binding.ok:
        binding.require(ssl_object, auth)
        ssl_object.pyngress_client_auth = auth


# OpenSSL's short names (what nginx's RFC 2253 $ssl_client_s_dn prints) for attributes cryptography would write
# as dotted OIDs.
_OPENSSL_NAMES = {
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.INITIALS: "initials",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
}

# The verdict of certificates seen (DER -> subject, issuer, escaped PEM); bounded.
_described: dict[bytes, tuple[str, str, str]] = {}
_DESCRIBED_LIMIT = 4096


def client_certificate(ssl_object: Any) -> ClientCertificate | None:
    """The client certificate of a connection to a host with client authentication (None for other hosts).

    Once per connection (the caller keeps it): a few libssl calls and, for a certificate not seen
    recently, one parse with `cryptography`.
    """
    auth: ClientAuthContext | None = getattr(ssl_object, "pyngress_client_auth", None)
    if auth is None:
        return None
    binding = openssl()
    resumed, error = binding.verdict(ssl_object)
    der = ssl_object.getpeercert(binary_form=True)
    if resumed or not der:
        return ClientCertificate(secret=auth.secret, verify="NONE", error=0)
    described = _described.get(der)
    if described is None:
        cert = x509.load_der_x509_certificate(der)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        described = (cert.subject.rfc4514_string(_OPENSSL_NAMES), cert.issuer.rfc4514_string(_OPENSSL_NAMES),
                     quote(pem, safe=""))
        if len(_described) >= _DESCRIBED_LIMIT:
            _described.clear()
        _described[der] = described
    verify = "SUCCESS" if error == 0 else f"FAILED:{binding.error_text(error)}"
    return ClientCertificate(secret=auth.secret, verify=verify, error=error, subject=described[0],
                             issuer=described[1], escaped_pem=described[2])


__all__ = ["ClientAuthContext", "ClientCa", "ClientCertificate", "add_client_ca",
           "available", "client_certificate", "parse_ca_secret", "require_client_certificate"]
