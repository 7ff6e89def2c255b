"""Which hosts have TLS among the served Ingresses: it decides their plain-HTTP redirect."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def tls_host_names(ingress: Mapping[str, Any]) -> set[str]:
    """The lower-case hosts an Ingress's spec.tls lists (an entry without hosts: its rule hosts)."""
    spec = ingress.get("spec")
    if type(spec) is not dict and not isinstance(spec, Mapping):
        return set()
    entries = spec.get("tls")
    if not entries or not isinstance(entries, list):
        return set()
    found: set[str] = set()
    for entry in entries:
        # Read exactly as the certificate store reads it (proxy/tls/hosts.py): an entry it ignores
        # must not redirect plain HTTP to an HTTPS that serves no certificate of its own.
        if not isinstance(entry, Mapping) or not isinstance(entry.get("secretName") or "", str):
            continue
        hosts = entry.get("hosts")
        if hosts is None or hosts == []:  # the API drops an empty list: both mean "the rule hosts"
            rules = spec.get("rules")
            hosts = [r.get("host") for r in rules if isinstance(r, Mapping)] if isinstance(rules, list) else []
        if isinstance(hosts, list):
            found.update(h.strip().lower().rstrip(".") for h in hosts if isinstance(h, str) and h.strip())
    return found


class TlsHosts:
    """Every host with TLS over the served Ingresses: exact names and one-label wildcards."""

    __slots__ = ("exact", "wildcards")

    def __init__(self, names: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.wildcards: set[str] = set()  # suffixes of "*.suffix"
        for name in names:
            if name.startswith("*."):
                self.wildcards.add(name[2:])
            else:
                self.exact.add(name)

    def covers(self, route_host: str) -> bool:
        """True when requests for `route_host` (a rule host; "" = any host) arrive with TLS available."""
        if not route_host:
            return False
        if route_host.startswith("*."):
            return route_host[2:] in self.wildcards
        if route_host in self.exact:
            return True
        dot = route_host.find(".")
        return dot > 0 and route_host[dot + 1 :] in self.wildcards
