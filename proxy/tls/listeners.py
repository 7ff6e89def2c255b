"""One certificate store per HTTPS port: the Ingress port's (spec.tls, plus Gateway listeners on it) and
one per other Gateway HTTPS port.

Gateway listeners name their certificates per hostname pattern ("x", "*.x", or "" for a listener
without hostname, whose certificate becomes the port's default). On the Ingress HTTPS port the
Ingress hosts keep their certificates and Gateway listener hostnames add theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from proxy.objects import Key, Snapshot, Warning
from proxy.tls.certs import Certificate, parse_secret
from proxy.tls.hosts import build_store
from proxy.tls.store import CertStore


def port_stores(
    snapshot: Snapshot,
    *,
    ingress_port: int,
    ingress_hosts: Mapping[str, Key],
    listeners: Mapping[int, Mapping[str, Key]],
    default: Certificate,
    reuse: Mapping[int, CertStore],
    now: datetime | None = None,
    client_auth: Mapping[str, tuple[Key, str, int]] | None = None,
) -> tuple[dict[int, CertStore], list[Warning]]:
    """CertStore per local HTTPS port: `ingress_port` always, and every port in `listeners`
    (local port -> hostname pattern -> Secret key). Problems are warnings; the hosts concerned get
    the port's default certificate. `client_auth` (hosts asking client certificates) is the Ingress port's."""
    stores: dict[int, CertStore] = {}
    warnings: list[Warning] = []
    for port in sorted({ingress_port, *listeners}):
        patterns = listeners.get(port, {})
        port_default = default
        listener_default = patterns.get("")
        if listener_default is not None:
            port_default, problems = _listener_default(snapshot, listener_default, fallback=default, now=now)
            warnings.extend(problems)
        hosts: dict[str, Key] = dict(ingress_hosts) if port == ingress_port else {}
        for pattern, key in patterns.items():
            if pattern:
                hosts.setdefault(pattern, key)  # an Ingress naming the host keeps its certificate
        store, problems = build_store(snapshot, hosts, default=port_default, reuse=reuse.get(port), now=now,
                                      client_auth=client_auth if port == ingress_port else None)
        warnings.extend(problems)
        stores[port] = store
    return stores, warnings


def _listener_default(snapshot: Snapshot, key: Key, *, fallback: Certificate,
                      now: datetime | None) -> tuple[Certificate, list[Warning]]:
    namespace, name = key
    secret = snapshot.secrets.get(key)
    if secret is None:
        return fallback, [Warning("Secret", namespace, name, "not found; the listener uses the default certificate")]
    result = parse_secret(secret, now=now)
    if isinstance(result, str):
        return fallback, [Warning("Secret", namespace, name, f"{result}; the listener uses the default certificate")]
    return result, []
