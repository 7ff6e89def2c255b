"""The object cache: every Kubernetes object the proxy reads, as raw dicts, fed by one source.

Both sources (the cluster watch and the manifest files) write here through `replace()` and
`apply()`; everything downstream reads a `Snapshot`. Each write is classified at once so the
controller knows whether routes must be rebuilt, only some services' endpoints moved, or
nothing that matters changed (content-equal updates, Secrets no Ingress or Gateway references,
a Gateway API object whose status alone moved).

Snapshots are copy-on-write (proxy.kube.cow_dict): `snapshot()` hands out read-only views of the
current dicts and the next write to a kind copies that kind's dict first, so taking a snapshot is
O(1) and a snapshot never changes under its reader.

Which Secrets and ConfigMaps are named, and so what the cache keeps of them, is counted by
proxy.kube.secret_holding and proxy.kube.config_map_holding; the cache calls them on each write.

Observers (`observe()`) see the raw writes themselves rather than their classification: each
write that changed the content, as an `Operation` that `perform()` replays on another cache.
Worker processes keep their own cache this way, fed by the one source of the control process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from proxy.kube.config_map_holding import ConfigMapHolding, config_map_stub
from proxy.kube.cow_dict import CowDict
from proxy.kube.secret_holding import SecretHolding, certificate_refs
from proxy.objects import Key, KubeObject, Snapshot
from proxy.references import controller_config_map_refs, ingress_config_map_refs, ingress_secret_refs

log = logging.getLogger("pyngress.cache")

INGRESS = "Ingress"
INGRESS_CLASS = "IngressClass"
SERVICE = "Service"
ENDPOINT_SLICE = "EndpointSlice"
ENDPOINTS = "Endpoints"
SECRET = "Secret"
# The Gateway API (gateway.networking.k8s.io) and the Namespaces its listeners select routes from.
GATEWAY_CLASS = "GatewayClass"
GATEWAY = "Gateway"
HTTP_ROUTE = "HTTPRoute"
TLS_ROUTE = "TLSRoute"
GRPC_ROUTE = "GRPCRoute"
REFERENCE_GRANT = "ReferenceGrant"
NAMESPACE = "Namespace"
GATEWAY_KINDS: tuple[str, ...] = (GATEWAY_CLASS, GATEWAY, HTTP_ROUTE, REFERENCE_GRANT, TLS_ROUTE, GRPC_ROUTE)
# Traffic policies: ours (pyngress.dev/v1alpha1), the Gateway API's BackendTLSPolicy, and the ConfigMaps
# holding the CA bundles BackendTLSPolicies name.
BACKEND_TRAFFIC_POLICY = "BackendTrafficPolicy"
BACKEND_TLS_POLICY = "BackendTLSPolicy"
CONFIG_MAP = "ConfigMap"
POLICY_KINDS: tuple[str, ...] = (BACKEND_TRAFFIC_POLICY, BACKEND_TLS_POLICY)
KINDS: tuple[str, ...] = (INGRESS, INGRESS_CLASS, SERVICE, ENDPOINT_SLICE, ENDPOINTS, SECRET,
                          *GATEWAY_KINDS, NAMESPACE, *POLICY_KINDS, CONFIG_MAP)
# ingress-nginx's ConfigMap (--configmap): one ConfigMap, kept whole, apart from the CA bundles (whose
# kind is listed and replaced as a whole by its own watch). Any other object given this kind is dropped.
# A cache kind, not an API kind: stored and synced only with a --configmap (see ObjectCache).
CONTROLLER_CONFIG_MAP = "ControllerConfigMap"
STORED_KINDS: tuple[str, ...] = (*KINDS, CONTROLLER_CONFIG_MAP)
# Keyed by name alone (as their Snapshot mappings are).
CLUSTER_SCOPED = frozenset({INGRESS_CLASS, GATEWAY_CLASS, NAMESPACE})
# The builder reads their spec, never their status (it computes status): a status-only change
# (our own status writes, other controllers' entries in an HTTPRoute's status.parents) is kept,
# so readers see the current status, but rebuilds nothing.
_STATUS_IS_OUTPUT = frozenset((*GATEWAY_KINDS, *POLICY_KINDS))
_STATUS = frozenset({"status"})

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

# Metadata that changes without the object's meaning changing: a server-side apply of
# identical content bumps resourceVersion, and managedFields is bookkeeping (and big).
_VOLATILE_METADATA = frozenset({"resourceVersion", "managedFields"})
# LIST items carry no kind/apiVersion, watch objects do: not content.
_VOLATILE_TOP = frozenset({"kind", "apiVersion", "metadata"})
_MISSING = object()
# A Namespace matters only by its labels (Gateway listeners' allowedRoutes selectors): it is kept
# as this much metadata, so its status and annotation churn are content-equal, no change at all.
_NAMESPACE_METADATA = ("name", "uid", "labels", "creationTimestamp", "resourceVersion")


@dataclass(frozen=True, slots=True)
class CacheChange:
    """What one write changed: whether routes must be rebuilt, and whose endpoints moved."""

    routes: bool = False
    # (namespace, service) pairs whose EndpointSlices or Endpoints changed.
    endpoints: frozenset[Key] = frozenset()

    def __bool__(self) -> bool:
        return self.routes or bool(self.endpoints)


Subscriber = Callable[[CacheChange], None]

# Operation names (the first item of an Operation).
REPLACE = "replace"
APPLY = "apply"
SYNCED = "synced"
# One write, replayable with ObjectCache.perform(): (REPLACE, kind, [object, ...]),
# (APPLY, kind, (event type, object)) or (SYNCED, kind, None). Plain data: it pickles.
Operation = tuple[str, str, Any]
Observer = Callable[[Operation], None]


def same_content(a: Mapping[str, Any], b: Mapping[str, Any], *, ignore: frozenset[str] = frozenset()) -> bool:
    """Equal as far as routing can tell: ignores kind, apiVersion, resourceVersion and managedFields
    (and the top-level fields in `ignore`)."""
    if a is b:
        return True
    for key in (a.keys() | b.keys()) - _VOLATILE_TOP - ignore:
        if a.get(key, _MISSING) != b.get(key, _MISSING):
            return False
    meta_a = a.get("metadata") or {}
    meta_b = b.get("metadata") or {}
    for key in (meta_a.keys() | meta_b.keys()) - _VOLATILE_METADATA:
        if meta_a.get(key, _MISSING) != meta_b.get(key, _MISSING):
            return False
    return True


def _strip(obj: KubeObject, kind: str = "") -> KubeObject:
    """The object without managedFields, which nothing reads and can be most of its size
    (a Namespace: only its name, uid, labels and creation time; a ConfigMap: its stub with its CA bundle,
    proxy.kube.config_map_holding.config_map_stub)."""
    meta = obj.get("metadata")
    if kind == NAMESPACE:
        kept = {k: meta[k] for k in _NAMESPACE_METADATA if k in meta} if isinstance(meta, dict) else meta
        return {**{k: obj[k] for k in ("apiVersion", "kind") if k in obj}, "metadata": kept}
    if kind == CONFIG_MAP:
        return config_map_stub(obj)
    if isinstance(meta, dict) and "managedFields" in meta:
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
        obj = {**obj, "metadata": meta}
    return obj


def _name(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return None
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return None
    namespace = meta.get("namespace")
    return (namespace if isinstance(namespace, str) else ""), name


def _slice_service(obj: Mapping[str, Any] | None) -> Key | None:
    """(namespace, service) an EndpointSlice belongs to, from its service-name label."""
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
    if not isinstance(service, str) or not service:
        return None
    return (meta.get("namespace") or "", service)


def _routes_changed(kind: str, old: KubeObject | None, new: KubeObject | None) -> bool:
    """Whether a change of a (non-endpoint, non-Secret) kind changes routes."""
    if kind in _STATUS_IS_OUTPUT and old is not None and new is not None:
        return not same_content(old, new, ignore=_STATUS)
    return True


# The kinds that name Secrets, and how: one matters (rebuilds routes) while one of them names it.
# An Ingress names Secrets in spec.tls and in annotations (proxy.references.ingress_secret_refs).
_SECRET_REFS: dict[str, Callable[[Mapping[str, Any]], set[Key]]] = {INGRESS: ingress_secret_refs,
                                                                    GATEWAY: certificate_refs}
# The kinds that name ConfigMaps (proxy.kube.config_map_holding): a BackendTLSPolicy its CA bundles (ca_config_maps),
# and those naming ConfigMaps whose whole data the builder reads: an Ingress's annotations (custom-headers,
# auth-proxy-set-headers) and ingress-nginx's ConfigMap (its key proxy-set-headers).
_NAMED_CONFIG_MAPS: dict[str, Callable[[Mapping[str, Any]], set[Key]]] = {
    INGRESS: ingress_config_map_refs, CONTROLLER_CONFIG_MAP: controller_config_map_refs}


class ObjectCache:
    """Raw objects by kind and key, with the indices the builder reads, and change notification."""

    def __init__(self, *, kinds: Iterable[str] = KINDS, relevant_secrets: Iterable[Key] = (),
                 controller_config_map: Key | None = None) -> None:
        """`kinds`: the kinds that must be listed once before the cache counts as synced.
        `relevant_secrets`: Secrets that matter even when nothing names them (the default certificate).
        `controller_config_map`: the ConfigMap of --configmap (without one, that kind is never waited for).
        """
        self.controller_config_map = controller_config_map
        self.expected_kinds = frozenset(kinds) | ({CONTROLLER_CONFIG_MAP} if controller_config_map is not None
                                                  else frozenset())
        unknown = self.expected_kinds - set(STORED_KINDS)
        if unknown:
            raise ValueError(f"unknown kinds: {sorted(unknown)}")
        self._stores: dict[str, CowDict] = {kind: CowDict() for kind in STORED_KINDS}
        # (namespace, service) -> read-only {slice name: slice}; each group is replaced, never edited.
        self._slice_groups = CowDict()
        # Which ConfigMaps are named, and so what the cache keeps of each (see hold_named_config_maps).
        self._config_maps = ConfigMapHolding(self._stores[CONFIG_MAP], rewritten=self._config_map_rewritten,
                                             synced_once=lambda: self._synced_once)
        self.relevant_secrets = frozenset(relevant_secrets)
        # Which Secrets are named, and so which ones the cache holds the data of (see hold_named_secrets).
        self._secrets = SecretHolding(self._stores[SECRET], relevant=self.relevant_secrets,
                                      dropped=self._secret_dropped, synced_once=lambda: self._synced_once)
        self._synced_once = False
        self._synced_kinds: set[str] = set()
        self._subscribers: list[Subscriber] = []
        self._observers: list[Observer] = []
        self._snapshot: Snapshot | None = None

    # ------------------------------------------------------------------ reading

    @property
    def synced(self) -> bool:
        """True once every expected kind has had its first full list (and the Secrets those lists named
        have been read: see `hold_named_secrets`)."""
        if self._synced_once:
            return True
        if self._synced_kinds >= self.expected_kinds and not self._secrets.fetching and not self._config_maps.fetching:
            self._synced_once = True
        return self._synced_once

    def get(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        key: Hashable = name if kind in CLUSTER_SCOPED else (namespace, name)
        return self._stores[kind].data.get(key)

    def count(self, kind: str) -> int:
        return len(self._stores[kind].data)

    def unheld_secrets(self) -> frozenset[Key]:
        """Secrets known to exist whose data is not held (see `hold_named_secrets`)."""
        return frozenset(self._secrets.unheld)

    def snapshot(self) -> Snapshot:
        """A consistent, read-only view of the cache; O(1), later writes never show through."""
        if self._snapshot is None:
            stores = self._stores
            self._snapshot = Snapshot(
                ingresses=stores[INGRESS].freeze(),
                ingress_classes=stores[INGRESS_CLASS].freeze(),
                services=stores[SERVICE].freeze(),
                endpoint_slices=self._slice_groups.freeze(),
                endpoints=stores[ENDPOINTS].freeze(),
                secrets=stores[SECRET].freeze(),
                gateway_classes=stores[GATEWAY_CLASS].freeze(),
                gateways=stores[GATEWAY].freeze(),
                http_routes=stores[HTTP_ROUTE].freeze(),
                tls_routes=stores[TLS_ROUTE].freeze(),
                grpc_routes=stores[GRPC_ROUTE].freeze(),
                reference_grants=stores[REFERENCE_GRANT].freeze(),
                namespaces=stores[NAMESPACE].freeze(),
                backend_traffic_policies=stores[BACKEND_TRAFFIC_POLICY].freeze(),
                backend_tls_policies=stores[BACKEND_TLS_POLICY].freeze(),
                config_maps=stores[CONFIG_MAP].freeze(),
                controller_config_maps=stores[CONTROLLER_CONFIG_MAP].freeze(),
            )
        return self._snapshot

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(change)` after every write that changed something; returns an unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call `callback(operation)` after every write that changed the content or the synced kinds,
        in order; returns a function that stops it. Objects are handed over as stored: do not mutate them."""
        self._observers.append(callback)

        def stop() -> None:
            if callback in self._observers:
                self._observers.remove(callback)

        return stop

    def operations(self) -> list[Operation]:
        """The whole content as operations: replayed on an empty cache, they make an equal one."""
        ops: list[Operation] = [(REPLACE, kind, list(self._stores[kind].data.values()))
                                for kind in STORED_KINDS if self._stores[kind].data]
        ops.extend((SYNCED, kind, None) for kind in STORED_KINDS if kind in self._synced_kinds)
        return ops

    # ------------------------------------------------------------------ writing

    def perform(self, operation: Operation) -> None:
        """Replay one operation seen by an observer (or listed by `operations()`)."""
        name, kind, payload = operation
        if name == REPLACE:
            self.replace(kind, payload)
        elif name == APPLY:
            event_type, obj = payload
            self.apply(kind, event_type, obj)
        elif name == SYNCED:
            self.mark_synced(kind)
        else:
            raise ValueError(f"unknown cache operation {name!r}")

    def hold_named_secrets(self, fetch: Callable[[Key], None]) -> None:
        """From now on hold a Secret's data only while it matters: a TLS Secret, a Secret an Ingress or
        Gateway names (or `relevant_secrets`). Any other Secret is remembered by key alone, so a cluster's
        Helm release Secrets (megabytes each) are not kept. When something starts naming a Secret that
        is not held, `fetch(key)` is called (it must not block): the caller reads the Secret again and
        hands it to `fetched()`. Cluster mode's watch sets this; without it every Secret is held."""
        self._secrets.hold(fetch)

    def hold_named_config_maps(self, fetch: Callable[[Key], None]) -> None:
        """From now on keep a ConfigMap's data only while an Ingress names it (custom-headers,
        auth-proxy-set-headers); of the others only the CA bundle (`ca.crt`) BackendTLSPolicies read. When an
        Ingress starts naming a ConfigMap held without its data, `fetch(key)` is called (it must not block):
        the caller reads it again and hands it to `fetched_config_map()`. Cluster mode's watch sets this;
        without it (file mode, worker processes) every ConfigMap is kept as given."""
        self._config_maps.hold(fetch)
        self._snapshot = None

    def wants_config_map(self, key: Key) -> bool:
        """Whether something names this ConfigMap (a read asked by `fetch` is still worth doing)."""
        return self._config_maps.matters(key)

    def fetched_config_map(self, obj: KubeObject) -> None:
        """A ConfigMap read again for `fetch`: applied (whole, or its CA bundle) while something still names it."""
        found = _name(obj) if isinstance(obj, dict) else None
        if found is not None and self.wants_config_map(found) and found in self._stores[CONFIG_MAP].data:
            self.apply(CONFIG_MAP, MODIFIED, obj)
        if found is not None:
            self.config_map_fetch_ended(found)

    def config_map_fetch_ended(self, key: Key) -> None:
        """As `fetch_ended`, for a ConfigMap."""
        fetching = self._config_maps.fetching
        if key not in fetching:
            return
        was = self.synced
        fetching.discard(key)
        if not was and self.synced:
            self._notify(CacheChange(routes=True))

    def fetched(self, obj: KubeObject) -> None:
        """A Secret read again for `fetch`: applied while it is still not held (a watch event, or its
        deletion, since the read would be newer than this copy)."""
        found = _name(obj) if isinstance(obj, dict) else None
        if found is not None and found in self._secrets.unheld:
            self.apply(SECRET, MODIFIED, obj)
        if found is not None:
            self.fetch_ended(found)

    def fetch_ended(self, key: Key) -> None:
        """The read `fetch(key)` asked for is over (read, not found, given up): the first sync waits no more."""
        fetching = self._secrets.fetching
        if key not in fetching:
            return
        was = self.synced
        fetching.discard(key)
        if not was and self.synced:
            self._notify(CacheChange(routes=True))

    def mark_synced(self, kind: str) -> None:
        """Record that `kind` has been listed once; the cache becoming synced is a route change."""
        self._check_kind(kind)
        if kind in self._synced_kinds:
            return
        was = self.synced
        self._synced_kinds.add(kind)
        self._observed((SYNCED, kind, None))
        if not was and self.synced:
            self._notify(CacheChange(routes=True))

    def replace(self, kind: str, objects: Iterable[KubeObject]) -> None:
        """Make `objects` the whole content of `kind` (a LIST, a relist after 410, a file reload)."""
        self._check_kind(kind)
        store = self._stores[kind]
        new: dict[Hashable, Any] = {}
        for obj in objects:
            key = self._key(kind, obj)
            if key is None:
                continue
            new[key] = self._stripped(kind, key, obj)
        if kind == SECRET and self._secrets.holding:
            unheld = self._secrets.unheld = {key for key, obj in new.items()  # type: ignore[misc]
                                             if not self._secrets.holds(key, obj)}  # type: ignore[arg-type]
            for key in unheld:
                del new[key]
        old = store.data
        routes = False
        endpoints: set[Key] = set()
        changed_keys = [k for k in old.keys() | new.keys() if not _same_entry(old.get(k), new.get(k))]
        if not changed_keys:
            return
        if kind == ENDPOINT_SLICE:
            for key in changed_keys:
                endpoints |= self._move_slice(key, old.get(key), new.get(key))  # type: ignore[arg-type]
        elif kind == ENDPOINTS:
            endpoints.update(changed_keys)  # type: ignore[arg-type]
        elif kind == SECRET:
            routes = any(self._secrets.matters(key) for key in changed_keys)  # type: ignore[arg-type]
        elif kind == CONFIG_MAP:
            routes = any(self._config_maps.matters(key) for key in changed_keys)  # type: ignore[arg-type]
        else:
            routes = any(_routes_changed(kind, old.get(key), new.get(key)) for key in changed_keys)
        if kind in _SECRET_REFS or kind == BACKEND_TLS_POLICY:
            for key in changed_keys:
                self._count_refs(kind, old.get(key), -1)
                self._count_refs(kind, new.get(key), 1)
        named = _NAMED_CONFIG_MAPS.get(kind)
        if named is not None:
            for key in changed_keys:
                self._config_maps.count_named(old.get(key), -1, named)
                self._config_maps.count_named(new.get(key), 1, named)
        # Keep unchanged objects identical (same dict) to what snapshots already hold.
        for key, obj in new.items():
            kept = old.get(key)
            if kept is not None and same_content(kept, obj):
                new[key] = kept
        store.reset(new)
        self._observed((REPLACE, kind, list(new.values())))
        self._secrets.release()
        self._changed(CacheChange(routes=routes, endpoints=frozenset(endpoints)))

    def apply(self, kind: str, event_type: str, obj: KubeObject) -> None:
        """Apply one watch event (ADDED, MODIFIED or DELETED)."""
        self._check_kind(kind)
        key = self._key(kind, obj)
        if key is None:
            return
        store = self._stores[kind]
        old = store.data.get(key)
        if kind == SECRET and self._secrets.holding:
            secret_key: Key = key  # type: ignore[assignment]
            if event_type in (ADDED, MODIFIED) and not self._secrets.holds(secret_key, obj):
                self._secrets.unheld.add(secret_key)
                if old is None:
                    return
                event_type = DELETED  # no longer held: its data goes
            else:
                self._secrets.unheld.discard(secret_key)
        if event_type == DELETED:
            if old is None:
                return
            new = None
        elif event_type in (ADDED, MODIFIED):
            new = self._stripped(kind, key, obj)
            if old is not None and same_content(old, new):
                return
        else:
            raise ValueError(f"unknown event type {event_type!r}")

        data = store.writable()
        if new is None:
            del data[key]
        else:
            data[key] = new
        routes = False
        endpoints: frozenset[Key] = frozenset()
        if kind == ENDPOINT_SLICE:
            endpoints = frozenset(self._move_slice(key, old, new))  # type: ignore[arg-type]
        elif kind == ENDPOINTS:
            endpoints = frozenset((key,))  # type: ignore[arg-type]
        elif kind == SECRET:
            routes = self._secrets.matters(key)  # type: ignore[arg-type]
        elif kind == CONFIG_MAP:
            routes = self._config_maps.matters(key)  # type: ignore[arg-type]
        else:
            routes = _routes_changed(kind, old, new)
            if kind in _SECRET_REFS or kind == BACKEND_TLS_POLICY:
                self._count_refs(kind, old, -1)
                self._count_refs(kind, new, 1)
            named = _NAMED_CONFIG_MAPS.get(kind)
            if named is not None:
                self._config_maps.count_named(old, -1, named)
                self._config_maps.count_named(new, 1, named)
        self._observed((APPLY, kind, (event_type, _strip(obj, kind) if new is None else new)))
        self._secrets.release()
        self._changed(CacheChange(routes=routes, endpoints=endpoints))

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in STORED_KINDS:
            raise ValueError(f"unknown kind {kind!r}")

    def _key(self, kind: str, obj: KubeObject) -> Hashable | None:
        found = _name(obj) if isinstance(obj, dict) else None
        if found is None:
            log.warning("%s without metadata.name ignored", kind)
            return None
        if kind == CONTROLLER_CONFIG_MAP and found != self.controller_config_map:
            return None  # file mode offers every ConfigMap under this kind too: only ours is kept
        return found[1] if kind in CLUSTER_SCOPED else found

    def _move_slice(self, key: Key, old: KubeObject | None, new: KubeObject | None) -> set[Key]:
        """Update the per-service slice index for one slice; returns the services whose endpoints changed."""
        old_service = _slice_service(old)
        new_service = _slice_service(new)
        name = key[1]
        groups = self._slice_groups
        if old_service is not None and old_service != new_service:
            data = groups.writable()
            remaining = {k: v for k, v in data.get(old_service, {}).items() if k != name}
            if remaining:
                data[old_service] = MappingProxyType(remaining)
            else:
                data.pop(old_service, None)
        if new_service is not None and new is not None:
            data = groups.writable()
            group = dict(data.get(new_service, {}))
            group[name] = new
            data[new_service] = MappingProxyType(group)
        return {s for s in (old_service, new_service) if s is not None}

    def _count_refs(self, kind: str, obj: KubeObject | None, delta: int) -> None:
        """Count the Secrets (or, for a BackendTLSPolicy, the ConfigMaps) `obj` names."""
        if kind == BACKEND_TLS_POLICY:
            self._config_maps.count_bundles(obj, delta)
        else:
            self._secrets.count(obj, delta, _SECRET_REFS[kind])

    def _stripped(self, kind: str, key: Hashable, obj: KubeObject) -> KubeObject:
        """What the cache keeps of an object: a ConfigMap as ConfigMapHolding decides, any other stripped."""
        if kind != CONFIG_MAP:
            return _strip(obj, kind)
        stub = self._config_maps.kept(key, obj)  # type: ignore[arg-type]
        return _strip(obj) if stub is None else stub

    def _config_map_rewritten(self, stripped: KubeObject) -> None:
        """A held ConfigMap kept with less, now that less names it (ConfigMapHolding wrote it)."""
        self._observed((APPLY, CONFIG_MAP, (MODIFIED, stripped)))
        self._snapshot = None

    def _secret_dropped(self, obj: KubeObject) -> None:
        """A held Secret nothing names any more lost its data (SecretHolding dropped it)."""
        self._observed((APPLY, SECRET, (DELETED, obj)))
        self._snapshot = None

    def _observed(self, operation: Operation) -> None:
        for callback in list(self._observers):
            try:
                callback(operation)
            except Exception:  # like a subscriber: the source feeding the cache must go on
                log.exception("cache observer failed")

    def _changed(self, change: CacheChange) -> None:
        self._snapshot = None
        if change:
            self._notify(change)

    def _notify(self, change: CacheChange) -> None:
        for callback in list(self._subscribers):
            try:
                callback(change)
            except Exception:  # a broken subscriber must not stop the source feeding the cache
                log.exception("cache subscriber failed")


def _same_entry(a: KubeObject | None, b: KubeObject | None) -> bool:
    if a is None or b is None:
        return a is b
    return same_content(a, b)
