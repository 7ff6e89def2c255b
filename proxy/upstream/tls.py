"""TLS to the pods: one client context per policy, the handshake of each new connection, its counts.

A cluster whose policy has `tls` dials TCP as usual, then upgrades the connection with
`loop.start_tls`: a failure is then known to be the handshake's (not the dial's), is counted by
reason in :data:`STATS` and becomes a :class:`HandshakeError`, a connect failure (502, and the
next endpoint is tried like after a refused connection). Connections stay in the endpoint's pool
afterwards like plain ones, so a handshake is paid once per connection, not per request.

Verification: the pod's chain against the policy's CA bundle (the system's roots when it has
none); its name against `subject_alt_names` when given, otherwise against the SNI name. Python's
ssl can only check the name it sends as SNI (`server_hostname`), so the SAN check is done on the
verified peer certificate right after the handshake. With `verify` off the connection is only
encrypted.

With TLS 1.3 a pod that refuses our client certificate (or its absence) says so after our side of
the handshake is done: that refusal arrives as a reset of the first request (502), not here.

Failure reasons (a small fixed set: bounded label cardinality):

==================  ==============================================================
``unknown_ca``      the chain does not lead to a trusted CA
``expired``         the pod's certificate (or one of its chain) has expired
``not_yet_valid``   ... or is not valid yet
``name_mismatch``   no SAN matches the wanted names (or the SNI name)
``bad_certificate`` any other verification failure
``refused``         the pod sent an alert (no common protocol or cipher, refused our certificate)
``not_tls``         the pod answered something that is not TLS (plain HTTP on that port)
``closed``          the pod closed or reset the connection during the handshake
``timeout``         no handshake within the connect timeout
``config``          the policy's CA bundle or client certificate cannot be loaded
``other``           anything else
==================  ==============================================================
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from proxy.routing.policies import BackendTLS
from proxy.tls.store import load_chain
from proxy.upstream.errors import ConnectError

logger = logging.getLogger("pyngress.proxy")

UNKNOWN_CA = "unknown_ca"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
NAME_MISMATCH = "name_mismatch"
BAD_CERTIFICATE = "bad_certificate"
REFUSED = "refused"
NOT_TLS = "not_tls"
CLOSED = "closed"
TIMEOUT = "timeout"
CONFIG = "config"
OTHER = "other"
REASONS: tuple[str, ...] = (UNKNOWN_CA, EXPIRED, NOT_YET_VALID, NAME_MISMATCH, BAD_CERTIFICATE, REFUSED, NOT_TLS,
                            CLOSED, TIMEOUT, CONFIG, OTHER)

ALPN_PROTOCOLS = ["http/1.1"]
# Offered to pods of HTTP/2 clusters (proxy/upstream/h2_pool.py), whose contexts are built apart.
H2_ALPN_PROTOCOLS = ["h2"]

# OpenSSL's X509_V_ERR_* codes (SSLCertVerificationError.verify_code) → our reason.
_VERIFY_CODES: Mapping[int, str] = {
    2: UNKNOWN_CA,  # UNABLE_TO_GET_ISSUER_CERT
    9: NOT_YET_VALID,  # CERT_NOT_YET_VALID
    10: EXPIRED,  # CERT_HAS_EXPIRED
    18: UNKNOWN_CA,  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: UNKNOWN_CA,  # SELF_SIGNED_CERT_IN_CHAIN
    20: UNKNOWN_CA,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: UNKNOWN_CA,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    62: NAME_MISMATCH,  # HOSTNAME_MISMATCH
    64: NAME_MISMATCH,  # IP_ADDRESS_MISMATCH
}
# OpenSSL reason codes (SSLError.reason) that say the peer does not speak TLS at all.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LENGTH_MISMATCH", "PACKET_LENGTH_TOO_LONG",
                      "HTTP_REQUEST"})


class HandshakeError(ConnectError):
    """The TLS handshake with a pod failed (or its certificate did not verify): a connect failure, 502."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class HandshakeStats:
    """Handshakes to pods, completed and failed by reason; summed over workers through the traffic snapshot."""

    __slots__ = ("completed", "failures")

    def __init__(self) -> None:
        self.completed = 0
        self.failures: dict[str, int] = {}

    def failed(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


# The request path's handshakes in this process (health probes are counted by the health checker).
STATS = HandshakeStats()


def client_context(policy: BackendTLS, *, alpn: list[str] = ALPN_PROTOCOLS) -> ssl.SSLContext:
    """The client context of one policy: CPU work when it loads certificates, so built off the event loop
    (see ClientContexts.prepare). Raises ssl.SSLError (or ValueError) for a CA or certificate OpenSSL refuses."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(alpn)
    if policy.verify:
        if policy.ca:
            context.load_verify_locations(cadata=policy.ca.decode("ascii", "replace"))
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        # A CA bundle may hold an intermediate or the pod's own certificate: any of them anchors the chain.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        # With SANs to match, the SNI name must not be checked (BackendTLSPolicy: it is then only for selection).
        context.check_hostname = not policy.subject_alt_names
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if policy.client_certificate:
        load_chain(context, policy.client_certificate, policy.client_key)
    return context


class ClientContexts:
    """Client contexts by policy: built once per distinct policy (equal policies of several clusters share one),
    in the configuration build's thread; a policy that cannot be loaded keeps its error, which every dial reports."""

    __slots__ = ("_contexts", "alpn")

    def __init__(self, *, alpn: list[str] = ALPN_PROTOCOLS) -> None:
        self._contexts: dict[BackendTLS, ssl.SSLContext | str] = {}
        self.alpn = alpn  # what the contexts offer by ALPN (HTTP/2 clusters keep their own ClientContexts)

    def prepare(self, policies: Iterable[BackendTLS]) -> None:
        """Build the contexts not built yet (CPU work: call it from a thread)."""
        for policy in policies:
            if policy not in self._contexts:
                self._contexts[policy] = _build(policy, self.alpn)

    def get(self, policy: BackendTLS) -> ssl.SSLContext | str:
        """The context of `policy` (built now if `prepare` did not), or why there is none."""
        found = self._contexts.get(policy)
        if found is None:
            found = self._contexts[policy] = _build(policy, self.alpn)
        return found

    def retain(self, policies: Iterable[BackendTLS]) -> None:
        """Forget the contexts of policies no longer in use (connections open with them keep theirs)."""
        keep = set(policies)
        for policy in [p for p in list(self._contexts) if p not in keep]:
            del self._contexts[policy]

    def __len__(self) -> int:
        return len(self._contexts)


def _build(policy: BackendTLS, alpn: list[str] = ALPN_PROTOCOLS) -> ssl.SSLContext | str:
    try:
        return client_context(policy, alpn=alpn)
    except Exception as error:  # noqa: BLE001  (a broken policy costs its clusters, never the whole build)
        what = "CA bundle or client certificate" if policy.client_certificate else "CA bundle"
        message = f"the backend TLS policy's {what} cannot be loaded: {error or type(error).__name__}"
        logger.warning("%s", message)
        return message


class UpstreamTLS:
    """TLS to the pods of one cluster: its policy's context, the SNI name (the policy's, else the Service's DNS
    name), and the names to find in the pod's certificate."""

    __slots__ = ("policy", "context", "error", "server_name", "names", "stats", "http2")

    def __init__(self, policy: BackendTLS, *, context: ssl.SSLContext | str, server_name: str,
                 stats: HandshakeStats = STATS, http2: bool = False) -> None:
        self.policy = policy
        self.http2 = http2  # the context offers h2 by ALPN (an HTTP/2 cluster's)
        self.context = context if isinstance(context, ssl.SSLContext) else None
        self.error = context if isinstance(context, str) else ""
        self.server_name = policy.sni or server_name
        self.names = tuple(name.lower() for name in policy.subject_alt_names) if policy.verify else ()
        self.stats = stats

    def __repr__(self) -> str:
        return f"<UpstreamTLS sni={self.server_name} verify={self.policy.verify}>"

    async def handshake(self, transport: asyncio.Transport, protocol: asyncio.BaseProtocol, *, where: str,
                        timeout: float) -> asyncio.Transport:
        """Upgrade a connected transport; the TLS transport the protocol uses from now on.

        Raises HandshakeError (the plain transport closed) when the handshake or the name check fails.
        """
        context = self.context
        if context is None:
            transport.abort()
            self.stats.failed(CONFIG)
            raise HandshakeError(f"TLS to {where}: {self.error} ({CONFIG})", reason=CONFIG)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                upgraded = await loop.start_tls(transport, protocol, context, server_hostname=self.server_name,
                                                ssl_handshake_timeout=timeout + 1.0)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            transport.abort()
            reason = classify(error)
            self.stats.failed(reason)
            raise HandshakeError(f"TLS handshake with {where} (SNI {self.server_name}) failed: {describe(error)}",
                                 reason=reason) from error
        if upgraded is None:  # the connection closed as the handshake ended
            transport.abort()
            self.stats.failed(CLOSED)
            raise HandshakeError(f"TLS handshake with {where} (SNI {self.server_name}) failed: connection closed",
                                 reason=CLOSED)
        mismatch = self.check_peer(upgraded.get_extra_info("ssl_object"))
        if mismatch:
            upgraded.abort()
            self.stats.failed(NAME_MISMATCH)
            raise HandshakeError(f"TLS to {where} (SNI {self.server_name}): {mismatch} ({NAME_MISMATCH})",
                                 reason=NAME_MISMATCH)
        self.stats.completed += 1
        return upgraded

    def check_peer(self, ssl_object: Any) -> str:
        """Why the verified peer certificate does not carry any of the wanted SANs ("" when it does, or when
        no SAN is wanted: OpenSSL checked the SNI name then)."""
        names = self.names
        if not names:
            return ""
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        offered = certificate.get("subjectAltName", ()) if certificate else ()
        if any(san_matches(kind, value, wanted) for kind, value in offered for wanted in names):
            return ""
        shown = ", ".join(f"{kind}:{value}" for kind, value in offered) or "none"
        return f"the certificate's subject alternative names ({shown}) match none of {', '.join(names)}"


def san_matches(kind: str, value: str, wanted: str) -> bool:
    """Whether one SAN of the certificate (`kind` as Python's ssl names it) matches one wanted name:
    URIs exactly; DNS names without case, a certificate wildcard covering exactly one leftmost label;
    IP addresses by value."""
    if "://" in wanted:
        return kind == "URI" and value == wanted
    if kind == "DNS":
        value = value.lower().rstrip(".")
        wanted = wanted.rstrip(".")
        if value == wanted:
            return True
        if value.startswith("*.") and "." in wanted:
            label, _, rest = wanted.partition(".")
            return bool(label) and label != "*" and rest == value[2:]
        return False
    if kind == "IP Address":
        try:
            return ipaddress.ip_address(value.strip()) == ipaddress.ip_address(wanted)
        except ValueError:
            return False
    return False


def classify(error: BaseException) -> str:
    """The reason a handshake failed, from the exception the event loop raised."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return _VERIFY_CODES.get(error.verify_code, BAD_CERTIFICATE)
    if isinstance(error, TimeoutError):
        return TIMEOUT
    if isinstance(error, ssl.SSLError):
        reason = error.reason or ""
        if reason in _NOT_TLS:
            return NOT_TLS
        if "ALERT" in reason:
            return REFUSED
        if reason == "UNEXPECTED_EOF_WHILE_READING" or isinstance(error, ssl.SSLEOFError):
            return CLOSED
        return OTHER
    if isinstance(error, (ConnectionError, asyncio.IncompleteReadError, EOFError)):
        return CLOSED
    return OTHER


def describe(error: BaseException) -> str:
    """A short text for a failed handshake: OpenSSL's verification message when there is one."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message} ({classify(error)})"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ssl.SSLError):
        return f"{error.reason or error} ({classify(error)})"
    return f"{error or type(error).__name__} ({classify(error)})"
