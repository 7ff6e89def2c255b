"""TLS termination: certificates from Secrets, the default certificate, SNI selection.

Build time: `tls_hosts` + `build_store` (or `CertStore` directly) parse, check and load every
certificate. Handshake time: `CertStoreHolder.server_context()`'s SNI callback only looks up; the listener's
`TlsAcceptor` (`tls_protocol_factory`) runs each handshake and counts how it ended.
"""

from proxy.tls.certs import Certificate, covers, parse_pem, parse_secret
from proxy.tls.default import generate_default_certificate
from proxy.tls.handshake import HandshakeStats, TlsAcceptor, tls_protocol_factory
from proxy.tls.hosts import build_store, default_certificate, tls_hosts
from proxy.tls.store import CertStore, CertStoreHolder, new_server_context, prepare_context

__all__ = [
    "Certificate",
    "CertStore",
    "CertStoreHolder",
    "HandshakeStats",
    "TlsAcceptor",
    "build_store",
    "covers",
    "default_certificate",
    "generate_default_certificate",
    "new_server_context",
    "parse_pem",
    "parse_secret",
    "prepare_context",
    "tls_hosts",
    "tls_protocol_factory",
]
