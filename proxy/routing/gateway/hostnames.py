"""Gateway API hostnames: what is valid, where a listener and a route meet, which listener owns a host.

A Gateway wildcard "*.example.com" matches any number of labels on the left ("a.example.com" and
"a.b.example.com", never "example.com"), unlike an Ingress wildcard (exactly one label). Host keys
are the forms the table uses: "x" (exact), "*.x" (wildcard), "" (any host).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from proxy.routing.fields import Malformed

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_HOSTNAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
_MAX = 253


def check_hostname(value: object, where: str, *, wildcard: bool = True) -> str:
    """The lower-case hostname, or Malformed for what the API refuses (IP addresses, bad labels)."""
    if not isinstance(value, str) or not value:
        raise Malformed(f"{where} must be a hostname, got {value!r:.60}")
    lowered = value.lower()
    if len(lowered) > _MAX or not _HOSTNAME.fullmatch(lowered) or (not wildcard and lowered.startswith("*.")):
        kind = "a hostname or a '*.' wildcard" if wildcard else "a hostname"
        raise Malformed(f"{where} {value!r:.80} is not {kind}")
    try:
        ipaddress.ip_address(lowered)
    except ValueError:
        return lowered
    raise Malformed(f"{where} {value!r} is an IP address; hostnames must be DNS names")


def _covers_name(pattern: str, host: str) -> bool:
    """A listener pattern (exact or wildcard) covers an exact host name."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def intersect(listener: str, route: str) -> str | None:
    """The hostname requests must carry to match both a listener hostname and a route hostname
    (the more specific of the two), or None when no request can match both. "" is "any host"."""
    if not listener:
        return route
    if not route:
        return listener
    if not route.startswith("*."):
        return route if _covers_name(listener, route) else None
    if not listener.startswith("*."):
        return listener if _covers_name(route, listener) else None
    if listener == route or route.endswith(listener[1:]):
        return route
    if listener.endswith(route[1:]):
        return listener
    return None


def route_hosts(listener: str, hostnames: tuple[str, ...] | None) -> tuple[str, ...]:
    """The host keys a route gets on a listener: the listener's own hostname when the route names
    none (None), else every intersection, deduplicated, in the route's order (maybe none)."""
    if hostnames is None:
        return (listener,)
    found: dict[str, None] = {}
    for name in hostnames:
        meet = intersect(listener, name)
        if meet is not None:
            found[meet] = None
    return tuple(found)


def covers(pattern: str, host: str) -> bool:
    """A listener hostname pattern covers every request host a host key can match."""
    if not pattern:
        return True
    if not host:
        return False
    if host.startswith("*."):
        return pattern.startswith("*.") and (host == pattern or host.endswith(pattern[1:]))
    return _covers_name(pattern, host)


def specificity(pattern: str) -> tuple[int, int, int]:
    """Listener precedence for a host: exact names, then wildcards with more labels, then no hostname."""
    if not pattern:
        return (0, 0, 0)
    if pattern.startswith("*."):
        return (1, pattern.count("."), len(pattern))
    return (2, pattern.count("."), len(pattern))


def owner(patterns: Iterable[str], host: str) -> str | None:
    """The most specific of the listener hostname patterns (of one port) covering a host key."""
    best: str | None = None
    for pattern in patterns:
        if covers(pattern, host) and (best is None or specificity(pattern) > specificity(best)):
            best = pattern
    return best
