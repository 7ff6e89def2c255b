"""What conditions and filters may read and change of a request: the seam between rules and protocols.

The data plane's request head (HTTP/1.1 today, HTTP/2 later) implements `Request`; the rule
model only speaks to this protocol, so `routing/` stays pure and protocol-neutral.
"""

from __future__ import annotations

from typing import Protocol


class ClientCertificate(Protocol):
    """The client certificate of a TLS connection to a host that asks for one (tls.client_auth fills it)."""

    @property
    def secret(self) -> str:
        """"namespace/name" of the CA Secret the connection's host context verified against."""
        ...

    @property
    def verify(self) -> str:
        """nginx's $ssl_client_verify: "SUCCESS", "NONE" or "FAILED:<reason>"."""
        ...

    @property
    def error(self) -> int:
        """OpenSSL's X509_V_ERR_ code (0: verified, or no certificate)."""
        ...

    @property
    def subject(self) -> str:
        """$ssl_client_s_dn ("" without certificate)."""
        ...

    @property
    def issuer(self) -> str:
        """$ssl_client_i_dn."""
        ...

    @property
    def escaped_pem(self) -> str:
        """$ssl_client_escaped_cert."""
        ...


class Request(Protocol):
    """A request head as rules see it: read for matching, edited by request filters."""

    method: bytes
    # "http" or "https": the scheme the client used to reach the listener.
    scheme: str
    # The normalized request path (what the table matched, and what is forwarded unless rewritten).
    path: str
    # The TLS server name (SNI) the connection was opened with; None over plain HTTP or without SNI.
    server_name: str | None

    def header(self, name: bytes) -> bytes | None:
        """The value of a header (`name` lower-case); repeated fields joined with ", "; None when absent."""
        ...

    def query_value(self, name: str) -> str | None:
        """The first value of a query parameter (percent-decoded); None when absent."""
        ...

    @property
    def host(self) -> str:
        """The normalized host (lower-case, no port)."""
        ...

    @property
    def query(self) -> bytes:
        """The raw query string without "?" (b"" when there is none)."""
        ...

    @property
    def port(self) -> int:
        """The port the client connected to, as clients see it (a Gateway listener's port)."""
        ...

    @property
    def https_port(self) -> int:
        """The port clients reach HTTPS on, for redirects to https (--publish-https-port)."""
        ...

    @property
    def client_address(self) -> bytes:
        """The client's address as text (b"10.0.0.1"): the connection's peer."""
        ...

    @property
    def client_certificate(self) -> ClientCertificate | None:
        """The connection's client certificate verdict; None over plain HTTP and for hosts that ask none."""
        ...

    def set_header(self, name: bytes, value: bytes) -> None:
        """Replace every field named `name` (any case) with one field."""
        ...

    def add_header(self, name: bytes, value: bytes) -> None:
        """Append a field (an existing one of that name gets the value appended, comma-separated)."""
        ...

    def remove_header(self, name: bytes) -> None:
        """Drop every field named `name` (any case)."""
        ...

    def replace_headers(self, names: frozenset[bytes], pairs: tuple[tuple[bytes, bytes], ...]) -> None:
        """Drop every field whose lower-case name is in `names`, then append `pairs` (one pass)."""
        ...

    def set_path(self, path: str) -> None:
        """Forward `path` (already normalized) instead of the request's own."""
        ...

    def set_host(self, host: bytes) -> None:
        """Forward `host` as the Host (authority) instead of the request's own."""
        ...


class Response(Protocol):
    """A response head as response filters see it (the upstream's, or one the proxy made)."""

    status: int

    def set_header(self, name: bytes, value: bytes) -> None: ...

    def add_header(self, name: bytes, value: bytes) -> None: ...

    def remove_header(self, name: bytes) -> None: ...

    def replace_headers(self, names: frozenset[bytes], pairs: tuple[tuple[bytes, bytes], ...]) -> None:
        """Drop every field whose lower-case name is in `names`, then append `pairs`: several set_header calls
        in one pass over the fields."""
        ...
