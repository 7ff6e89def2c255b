"""Client address checks: CIDR sets compiled at build time, and the filters that answer 403 or 503 with them.

An `AddressSet` is a list of networks (ingress-nginx's `whitelist-source-range`, `denylist-source-range`,
`limit-whitelist`) compiled into one dict per address family: prefix length -> the set of network
numbers of that length. A membership test is one integer parse of the client address (cached) and one
set lookup per distinct prefix length (a handful in practice), whatever the number of networks.

The client address is the connection's peer (`Request.client_address`, the text bytes the protocol
layer has). IPv4-mapped IPv6 addresses (a dual-stack listener's "::ffff:10.0.0.1") count as IPv4.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from proxy.routing.filters import Answer
from proxy.routing.request import Request

# Client address text -> (family, integer); bounded so a flood of addresses cannot grow memory.
_parsed: dict[bytes, tuple[int, int]] = {}
_PARSED_LIMIT = 16_384
_UNPARSABLE = (0, 0)


def parse_networks(value: str) -> tuple[str, ...]:
    """Comma-separated networks or addresses, as ingress-nginx's net.ParseIPNets reads them (blanks around
    each entry ignored, host bits allowed: "10.0.0.1/8" is 10.0.0.0/8); normalized, sorted, duplicates
    dropped. Raises ValueError naming the first entry that is neither (an empty entry included)."""
    networks = set()
    for entry in value.split(","):
        text = entry.strip()
        try:
            networks.add(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r:.60} is not an IP address or CIDR network") from None
    ordered = sorted(networks, key=lambda n: (n.version, n.network_address, n.prefixlen))
    return tuple(str(network) for network in ordered)


def _address(client: bytes) -> tuple[int, int]:
    """(4 or 6, the address as an integer), (0, 0) when `client` is not an address."""
    try:
        address = ipaddress.ip_address(client.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return _UNPARSABLE
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version, int(address)


class AddressSet:
    """Networks compiled for membership tests; equal (and hashed, for the build's checksum) by their text."""

    __slots__ = ("networks", "_v4", "_v6")

    def __init__(self, networks: tuple[str, ...]) -> None:
        self.networks = networks
        v4: dict[int, set[int]] = {}
        v6: dict[int, set[int]] = {}
        for text in networks:
            network = ipaddress.ip_network(text, strict=False)
            bits = 32 if network.version == 4 else 128
            table = v4 if network.version == 4 else v6
            table.setdefault(network.prefixlen, set()).add(int(network.network_address) >> (bits - network.prefixlen))
        # Longest prefixes first does not matter for a yes/no answer; tuples of (shift, numbers) for the loop.
        self._v4 = tuple((32 - length, frozenset(numbers)) for length, numbers in sorted(v4.items()))
        self._v6 = tuple((128 - length, frozenset(numbers)) for length, numbers in sorted(v6.items()))

    def __contains__(self, client: bytes) -> bool:
        parsed = _parsed.get(client)
        if parsed is None:
            parsed = _address(client)
            if len(_parsed) < _PARSED_LIMIT:
                _parsed[client] = parsed
        family, number = parsed
        table = self._v4 if family == 4 else self._v6 if family == 6 else ()
        return any(number >> shift in numbers for shift, numbers in table)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AddressSet) and other.networks == self.networks

    def __hash__(self) -> int:
        return hash(self.networks)

    def __repr__(self) -> str:
        return f"AddressSet({self.networks!r})"


@dataclass(frozen=True, slots=True)
class SourceRange:
    """ingress-nginx's `denylist-source-range` and `whitelist-source-range` (nginx's `deny` lines, then
    `allow` lines and `deny all`): a client in `deny`, or outside `allow` when there is one, gets 403.
    It runs after redirects and the CORS preflight, as nginx's access phase follows its rewrite phase."""

    allow: AddressSet | None = None
    deny: AddressSet | None = None
    order: int = field(default=8, init=False)

    def on_request(self, request: Request) -> Answer | None:
        client = request.client_address
        if self.deny is not None and client in self.deny:
            return Answer(403, detail="client address denied")
        if self.allow is not None and client not in self.allow:
            return Answer(403, detail="client address not allowed")
        return None


class UserAgents:
    """nginx `map $http_user_agent` keys, compiled: exact strings (compared without case, as nginx's map
    hash) and `~regex` (case-sensitive) or `~*regex` (not) searches."""

    __slots__ = ("exact", "patterns", "entries")

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.entries = entries
        self.exact = frozenset(entry.lower() for entry in entries if not entry.startswith("~"))
        self.patterns = tuple(re.compile(entry[2:], re.IGNORECASE) if entry.startswith("~*") else re.compile(entry[1:])
                              for entry in entries if entry.startswith("~"))

    def __contains__(self, agent: str) -> bool:
        return agent.lower() in self.exact or any(pattern.search(agent) for pattern in self.patterns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserAgents) and other.entries == self.entries

    def __hash__(self) -> int:
        return hash(self.entries)


def user_agent_matcher(entries: tuple[str, ...]) -> UserAgents | None:
    return UserAgents(entries) if entries else None


@dataclass(frozen=True, slots=True)
class Block:
    """ingress-nginx's ConfigMap `block-cidrs` (nginx `deny` at the http level) and `block-user-agents` (a map
    and `return 403` in every server): 403 before routing, on every listener."""

    cidrs: AddressSet | None = None
    user_agents: UserAgents | None = None
    order: int = field(default=-20, init=False)

    def on_request(self, request: Request) -> Answer | None:
        if self.cidrs is not None and request.client_address in self.cidrs:
            return Answer(403, detail="client address blocked")
        if self.user_agents is not None:
            agent = request.header(b"user-agent")
            if agent is not None and agent.decode("latin-1") in self.user_agents:
                return Answer(403, detail="user agent blocked")
        return None


@dataclass(frozen=True, slots=True)
class Refuse:
    """Every request gets `status`: a security setting that cannot be honoured closes the route instead of
    serving it unprotected (ingress-nginx's denied location, `return 503`). It runs before anything else."""

    status: int = 503
    reason: str = ""
    order: int = field(default=-50, init=False)

    def on_request(self, request: Request) -> Answer | None:
        return Answer(self.status, detail=self.reason)


__all__ = ["AddressSet", "Refuse", "SourceRange", "parse_networks"]
