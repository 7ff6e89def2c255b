"""SNI selection: prepared SSLContexts per certificate, and the listener context that picks one.

Everything expensive (loading PEM into OpenSSL, checking the key) happens when a `CertStore` is
built; during a handshake the SNI callback does dict lookups and switches the connection to a
prepared context. The listener context is made once by `CertStoreHolder`; publishing a new store
changes what new handshakes get, and connections already open keep the context they started with.

Session resumption across the switch: OpenSSL keeps the session cache and the session-ticket
keys on the context a connection was *created* with (the listener), not on the context the SNI
callback switches to. So tickets (TLS 1.3 and 1.2) and TLS 1.2 session ids issued for any
certificate are resumable, and stay so across store swaps. The ticket keys are random per
listener context and live as long as the process, unless the holder is given keys: worker processes get
the control process's (tls.tickets), so a ticket issued by one worker resumes on every other.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from proxy.tls.certs import Certificate
from proxy.tls.client_auth import require_client_certificate
from proxy.tls.tickets import share_ticket_keys

# Mozilla "intermediate" TLS 1.2 suites (forward secret AEAD only); TLS 1.3 suites are OpenSSL's
# defaults, which are all AEAD. Security level 2 also refuses keys below 2048 bits RSA / 224 EC.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "@SECLEVEL=2",
    )
)
# What TLS listeners offer by ALPN, best first: h2 unless the process runs with --no-http2 (see offer_http2).
ALPN_PROTOCOLS: tuple[str, ...] = ("h2", "http/1.1")


def offer_http2(enabled: bool) -> None:
    """Offer h2 by ALPN in the server contexts made from now on, or not (--no-http2). Set once per process, by
    the server before its first listener and before certificates are loaded: a context made earlier keeps its
    list, and a client that negotiated h2 must be served HTTP/2."""
    global ALPN_PROTOCOLS
    ALPN_PROTOCOLS = ("h2", "http/1.1") if enabled else ("http/1.1",)

_HAS_MEMFD = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def new_server_context() -> ssl.SSLContext:
    """A server context with our protocol policy and no certificate.

    Both the listener and every per-certificate context get the same policy: OpenSSL takes ALPN
    selection from the context the SNI callback switches to (checked by hand: ALPN set only on the
    listener negotiates nothing), while versions, ciphers and session tickets stay those of the
    listener, copied when the connection was created.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    context.options &= ~ssl.OP_NO_TICKET
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    return context


def prepare_context(cert: Certificate, *, in_memory: bool | None = None) -> ssl.SSLContext:
    """A server context holding `cert`. CPU work (a millisecond or so); not for the event loop.

    Raises ssl.SSLError if OpenSSL refuses the chain (parse_pem() checks make that rare).
    """
    context = new_server_context()
    load_chain(context, cert.chain_pem, cert.key_pem, in_memory=in_memory)
    return context


def load_chain(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes, *, in_memory: bool | None = None) -> None:
    """Load a PEM certificate chain and its key into `context` (a server's, or a client's for mutual TLS).

    `load_cert_chain` only reads files: by default the PEM goes through an anonymous in-memory
    file (Linux memfd), so the private key never touches a disk; elsewhere (or with
    `in_memory=False`) through files in a fresh 0700 temporary directory, removed at once.
    """
    if in_memory is None:
        in_memory = _HAS_MEMFD
    if in_memory:
        _load_from_memory(context, chain_pem, key_pem)
    else:
        _load_from_files(context, chain_pem, key_pem)


