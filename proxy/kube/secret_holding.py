"""Which Secrets the object cache holds the data of: the references to Secrets, counted.

A Secret matters while an Ingress (spec.tls, and the annotations of proxy.references.SECRET_ANNOTATIONS) or a
Gateway (its listeners' certificateRefs) names it, or when it is one of `relevant` (the default certificate);
a TLS Secret is held anyway. Cluster mode lists every Secret of the cluster (Helm release Secrets are megabytes
each): once `hold()` is called, any other Secret is remembered by key alone (`unheld`), and one that starts
being named is read again (one GET: the `fetch` callback, see proxy.kube.fetchers). Without `hold()` (file
mode, worker processes) every Secret given is held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from proxy.kube.cow_dict import CowDict
from proxy.objects import Key, KubeObject

# TLS Secrets are always held once listed; any other Secret only while an object names it.
TLS_SECRET_TYPE = "kubernetes.io/tls"


def certificate_refs(gateway: Mapping[str, Any]) -> set[Key]:
    """The Secrets a Gateway's listeners name in tls.certificateRefs, as (namespace, name).

    Only core Secrets (group "", kind Secret: the CRD's defaults, also when absent as in a manifest);
    a ref without a namespace is in the Gateway's. Cross-namespace refs count too: whether a
    ReferenceGrant allows them is the builder's call, and it must see the Secret change either way.
    """
    spec = gateway.get("spec")
    listeners = spec.get("listeners") if isinstance(spec, dict) else None
    if not isinstance(listeners, list):
        return set()
    namespace = (gateway.get("metadata") or {}).get("namespace") or ""
    found = set()
    for listener in listeners:
        tls = listener.get("tls") if isinstance(listener, dict) else None
        refs = tls.get("certificateRefs") if isinstance(tls, dict) else None
        if not isinstance(refs, list):
            continue
        for ref in refs:
            if not isinstance(ref, dict) or (ref.get("group") or "") != "" or (ref.get("kind") or "Secret") != "Secret":
                continue
            name = ref.get("name")
            if isinstance(name, str) and name:
                ref_namespace = ref.get("namespace")
                found.add((ref_namespace if isinstance(ref_namespace, str) and ref_namespace else namespace, name))
    return found


class SecretHolding:
    """The Secrets named (counted), the Secrets known by key alone, and the reads asked for.

    The cache calls `count` for every object naming Secrets that comes or goes, stores a Secret only while
    `holds()` says so (else adds it to `unheld`), and calls `release()` after each write: a Secret named no
    more loses its data then (`dropped` tells the cache, which hands the write to its observers).
    """

    def __init__(self, store: CowDict, *, relevant: Iterable[Key], dropped: Callable[[KubeObject], None],
                 synced_once: Callable[[], bool]) -> None:
        """`relevant`: Secrets that matter even when nothing names them. `synced_once`: whether the cache has
        been synced once (reads asked before that hold the first sync)."""
        self._store = store
        self._dropped = dropped
        self._synced_once = synced_once
        self.relevant = frozenset(relevant)
        # Secret key -> number of Ingresses (spec.tls, annotations) and Gateways (listeners' certificateRefs) naming it.
        self.refs: dict[Key, int] = {}
        # Set by hold() (cluster mode): called with the key of a Secret that is not held and that something starts
        # naming; None (file mode, worker processes): every Secret given is held.
        self._fetch: Callable[[Key], None] | None = None
        # Secrets that exist but whose data is not held (nothing names them, not TLS); keys only.
        self.unheld: set[Key] = set()
        # Held Secrets whose last reference went away during a write: their data is dropped after it.
        self._released: list[Key] = []
        # Secrets asked of `fetch` and not read back yet: until the first ones are in, the cache is not synced
        # (the first build must not answer 503 for an auth-secret being read); later ones do not matter so.
        self.fetching: set[Key] = set()

    @property
    def holding(self) -> bool:
        """Whether only what matters is held (`hold()` was called)."""
        return self._fetch is not None

    def hold(self, fetch: Callable[[Key], None]) -> None:
        """Hold from now on only what matters (see the module docstring); drop the data of the rest held already."""
        self._fetch = fetch
        self._released.extend(key for key, obj in self._store.data.items()  # type: ignore[misc]
                              if not self.holds(key, obj))  # type: ignore[arg-type]
        self.release()

    def matters(self, key: Key) -> bool:
        """Whether something names this Secret (or it is relevant): its change rebuilds routes."""
        return key in self.refs or key in self.relevant

    def holds(self, key: Key, obj: Mapping[str, Any]) -> bool:
        return self.matters(key) or obj.get("type") == TLS_SECRET_TYPE

    def count(self, obj: KubeObject | None, delta: int, named: Callable[[Mapping[str, Any]], set[Key]]) -> None:
        """Count the Secrets an object names (`named`: how it names them; delta 1: it came, -1: it went)."""
        if obj is None:
            return
        refs = self.refs
        fetch = self._fetch
        for secret in named(obj):
            count = refs.get(secret, 0) + delta
            if count > 0:
                refs[secret] = count
                if fetch is not None and count == delta and secret in self.unheld:
                    if not self._synced_once():
                        self.fetching.add(secret)
                    fetch(secret)  # named now: read it again
            else:
                refs.pop(secret, None)
                if fetch is not None and secret not in self.relevant:
                    self._released.append(secret)

    def release(self) -> None:
        """Drop the data of held Secrets nothing names any more (after the write that released them)."""
        if not self._released:
            return
        released, self._released = self._released, []
        store = self._store
        for key in released:
            obj = store.data.get(key)
            if obj is None or self.holds(key, obj):
                continue
            del store.writable()[key]
            self.unheld.add(key)
            self._dropped(obj)
