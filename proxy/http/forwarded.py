"""Trusting what a proxy in front says about the client: ingress-nginx's use-forwarded-headers and real IP.

Without these settings the proxy sets X-Forwarded-Proto/-Host/-Port and X-Real-IP itself and appends the
client address to X-Forwarded-For (the default path in proxy/http/pipeline.py, untouched). With them
(configmap.md: `use-forwarded-headers`, `enable-real-ip`, `forwarded-for-header`, `proxy-real-ip-cidr`,
`compute-full-forwarded-for`), a request whose connection comes from a trusted network is read as nginx's
realip module reads it, with `real_ip_recursive on`:

- the client address is taken from `forwarded-for-header` (X-Forwarded-For by default): walking it from
  the right, trusted addresses are skipped, the first other one is the client (all trusted: the leftmost;
  none there: the connection's address). That address is the client everywhere: X-Real-IP, source
  ranges, rate limits, hashing, the access log, spans.
- X-Forwarded-For sent upstream is that client address (nginx's `$remote_addr`); with
  `compute-full-forwarded-for` the incoming X-Forwarded-For with the connection's address appended.
- with `use-forwarded-headers` (not with `enable-real-ip` alone) the client's X-Forwarded-Proto, -Host
  (its first entry) and -Port are passed on when present, as ingress-nginx's Lua does.

A connection from elsewhere keeps its own address, and every forwarded header is the proxy's (X-Forwarded-For
is its address, or appended to under `compute-full-forwarded-for`). The connection's address is its socket
peer, or the PROXY protocol header's (ingress-nginx checks `$proxy_protocol_addr` against the same list).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from proxy.routing.access import AddressSet, parse_networks

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.routing.global_config import GlobalConfig
    from proxy.settings import Settings

_CRLF = b"\r\n"
_PROTO = b"x-forwarded-proto"
_HOST = b"x-forwarded-host"
_PORT = b"x-forwarded-port"


class ForwardedTrust:
    """The trusted networks and what is taken from requests that come from them; None when nothing is."""

    __slots__ = ("trusted", "header", "from_xff", "pass_headers", "full")

    def __init__(self, *, networks: tuple[str, ...], header: str, pass_headers: bool, full: bool) -> None:
        self.trusted = AddressSet(networks)
        self.header = header.strip().lower().encode("latin-1")
        self.from_xff = self.header == b"x-forwarded-for"
        self.pass_headers = pass_headers
        self.full = full

    @classmethod
    def from_settings(cls, settings: Settings | GlobalConfig) -> ForwardedTrust | None:
        """The trust the settings (or the ConfigMap's global configuration, same field names) ask for; None for
        none (the default: the pipeline's usual path). Raises ValueError for a network that is not one (the CLI
        and the ConfigMap's reader check them before)."""
        if not (settings.use_forwarded_headers or settings.enable_real_ip):
            return None
        return cls(networks=parse_networks(",".join(settings.proxy_real_ip_cidr) or "0.0.0.0/0"),
                   header=settings.forwarded_for_header or "X-Forwarded-For",
                   pass_headers=settings.use_forwarded_headers,
                   # (the template's `and UseForwardedHeaders ComputeFullForwardedFor`: with enable-real-ip alone
                   # X-Forwarded-For is the client address)
                   full=settings.compute_full_forwarded_for and settings.use_forwarded_headers)

    @classmethod
    def from_config(cls, config: GlobalConfig) -> ForwardedTrust | None:
        """The trust of the ConfigMap's global configuration; a bad proxy-real-ip-cidr trusts no network (fail
        closed: the proxy's own forwarded fields) rather than the default 0.0.0.0/0."""
        trust = cls.from_settings(config)
        if trust is not None and "proxy-real-ip-cidr" in config.invalid_keys:
            trust.trusted = AddressSet(())
        return trust

    def resolve(self, ex: Exchange) -> None:
        """A request from a trusted network: its client address from the forwarded-for header."""
        peer = ex.client_ip
        if peer in self.trusted:
            chain = ex.forwarded_for if self.from_xff else ex.header(self.header) or _passed(ex, self.header)
            if chain:
                ex.client_ip = real_client(chain, self.trusted) or peer

    def scheme(self, ex: Exchange) -> str:
        """The scheme a trusted X-Forwarded-Proto names ("" when none is passed on)."""
        passed = ex.forwarded_in
        if not self.pass_headers or passed is None or ex.client.client_ip not in self.trusted:
            return ""
        scheme = ""
        for index in range(0, len(passed), 2):
            if passed[index].lower() == _PROTO and passed[index + 1].strip():
                scheme = passed[index + 1].strip().lower().decode("latin-1")
        return scheme

    def fields(self, ex: Exchange, host: bytes) -> tuple[bytes, bytes]:
        """The forwarded fields to send upstream (X-Forwarded-For, -Proto, -Port, X-Real-IP, X-Forwarded-Host) as
        ready bytes ending in CRLF, and the host to send (a trusted X-Forwarded-Host's first entry, nginx's
        `$best_http_host`; else `host` itself)."""
        conn = ex.client
        peer = conn.client_ip
        incoming = ex.forwarded_for
        client = ex.client_ip
        own = conn.forwarded  # X-Forwarded-For, -Proto, -Port, X-Real-IP: the connection's (see ClientConnection)
        scheme_port = own[conn.forwarded_ip_end + 2 : own.rfind(b"X-Real-IP: ")]
        forwarded_host = host
        passed = ex.forwarded_in
        if self.pass_headers and passed is not None and peer in self.trusted:
            proto = port = None
            for index in range(0, len(passed), 2):
                name = passed[index].lower()
                value = passed[index + 1].strip()
                if not value:
                    continue
                if name == _PROTO:
                    proto = value
                elif name == _HOST:
                    forwarded_host = value.split(b",", 1)[0].strip() or host
                elif name == _PORT:
                    port = value
            if proto is not None or port is not None:
                scheme_port = b"X-Forwarded-Proto: %s\r\nX-Forwarded-Port: %s\r\n" % (
                    proto or _value(scheme_port, b"X-Forwarded-Proto: "),
                    port or _value(scheme_port, b"X-Forwarded-Port: "))
        if self.full:
            forwarded_for = incoming + b", " + peer if incoming else peer
        else:
            forwarded_for = client
        return b"".join((b"X-Forwarded-For: ", forwarded_for, _CRLF, scheme_port, b"X-Real-IP: ", client, _CRLF,
                         b"X-Forwarded-Host: ", forwarded_host, _CRLF)), forwarded_host


def _passed(ex: Exchange, name: bytes) -> bytes | None:
    """A header the proxy replaces (X-Real-IP, X-Forwarded-Host...) as the client sent it (repeats joined)."""
    passed = ex.forwarded_in
    if passed is None:
        return None
    values = [passed[index + 1] for index in range(0, len(passed), 2) if passed[index].lower() == name]
    return b", ".join(values) if values else None


def _value(fields: bytes, prefix: bytes) -> bytes:
    start = fields.index(prefix) + len(prefix)
    return fields[start : fields.index(b"\r\n", start)]


def real_client(chain: bytes, trusted: AddressSet) -> bytes:
    """nginx's realip with `real_ip_recursive on`: from the right of a comma-separated address list, the
    first address not in `trusted` (all trusted: the leftmost); b"" when the list has no valid address.
    An entry that is not an address ends the walk (the last valid one stands)."""
    found = b""
    for entry in reversed(chain.split(b",")):
        address = entry.strip()
        if not _is_address(address):
            break
        found = address
        if address not in trusted:
            break
    return found


def _is_address(text: bytes) -> bool:
    try:
        ipaddress.ip_address(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return False
    return True
