"""Which ConfigMaps the object cache keeps, and how much of each: the references to ConfigMaps, counted.

A ConfigMap matters while something names it: a BackendTLSPolicy (validation.caCertificateRefs) reads only
its CA bundle (`ca.crt`), an Ingress (custom-headers, auth-proxy-set-headers) or ingress-nginx's ConfigMap
(proxy-set-headers) reads it whole. Cluster mode lists every ConfigMap of the cluster (one kube-root-ca.crt per
namespace, and whatever applications keep there): once `hold()` is called, a ConfigMap is kept whole only while
named so, with its CA bundle only while a BackendTLSPolicy names it, else as its name alone; one that starts
being named while held with less than it needs is read again (one GET: the `fetch` callback, see
proxy.kube.fetchers). Without `hold()` (file mode, worker processes) every ConfigMap is kept whole, as given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from proxy.kube.cow_dict import CowDict
from proxy.objects import Key, KubeObject

# The one key of any ConfigMap kept (a BackendTLSPolicy's CA bundle); the rest of a ConfigMap is kept only
# while an Ingress names it (custom-headers, auth-proxy-set-headers).
CA_BUNDLE_KEY = "ca.crt"
# What a ConfigMap held without its data keeps of its metadata (a cluster has one kube-root-ca.crt per namespace).
_CONFIG_MAP_METADATA = ("name", "namespace", "uid", "resourceVersion")


def config_map_stub(obj: KubeObject, *, ca: bool = True) -> KubeObject:
    """What is kept of a ConfigMap nothing reads whole: its name, uid and version, and its CA bundle if `ca`."""
    meta = obj.get("metadata")
    data = obj.get("data")
    kept_data = {CA_BUNDLE_KEY: data[CA_BUNDLE_KEY]} if ca and isinstance(data, dict) and CA_BUNDLE_KEY in data else {}
    kept = {k: meta[k] for k in _CONFIG_MAP_METADATA if k in meta} if isinstance(meta, dict) else meta
    return {**{k: obj[k] for k in ("apiVersion", "kind") if k in obj}, "metadata": kept, "data": kept_data}


def ca_config_maps(policy: Mapping[str, Any]) -> set[Key]:
    """The ConfigMaps a BackendTLSPolicy's validation.caCertificateRefs name (in its namespace)."""
    spec = policy.get("spec")
    validation = spec.get("validation") if isinstance(spec, dict) else None
    refs = validation.get("caCertificateRefs") if isinstance(validation, dict) else None
    namespace = (policy.get("metadata") or {}).get("namespace") or ""
    found = set()
    for ref in refs if isinstance(refs, list) else ():
        if isinstance(ref, dict) and (ref.get("group") or "") == "" and ref.get("kind") == "ConfigMap":
            name = ref.get("name")
            if isinstance(name, str) and name:
                found.add((namespace, name))
    return found


class ConfigMapHolding:
    """The ConfigMaps named (counted by who names them), what the cache keeps of each, and the reads asked for.

    The cache calls `count_bundles` / `count_named` for every object naming ConfigMaps that comes or goes, and
    stores what `kept()` says; a ConfigMap named no more is stripped in the store at once (`rewritten` tells the
    cache, which hands the write to its observers).
    """

    def __init__(self, store: CowDict, *, rewritten: Callable[[KubeObject], None],
                 synced_once: Callable[[], bool]) -> None:
        """`synced_once`: whether the cache has been synced once (reads asked before that hold the first sync)."""
        self._store = store
        self._rewritten = rewritten
        self._synced_once = synced_once
        # ConfigMap key -> number of BackendTLSPolicies naming it as a CA bundle.
        self.bundles: dict[Key, int] = {}
        # ConfigMap key -> number of Ingresses (custom-headers, auth-proxy-set-headers) and controller ConfigMaps
        # (proxy-set-headers) naming it: kept whole.
        self.named: dict[Key, int] = {}
        # Set by hold() (cluster mode), called with the key to read again; None: every ConfigMap is kept whole.
        self._fetch: Callable[[Key], None] | None = None
        # Reads asked before the first sync and not over yet: until they are, the cache is not synced.
        self.fetching: set[Key] = set()

    def hold(self, fetch: Callable[[Key], None]) -> None:
        """Keep from now on only what is named (see the module docstring); strip what is held already."""
        self._fetch = fetch
        store = self._store
        for key, obj in list(store.data.items()):
            if key not in self.named:
                store.writable()[key] = config_map_stub(obj, ca=key in self.bundles)

    def matters(self, key: Key) -> bool:
        """Whether something names this ConfigMap (its change rebuilds routes; a read of it is worth doing)."""
        return key in self.named or key in self.bundles

    def kept(self, key: Key, obj: KubeObject) -> KubeObject | None:
        """What the cache keeps of a ConfigMap: None for the whole object (while something names it whole, or
        without `hold()`), else its stub (with its CA bundle while a BackendTLSPolicy names it)."""
        if self._fetch is None or key in self.named:
            return None
        return config_map_stub(obj, ca=key in self.bundles)

    def count_bundles(self, policy: KubeObject | None, delta: int) -> None:
        """Count the CA bundles a BackendTLSPolicy names (delta 1: it came, -1: it went)."""
        if policy is None:
            return
        refs = self.bundles
        holding = self._fetch is not None
        for key in ca_config_maps(policy):
            count = refs.get(key, 0) + delta
            if count > 0:
                refs[key] = count
                if holding and count == delta and key not in self.named:
                    self._read_again(key)  # a CA bundle now: it was held without it
            else:
                refs.pop(key, None)
                if holding:
                    self._restrip(key)

    def count_named(self, obj: KubeObject | None, delta: int, named: Callable[[Mapping[str, Any]], set[Key]]) -> None:
        """Count the ConfigMaps an object names whole (`named`: how it names them); one named at last is read
        again (its data was dropped), one named no more loses its data."""
        if obj is None:
            return
        refs = self.named
        for key in named(obj):
            count = refs.get(key, 0) + delta
            if count > 0:
                refs[key] = count
            else:
                refs.pop(key, None)
            if self._fetch is None:
                continue
            if count == delta == 1:
                self._read_again(key)
            elif count <= 0:
                self._restrip(key)

    def _restrip(self, key: Key) -> None:
        """Keep less of a held ConfigMap now that less names it (after a reference went away)."""
        store = self._store
        held = store.data.get(key)
        if held is None or key in self.named:
            return
        stripped = config_map_stub(held, ca=key in self.bundles)
        if stripped != held:
            store.writable()[key] = stripped
            self._rewritten(stripped)

    def _read_again(self, key: Key) -> None:
        """Something started naming a ConfigMap held with less than it needs: read it again (cluster mode)."""
        if self._fetch is None or key not in self._store.data:
            return  # not there (yet): its ADDED event comes with what is named
        if not self._synced_once():
            self.fetching.add(key)
        self._fetch(key)
