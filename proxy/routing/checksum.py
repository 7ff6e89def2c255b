"""The build's checksum: equal routing gives an equal checksum, and it costs what changed.

Digests are made from the frozen rule data itself (the `repr` of routes, choices and clusters,
which lists every field of those frozen dataclasses), never from a hand-kept list of fields: a
field added to the model is covered the moment it exists. Fields are joined with NUL, which no
name, host or path can hold (hosts and names are validated, rule paths with control characters
are refused).

Gateway listener tables are covered host by host (scoped by local port; on an Ingress port only
the hosts a Gateway route joined, the rest being the Ingress table's own VirtualHosts), and so is
the Gateway API status: a status-only change (a generation bump) must still reach the status writer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from proxy.routing.model import Cluster, ListenerConfig
from proxy.routing.table import RouteTable, VirtualHost


def host_digest(host: str, routes: VirtualHost, *, scope: str = "") -> bytes:
    """Digest of one rule host's rules: one line per slot (the slot's whole content).

    `scope` tells tables apart (a Gateway listener port); "" is the Ingress listeners' table.
    Every claimed host is listed, even one without rules: it answers 404 instead of falling through.
    """
    where = f"{scope}\0{host}"
    lines = [f"{where}\0exact\0{path}\0{slot!r}" for path, slot in routes.exact.items()]
    lines.extend(f"{where}\0prefix\0{path}\0{slot!r}" for path, slot in routes.prefix.items())
    if len(lines) > 1:
        lines.sort()
    lines.extend(f"{where}\0regex\0{index}\0{pattern.pattern}\0{slot!r}"
                 for index, (pattern, slot) in enumerate(routes.regex))
    lines.append(f"{where}\0default\0{routes.default!r}")
    if not routes.log_unmatched:
        lines.append(f"{where}\0unlogged")
    return hashlib.sha256("\n".join(lines).encode()).digest()


def cluster_digest(cluster: Cluster) -> bytes:
    return hashlib.sha256(f"cluster\0{cluster!r}".encode()).digest()


class DigestSet:
    """A set of digests (one per host, one per cluster) and one digest of the whole set, kept up
    to date in time proportional to what changed.

    Digests are spread over 256 buckets by their first byte; a bucket's digest covers its members
    in sorted order, the whole set's covers the bucket digests in order. So the result depends only
    on the set (not on the order things were added), and equal sets give equal checksums. Every
    member names its own host or cluster key, so a host or cluster changing changes the set.
    """

    __slots__ = ("_buckets", "_folded", "_dirty", "_hexdigest")

    def __init__(self) -> None:
        self._buckets: list[set[bytes]] = [set() for _ in range(256)]
        self._folded = [b""] * 256
        self._dirty: set[int] = set()
        self._hexdigest = ""

    def add(self, digest: bytes) -> None:
        self._buckets[digest[0]].add(digest)
        self._dirty.add(digest[0])

    def discard(self, digest: bytes) -> None:
        self._buckets[digest[0]].discard(digest)
        self._dirty.add(digest[0])

    def hexdigest(self) -> str:
        if self._dirty or not self._hexdigest:
            for index in self._dirty:
                bucket = self._buckets[index]
                self._folded[index] = hashlib.sha256(b"".join(sorted(bucket))).digest() if bucket else b""
            self._dirty.clear()
            self._hexdigest = hashlib.sha256(b"".join(self._folded)).hexdigest()
        return self._hexdigest


def listener_scope(local: int, *, any_depth: bool = False) -> str:
    """The digest scope of a Gateway listener table's hosts (by local port)."""
    return f"port {local} any depth" if any_depth else f"port {local}"


def listener_digest(local: int, config: ListenerConfig) -> bytes:
    """What a listener is besides its hosts: port, protocol, certificates, whether it holds the Ingress table."""
    certificates = sorted(config.certificates.items())
    text = f"listener\0{local}\0{config.port}\0{config.protocol}\0{config.ingress}\0{certificates!r}"
    return hashlib.sha256(text.encode()).digest()


def status_digest(status: object) -> bytes:
    """Gateway API status is covered too: a change to it alone must still reach the status writer."""
    return hashlib.sha256(f"gateway status\0{status!r}".encode()).digest()


def policy_status_digest(status: object) -> bytes:
    """BackendTrafficPolicy (or BackendTLSPolicy) status, like Gateway API status: a change to it alone reaches
    its writer (the two kinds' digests differ: the repr names the class)."""
    return hashlib.sha256(f"policy status\0{status!r}".encode()).digest()


def listener_digests(local: int, config: ListenerConfig, ingress: RouteTable) -> list[bytes]:
    """A listener's digests: its own, and one per host it does not share with the Ingress table.

    A listener on an Ingress port reuses the Ingress VirtualHost of every host no Gateway route
    joined; those are covered by the Ingress table's digests already.
    """
    table = config.table
    shared = config.ingress
    found = [listener_digest(local, config)]
    scope = listener_scope(local)
    for host, routes in table.hosts.items():
        if not shared or ingress.hosts.get(host) is not routes:
            found.append(host_digest(host, routes, scope=scope))
    for suffix, routes in table.wildcards.items():
        if not shared or ingress.wildcards.get(suffix) is not routes:
            found.append(host_digest("*." + suffix, routes, scope=scope))
    deep = listener_scope(local, any_depth=True)
    for suffix, routes in table.suffixes.items():
        found.append(host_digest("*." + suffix, routes, scope=deep))
    if table.any_host is not None and (not shared or ingress.any_host is not table.any_host):
        found.append(host_digest("", table.any_host, scope=scope))
    return found


def checksum(table: RouteTable, clusters: Mapping[str, Cluster], listeners: Mapping[int, ListenerConfig] | None = None,
             status: object | None = None, policy_status: object | None = None,
             tls_policy_status: object | None = None) -> str:
    """A stable digest of routes, clusters, Gateway listeners and status: equal routing gives an equal checksum.

    Builders compute the same value piecewise (a digest per host, kept while the host is unchanged).
    """
    digests = DigestSet()
    if listeners:
        for local, config in listeners.items():
            for digest in listener_digests(local, config, table):
                digests.add(digest)
    if status is not None:
        digests.add(status_digest(status))
    if policy_status is not None:
        digests.add(policy_status_digest(policy_status))
    if tls_policy_status is not None:
        digests.add(policy_status_digest(tls_policy_status))
    for host, routes in table.hosts.items():
        digests.add(host_digest(host, routes))
    for suffix, routes in table.wildcards.items():
        digests.add(host_digest("*." + suffix, routes))
    for suffix, routes in table.suffixes.items():
        digests.add(host_digest("*." + suffix, routes, scope="any depth"))
    if table.any_host is not None:
        digests.add(host_digest("", table.any_host))
    for cluster in clusters.values():
        digests.add(cluster_digest(cluster))
    return digests.hexdigest()
