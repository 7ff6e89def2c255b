"""The emulator's object store: objects, one global resourceVersion, and the change log watches replay.

Every write bumps the global version (as etcd's revision does), stamps it on the object, and
appends a `Change` to the log; `compact(rv)` forgets the log up to `rv`, after which a watch from an
older version is answered with 410 Expired.

Resources defined by CRDs exist only while installed (`install`, `uninstall`): before, every
request for them is a 404, as on a real API server; uninstalling deletes their objects first.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .crd_schema import load_crd, schema_of, validate
from .errors import ApiError, conflict, not_found
from .gateway_schema import default_status, validate_status
from .resources import Resource

Obj = dict[str, Any]
Key = tuple[str, str]

MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"
# metav1.MicroTime as the API server accepts it: exactly six fractional digits and a zone.
_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True, slots=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: Resource
    obj: Obj  # the object after the change (for DELETED: the last state, stamped with the deletion's version)
    old: Obj | None  # the object before the change (None for ADDED)


@dataclass(eq=False)
class Subscription:
    """One open watch: the store pushes every change of `resource` into `queue`."""

    resource: Resource
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    version: str = ""  # the API version the watch asked for (a CRD can stop serving it)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge patches are treated the same way here)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without(obj: Obj, *keys: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in keys}


class Store:
    """Objects by resource and (namespace, name), with a change log and live subscriptions."""

    def __init__(self) -> None:
        self.rv = 0
        # Versions at or below this are compacted: a watch from older versions gets 410.
        self.floor = 0
        self.allow_loopback = False
        self._objects: dict[Resource, dict[Key, Obj]] = {}
        self._log: list[Change] = []
        self._subscriptions: set[Subscription] = set()
        # Installed CRD resources -> the versions served.
        self.crd_versions: dict[Resource, tuple[str, ...]] = {}

    # ---- CRDs
    def served_versions(self, resource: Resource) -> tuple[str, ...]:
        """The versions `resource` is served at now (none: a CRD that is not installed)."""
        return self.crd_versions.get(resource, ()) if resource.crd else resource.all_versions

    def install(self, resource: Resource, versions: tuple[str, ...]) -> None:
        """Install (or update) the CRD of `resource`, serving `versions`."""
        unknown = set(versions) - set(resource.all_versions)
        if not resource.crd or not versions or unknown:
            raise ValueError(f"cannot serve {resource} at {versions}")
        self.crd_versions[resource] = tuple(v for v in resource.all_versions if v in versions)

    def uninstall(self, resource: Resource) -> None:
        """Delete the CRD of `resource`: its objects are deleted first (DELETED events), as the API
        server's CRD finalizer does, then it is no longer served."""
        for namespace, name in sorted(self._objects.get(resource, {})):
            self.delete(resource, namespace, name)
        self.crd_versions.pop(resource, None)

    def _check_served(self, resource: Resource) -> None:
        if resource.crd and resource not in self.crd_versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # ---- reads
    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        self._check_served(resource)
        obj = self._objects.get(resource, {}).get((namespace, name))
        if obj is None:
            raise not_found(str(resource), name)
        return copy.deepcopy(obj)

    def list(self, resource: Resource, namespace: str | None, matches: Callable[[Obj], bool]) -> tuple[list[Obj], int]:
        items, rv = self.list_shared(resource, namespace, matches)
        return [copy.deepcopy(obj) for obj in items], rv

    def list_shared(self, resource: Resource, namespace: str | None,
                    matches: Callable[[Obj], bool]) -> tuple[list[Obj], int]:
        """Like `list`, but the stored objects themselves: only for serialising at once, never to change.
        (Copying thousands of objects made a LIST of 5,000 slices cost the emulator a quarter second.)"""
        self._check_served(resource)
        items = [obj for (ns, _), obj in sorted(self._objects.get(resource, {}).items())
                 if (namespace is None or ns == namespace) and matches(obj)]
        return items, self.rv

    def list_at(self, resource: Resource, namespace: str | None, matches: Callable[[Obj], bool],
                rv: int) -> list[tuple[Key, Obj]]:
        """The (key, stored object) pairs as they were at version `rv`, sorted by key, the way etcd's
        MVCC serves every page of a paginated LIST from the first page's revision. Rebuilt by undoing
        the change log after `rv`; raises 410 Expired once that part of the log is compacted.
        Like `list_shared`, the objects are the stored ones: serialise them, never change them."""
        self._check_served(resource)
        if rv < self.floor:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.floor})")
        objects = dict(self._objects.get(resource, {}))
        for change in reversed(self._log):
            if change.rv <= rv:
                break
            if change.resource != resource:
                continue
            meta = change.obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            if change.old is None:
                objects.pop(key, None)  # created after rv
            else:
                objects[key] = change.old  # modified or deleted after rv: its state before
        return [(key, obj) for key, obj in sorted(objects.items())
                if (namespace is None or key[0] == namespace) and matches(obj)]

    def changes_since(self, resource: Resource, rv: int) -> Iterator[Change]:
        if rv < self.floor:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.floor})")
        return (c for c in list(self._log) if c.rv > rv and c.resource == resource)

    def compact(self, rv: int | None = None) -> None:
        """Forget changes up to `rv` (default: now), as etcd compaction or an API server restart does."""
        self.floor = self.rv if rv is None else rv
        self._log = [c for c in self._log if c.rv > self.floor]

    # ---- subscriptions
    def subscribe(self, resource: Resource, version: str = "") -> Subscription:
        sub = Subscription(resource, version=version)
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions)

    # ---- writes
    def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        self._check_served(resource)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        self._check_namespace(resource, namespace, meta)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{resource} is invalid: metadata.name: Required value: "
                                           "name or generateName is required")
        objects = self._objects.setdefault(resource, {})
        if (namespace, name) in objects:
            raise ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists',
                           details={"name": name, "kind": str(resource)})
        if meta.get("resourceVersion"):
            raise ApiError(400, "BadRequest", "resourceVersion should not be set on objects to be created")
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        if resource.namespaced:
            meta["namespace"] = namespace
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        if resource.status:
            obj.pop("status", None)  # as the API server's PrepareForCreate does
        self._default(resource, obj, creating=True)
        self._validate(resource, obj)
        return self._commit(resource, "ADDED", obj, None)

    def replace(self, resource: Resource, namespace: str, name: str, obj: Obj, *, subresource: str = "") -> Obj:
        current = self._current(resource, namespace, name)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        self._check_namespace(resource, namespace, meta)
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        expected = meta.get("resourceVersion")
        if expected and expected != current["metadata"]["resourceVersion"]:
            raise conflict(str(resource), name, MODIFIED)
        return self._update(resource, current, obj, subresource=subresource)

    def patch(self, resource: Resource, namespace: str, name: str, patch: Any, *, subresource: str = "") -> Obj:
        current = self._current(resource, namespace, name)
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "only merge patches are supported by the emulator")
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected and expected != current["metadata"]["resourceVersion"]:
            raise conflict(str(resource), name, MODIFIED)
        return self._update(resource, current, merge_patch(current, patch), subresource=subresource)

    def delete(self, resource: Resource, namespace: str, name: str) -> Obj:
        current = self._current(resource, namespace, name)
        obj = copy.deepcopy(current)
        del self._objects[resource][(namespace, name)]
        return self._commit(resource, "DELETED", obj, current, store=False)

    # ---- internals
    def _current(self, resource: Resource, namespace: str, name: str) -> Obj:
        self._check_served(resource)
        current = self._objects.get(resource, {}).get((namespace, name))
        if current is None:
            raise not_found(str(resource), name)
        return current

    def _check_namespace(self, resource: Resource, namespace: str, meta: Obj) -> None:
        given = meta.get("namespace")
        if resource.namespaced and given and given != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match "
                                              "the namespace sent on the request")

    def _update(self, resource: Resource, current: Obj, obj: Obj, *, subresource: str) -> Obj:
        if subresource == "status":
            # /status changes status only; everything else is kept as stored.
            new = copy.deepcopy(current)
            if "status" in obj:
                new["status"] = copy.deepcopy(obj["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(obj)
            if resource.status:
                new.pop("status", None)
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
            meta = new.setdefault("metadata", {})
            for kept in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                if kept in current["metadata"]:
                    meta[kept] = current["metadata"][kept]
            ignored = ("metadata", "status", "kind", "apiVersion")
            if _without(new, *ignored) != _without(current, *ignored):
                meta["generation"] = current["metadata"].get("generation", 1) + 1
        new["kind"], new["apiVersion"] = resource.kind, resource.api_version
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        self._default(resource, new, creating=False)
        if new == current:
            return copy.deepcopy(current)  # a no-op write is not stored and makes no event
        self._validate(resource, new)
        return self._commit(resource, "MODIFIED", new, current)

    def _commit(self, resource: Resource, type_: str, obj: Obj, old: Obj | None, *, store: bool = True) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        if store:
            self._objects.setdefault(resource, {})[(meta.get("namespace", ""), meta["name"])] = obj
        change = Change(self.rv, type_, resource, copy.deepcopy(obj), copy.deepcopy(old) if old else None)
        self._log.append(change)
        for sub in self._subscriptions:
            if sub.resource == resource:
                sub.queue.put_nowait(change)
        return copy.deepcopy(obj)

    @staticmethod
    def _default(resource: Resource, obj: Obj, *, creating: bool) -> None:
        """What the API server's strategies fill in: a Namespace's name label (reset on every write:
        it is immutable), and on creation its Active phase and the kubernetes finalizer; a CRD's
        status defaults (a new Gateway's "Waiting for controller" conditions)."""
        if resource.crd:
            default_status(resource.kind, obj)
        if resource.kind != "Namespace":
            return
        meta = obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: meta["name"]}
        if creating:
            spec = obj.setdefault("spec", {})
            spec.setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}

    def _validate(self, resource: Resource, obj: Obj) -> None:
        if resource.kind == "BackendTrafficPolicy":
            validate(schema_of(load_crd("backendtrafficpolicies.yaml"), resource.version), obj, kind=resource.kind,
                     group=resource.group)
        elif resource.crd and resource.status:
            validate_status(resource.kind, resource.group, obj)
        if resource.kind == "EndpointSlice" and not self.allow_loopback:
            for i, endpoint in enumerate(obj.get("endpoints") or []):
                for address in endpoint.get("addresses") or []:
                    self._reject_loopback(resource, obj, address, f"endpoints[{i}].addresses")
        if resource.kind == "Endpoints" and not self.allow_loopback:
            for i, subset in enumerate(obj.get("subsets") or []):
                for list_name in ("addresses", "notReadyAddresses"):
                    for address in subset.get(list_name) or []:
                        self._reject_loopback(resource, obj, address.get("ip", ""), f"subsets[{i}].{list_name}")
        if resource.kind == "Lease":
            for time_field in ("acquireTime", "renewTime"):
                value = (obj.get("spec") or {}).get(time_field)
                if value is not None and not _MICRO_TIME.match(str(value)):
                    raise ApiError(400, "BadRequest", f'Lease in version "v1" cannot be handled as a Lease: '
                                                      f'spec.{time_field}: parsing time {value!r}: bad MicroTime')

    def _reject_loopback(self, resource: Resource, obj: Obj, address: str, where: str) -> None:
        try:
            loopback = ipaddress.ip_address(address).is_loopback
        except ValueError:
            return
        if loopback:
            name = obj["metadata"]["name"]
            raise ApiError(422, "Invalid", f'{resource.kind} "{name}" is invalid: {where}: Invalid value: '
                                           f'"{address}": may not be in the loopback range (127.0.0.0/8, ::1/128)')