def _load_from_memory(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    chain_fd = os.memfd_create("pyngress-chain", os.MFD_CLOEXEC)
    try:
        key_fd = os.memfd_create("pyngress-key", os.MFD_CLOEXEC)
        try:
            _write_all(chain_fd, chain_pem)
            _write_all(key_fd, key_pem)
            context.load_cert_chain(f"/proc/self/fd/{chain_fd}", f"/proc/self/fd/{key_fd}")
        finally:
            os.close(key_fd)
    finally:
        os.close(chain_fd)


def _load_from_files(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="pyngress-tls-") as folder:  # mkdtemp: mode 0700
        paths = []
        for name, content in (("chain.pem", chain_pem), ("key.pem", key_pem)):
            path = os.path.join(folder, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, content)
            finally:
                os.close(fd)
            paths.append(path)
        context.load_cert_chain(paths[0], paths[1])


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


class CertStore:
    """Host pattern → prepared SSLContext, plus the default; immutable once built.

    Patterns are exact lower-case hosts or one-label wildcards ("*.example.com"). Building
    prepares one context per distinct certificate; contexts whose certificate digest is in
    `contexts` or in the `reuse` store are taken as they are, so rebuilding after one Secret
    changed reloads only that certificate.
    """

    __slots__ = ("default", "default_context", "client_auth", "authenticating", "_exact", "_wildcards",
                 "_certificates", "_contexts")

    _contexts: dict[str, ssl.SSLContext]

    def __init__(
        self,
        certificates: Mapping[str, Certificate] | None = None,
        *,
        default: Certificate,
        reuse: CertStore | None = None,
        contexts: Mapping[str, ssl.SSLContext] | None = None,
        authenticating: Mapping[str, tuple[str, ssl.SSLContext, Any]] | None = None,
    ) -> None:
        known: dict[str, ssl.SSLContext] = dict(reuse._contexts) if reuse is not None else {}
        if contexts:
            known.update(contexts)
        prepared: dict[str, ssl.SSLContext] = {}

        def context_for(cert: Certificate) -> ssl.SSLContext:
            context = prepared.get(cert.digest)
            if context is None:
                context = known.get(cert.digest) or prepare_context(cert)
                prepared[cert.digest] = context
            return context

        self.default = default
        self.default_context = context_for(default)
        self._exact: dict[str, ssl.SSLContext] = {}
        # Keyed by the suffix after "*.": "*.example.com" is stored as "example.com".
        self._wildcards: dict[str, ssl.SSLContext] = {}
        self._certificates: dict[str, Certificate] = {}
        # A host with client certificates (`authenticating`: pattern -> (reuse key, its own context, what the SNI
        # callback must do: tls.client_auth)) gets that context instead; empty for every store without one.
        self.client_auth: dict[ssl.SSLContext, Any] = {}
        self.authenticating: dict[str, Any] = {}  # the same by host pattern (to compare stores)
        for pattern, cert in (certificates or {}).items():
            pattern = pattern.lower()
            own = authenticating.get(pattern) if authenticating else None
            if own is not None:
                key, context, auth = own
                self.client_auth[context] = auth
                self.authenticating[pattern] = auth
                prepared[key] = context
            else:
                context = context_for(cert)
            if pattern.startswith("*."):
                suffix = pattern[2:]
                if not suffix or "*" in suffix:
                    raise ValueError(f"bad wildcard host pattern {pattern!r}")
                self._wildcards[suffix] = context
            else:
                if not pattern or "*" in pattern:
                    raise ValueError(f"bad host pattern {pattern!r}")
                self._exact[pattern] = context
            self._certificates[pattern] = cert
        self._contexts = prepared

    def select(self, server_name: str | None) -> ssl.SSLContext:
        """The context for an SNI name: exact host, then a one-label wildcard, then the default."""
        if not server_name:
            return self.default_context
        context = self._exact.get(server_name)
        if context is not None:
            return context
        name = server_name.lower()
        if name[-1] == ".":
            name = name[:-1]
        context = self._exact.get(name)
        if context is not None:
            return context
        dot = name.find(".")
        if dot > 0:
            context = self._wildcards.get(name[dot + 1 :])
            if context is not None:
                return context
        return self.default_context

    def certificate_for(self, host: str | None) -> Certificate:
        """The certificate `select(host)` serves (for status pages and checks, not handshakes)."""
        if host:
            name = host.lower().rstrip(".")
            cert = self._certificates.get(name)
            if cert is not None:
                return cert
            dot = name.find(".")
            if dot > 0:
                cert = self._certificates.get("*." + name[dot + 1 :])
                if cert is not None:
                    return cert
        return self.default

    @property
    def certificates(self) -> Mapping[str, Certificate]:
        """Host pattern → certificate, without the default."""
        return self._certificates

    @property
    def contexts(self) -> Mapping[str, ssl.SSLContext]:
        """Certificate digest → prepared context, for reuse by the next build."""
        return self._contexts

    def distinct(self) -> Iterator[Certificate]:
        """Each distinct certificate once, the default included (for expiry metrics)."""
        seen: set[str] = set()
        for cert in (self.default, *self._certificates.values()):
            if cert.digest not in seen:
                seen.add(cert.digest)
                yield cert

    def __len__(self) -> int:
        return len(self._certificates)


class CertStoreHolder:
    """The HTTPS listener's SSLContext, made once, serving whichever store is current.

    `publish()` is one reference assignment (safe from any thread); handshakes that start after
    it get the new certificates, handshakes already done are not touched.
    """

    __slots__ = ("current", "_context", "shared_tickets", "ticket_keys", "_native")

    def __init__(self, store: CertStore, *, ticket_keys: bytes | None = None) -> None:
        self.current = store
        context = new_server_context()
        context.sni_callback = self._on_server_name
        # True when the session tickets are encrypted with `ticket_keys` (every worker's), else OpenSSL's own.
        self.shared_tickets = share_ticket_keys(context, ticket_keys)
        self._context = context
        self.ticket_keys = ticket_keys
        self._native: ssl.SSLContext | None = None

    def publish(self, store: CertStore) -> None:
        self.current = store

    def server_context(self) -> ssl.SSLContext:
        """The context to give the HTTPS listener (`loop.create_server(..., ssl=...)`)."""
        return self._context

    def _on_server_name(self, ssl_object: Any, server_name: str | None, _context: ssl.SSLContext) -> None:
        # Runs inside every handshake, also when the client sent no SNI (server_name None).
        store = self.current
        ssl_object.context = context = store.select(server_name)
        if store.client_auth:
            auth = store.client_auth.get(context)
            if auth is not None:
                require_client_certificate(ssl_object, auth)
        # Kept for the listener's domain-fronting check (Host must be served by the SNI's certificate).
        ssl_object.pyngress_server_name = server_name.lower().rstrip(".") if server_name else None

    def native_context(self) -> ssl.SSLContext:
        """A listener context for the native TLS transport (proxy/tls/native.py): the same policy and ticket
        keys as `server_context()`, without Python's sni_callback (the transport installs OpenSSL's servername
        callback on it and asks `select_native`). Made once; the transport owns its callback."""
        if self._native is None:
            context = new_server_context()
            if self.ticket_keys is not None:
                share_ticket_keys(context, self.ticket_keys)
            self._native = context
        return self._native

    def select_native(self, info: Any, server_name: str | None) -> ssl.SSLContext:
        """The native transport's certificate choice, inside every handshake: as `_on_server_name`, returning
        the context to switch to (`info` is the connection's TlsInfo, `get_extra_info("ssl_object")`). The same
        `current` store and name give the same answer unless the store has client_auth: the transport relies on it
        to reuse its last answer."""
        store = self.current
        context = store.select(server_name)
        if store.client_auth:
            auth = store.client_auth.get(context)
            if auth is not None:
                require_client_certificate(info, auth)
        info.pyngress_server_name = server_name.lower().rstrip(".") if server_name else None
        return context
