"""Gateway API status: publish the running configuration's `gateway_status` on GatewayClasses, Gateways
and HTTPRoutes.

The builder decides what every condition says (with observedGeneration); this writer adds what only
a clock and the API server know: `lastTransitionTime` (kept from the stored condition while its type
and status hold, now when either changes), a Gateway's `status.addresses` (the published address,
found as the Ingress status writer finds it), and the merge into an HTTPRoute's `status.parents`,
which every controller shares: only entries whose controllerName is ours are replaced or removed
(ours for parents we no longer serve go), other controllers' entries are kept as they are. With
--gateway, the other Gateways of our class are served by other processes of ours: only entries
naming the Gateways this process serves are its own.

Only the leader writes. A pass runs when the running configuration's status changes (after a short
quiet spell, so a burst of builds makes one pass), when an object changes beyond its status (one
deleted and created again at once has no status while the build stays the same), when this
replica becomes leader, and every `resync` seconds. An object is written only when what it shows
differs from what we would write (lastTransitionTime aside): the cached object decides without a
request; then the object is read
from its /status subresource and written back there with that resourceVersion. status.parents is
an atomic list (a merge patch would drop other controllers' entries), so a 409 (someone wrote in
between) means read, merge and write again, a few times, with backoff. Our own writes come back as
watch events that change status only: the cache rebuilds nothing for them and the next pass finds
nothing to write, so they cannot loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi

from proxy.kube.client import CLUSTER, ApiCall, Backoff, api_error, json_body, raw_response
from proxy.kube.status import Address, published_addresses
from proxy.objects import Key
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.kube.cache import CacheChange, ObjectCache
    from proxy.kube.leader import LeaderElector
    from proxy.runtime import RuntimeHolder

log = logging.getLogger("pyngress.gateway_status")

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
GATEWAY_CLASSES = "gatewayclasses"
GATEWAYS = "gateways"
HTTP_ROUTES = "httproutes"
TLS_ROUTES = "tlsroutes"
GRPC_ROUTES = "grpcroutes"
KIND_OF = {GATEWAY_CLASSES: "GatewayClass", GATEWAYS: "Gateway", HTTP_ROUTES: "HTTPRoute", TLS_ROUTES: "TLSRoute",
           GRPC_ROUTES: "GRPCRoute"}

API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("", "services", "get", CLUSTER),  # the --publish-service, for Gateway addresses
    *(ApiCall(GROUP, f"{plural}/status", verb, CLUSTER)
      for plural in (GATEWAY_CLASSES, GATEWAYS, HTTP_ROUTES, TLS_ROUTES, GRPC_ROUTES) for verb in ("get", "update")),
)

RESYNC = 60.0
# A pass waits for this much quiet after a new build, but never longer than COALESCE_LIMIT in all.
DEBOUNCE = 0.2
COALESCE_LIMIT = 2.0
REQUEST_TIMEOUT = 10.0
# Writes of one object that lost to a concurrent writer (409) before the pass gives up on it.
CONFLICT_ATTEMPTS = 5
CONFLICT_BACKOFF = Backoff(initial=0.05, maximum=1.0)
# The CRDs' maxItems: HTTPRoute status.parents, Gateway status.addresses.
MAX_PARENTS = 32
MAX_ADDRESSES = 16
PROGRAMMED = "Programmed"
# The Gateway CRD's rule for a Hostname address.
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_OWNED_GATEWAY_FIELDS = ("conditions", "listeners", "addresses")

Status = dict[str, Any]
Edit = Callable[[Any], "Status | None"]
_NOTHING = object()  # what the first pass has seen published
_WRITTEN, _CONFLICT, _GONE = "written", "conflict", "gone"  # outcomes of one PUT


class StatusDocument(Protocol):
    def to_json(self) -> Any: ...


class PublishedStatus(Protocol):
    """What this writer reads of the builder's GatewayApiStatus (proxy.routing.gateway.status)."""

    @property
    def classes(self) -> Mapping[str, StatusDocument]: ...
    @property
    def gateways(self) -> Mapping[Key, StatusDocument]: ...
    @property
    def routes(self) -> Mapping[Key, StatusDocument]: ...
    @property
    def tls_routes(self) -> Mapping[Key, StatusDocument]: ...
    @property
    def grpc_routes(self) -> Mapping[Key, StatusDocument]: ...


class StatusWriteError(Exception):
    """Some objects of a pass could not be written (the others were); the pass is retried."""


def rfc3339(moment: datetime | None = None) -> str:
    """A metav1.Time (what lastTransitionTime is): UTC, whole seconds."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(conditions: Iterable[Mapping[str, Any]], before: Any, now: str) -> list[dict[str, Any]]:
    """`conditions` with lastTransitionTime: the stored condition's while type and status hold, else `now`."""
    previous = {c.get("type"): c for c in before if isinstance(c, dict)} if isinstance(before, list) else {}
    stamped = []
    for cond in conditions:
        old = previous.get(cond["type"])
        kept = old.get("lastTransitionTime") if old is not None and old.get("status") == cond["status"] else None
        stamped.append({**cond, "lastTransitionTime": kept if isinstance(kept, str) and kept else now})
    return stamped


def comparable(value: Any) -> Any:
    """`value` in a form equal for equal status, lastTransitionTime left out (key order never matters)."""
    if isinstance(value, dict):
        return tuple(sorted((k, comparable(v)) for k, v in value.items() if k != "lastTransitionTime"))
    if isinstance(value, list):
        return tuple(comparable(item) for item in value)
    return value


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _changed(current: Status, new: Status) -> Status | None:
    return None if comparable(new) == comparable(current) else new


def class_status(current: Any, desired: Mapping[str, Any], now: str) -> Status | None:
    """A GatewayClass's new status, or None when it already shows `desired` (ClassStatus.to_json())."""
    current = _mapping(current)
    new = {**current, "conditions": stamp(desired["conditions"], current.get("conditions"), now),
           "supportedFeatures": list(desired["supportedFeatures"])}
    return _changed(current, new)


def is_programmed(desired: Mapping[str, Any]) -> bool:
    return any(c["type"] == PROGRAMMED and c["status"] == "True" for c in desired["conditions"])


def gateway_status(current: Any, desired: Mapping[str, Any], addresses: list[dict[str, str]] | None,
                   now: str) -> Status | None:
    """A Gateway's new status, or None when it already shows `desired` (GatewayStatus.to_json()).

    `addresses` (None: not known now, the stored ones stay) are listed while the Gateway is Programmed.
    Fields we do not write (attachedListenerSets) are kept.
    """
    current = _mapping(current)
    listeners_before = {entry.get("name"): entry for entry in current.get("listeners") or []
                        if isinstance(entry, dict)}
    new = {k: v for k, v in current.items() if k not in _OWNED_GATEWAY_FIELDS}
    if addresses is None:
        if "addresses" in current:
            new["addresses"] = current["addresses"]
    elif addresses and is_programmed(desired):
        new["addresses"] = addresses
    new["conditions"] = stamp(desired["conditions"], current.get("conditions"), now)
    new["listeners"] = [
        {**listener, "conditions": stamp(listener["conditions"],
                                         _mapping(listeners_before.get(listener["name"])).get("conditions"), now)}
        for listener in desired["listeners"]]
    return _changed(current, new)


ParentKey = tuple[str, str, str, str, str, Any]


def parent_key(ref: Any, namespace: str) -> ParentKey:
    """A parentRef with its defaults filled in (group, kind Gateway, the route's namespace), for matching."""
    ref = _mapping(ref)
    return (ref.get("group", GROUP), ref.get("kind") or "Gateway", ref.get("namespace") or namespace,
            ref.get("name") or "", ref.get("sectionName") or "", ref.get("port"))


def route_status(current: Any, desired: list[dict[str, Any]], *, namespace: str, controller: str,
                 owns: Callable[[ParentKey], bool], now: str) -> Status | None:
    """An HTTPRoute's new status, or None when status.parents already holds exactly `desired` as our entries.

    Our entries (controllerName ours, a parent `owns` accepts) are replaced by `desired`
    (RouteStatus.to_json(), maybe empty); every other entry is kept, in its place.
    """
    current = _mapping(current)
    parents = current.get("parents") if isinstance(current.get("parents"), list) else []

    def ours(entry: Any) -> bool:
        return (isinstance(entry, dict) and entry.get("controllerName") == controller
                and owns(parent_key(entry.get("parentRef"), namespace)))

    mine = [entry for entry in parents if ours(entry)]
    others = [entry for entry in parents if not ours(entry)]
    before = {parent_key(entry.get("parentRef"), namespace): entry for entry in mine}
    new_mine = [{**entry, "conditions": stamp(entry["conditions"],
                                              _mapping(before.get(parent_key(entry["parentRef"], namespace)))
                                              .get("conditions"), now)}
                for entry in desired]
    room = max(MAX_PARENTS - len(others), 0)
    if len(new_mine) > room:
        log.warning("HTTPRoute in %s: %d parent entries of ours do not fit beside %d of other controllers "
                    "(at most %d): the first %d are written", namespace, len(new_mine), len(others), MAX_PARENTS,
                    room)
        new_mine = new_mine[:room]
    if sorted(map(repr, map(comparable, mine))) == sorted(map(repr, map(comparable, new_mine))):
        return None
    return {**current, "parents": others + new_mine}


def gateway_addresses(found: Iterable[Address]) -> list[dict[str, str]]:
    """Ingress-style addresses ({"ip"} / {"hostname"}) as Gateway status addresses (IPAddress / Hostname);
    a hostname the CRD would refuse is left out (the write would fail whole)."""
    converted = []
    for entry in found:
        if entry.get("ip"):
            converted.append({"type": "IPAddress", "value": entry["ip"]})
        elif entry.get("hostname"):
            name = entry["hostname"].lower().rstrip(".")
            if len(name) <= 253 and _HOSTNAME.match(name):
                converted.append({"type": "Hostname", "value": name})
            else:
                log.warning("published address %r is not a hostname a Gateway status can list; left out",
                            entry["hostname"])
    return converted[:MAX_ADDRESSES]


def _served_version(obj: Any) -> str:
    """The version of a custom object as the API server handed it out ("v1" when it does not say)."""
    api_version = obj.get("apiVersion") if isinstance(obj, dict) else None
    if isinstance(api_version, str) and api_version.startswith(GROUP + "/"):
        return api_version[len(GROUP) + 1:]
    return VERSION


@dataclass(slots=True)
class _Target:
    """One object a pass may write: where it lives, what the cache shows, and how to change its status."""

    plural: str
    namespace: str
    name: str
    cached: Any
    edit: Edit
    # The API version written (a TLSRoute's is the one it is served at: v1, or v1alpha2 on older bundles).
    version: str = VERSION

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{KIND_OF[self.plural]} {where}"


class GatewayStatusWriter:
    """Keeps the status of our GatewayClasses, Gateways and HTTPRoute parent entries equal to the build's."""

    def __init__(self, cache: ObjectCache, settings: Settings, *, api_client: ApiClient, holder: RuntimeHolder,
                 elector: LeaderElector | None = None, resync: float = RESYNC, debounce: float = DEBOUNCE,
                 coalesce_limit: float = COALESCE_LIMIT,
                 backoff: Backoff = Backoff(initial=1.0, maximum=60.0),
                 conflict_backoff: Backoff = CONFLICT_BACKOFF) -> None:
        self.cache = cache
        self.settings = settings
        self.holder = holder
        self.elector = elector
        self.resync = resync
        self.debounce = debounce
        self.coalesce_limit = coalesce_limit
        self.backoff = backoff
        self.conflict_backoff = conflict_backoff
        self.custom = CustomObjectsApi(api_client)
        self.core = CoreV1Api(api_client)
        self.controller = settings.gateway_controller_name
        self._gateways = frozenset(settings.gateways)
        self.writes_total = 0
        self.errors_total = 0  # passes that failed (retried with backoff)
        self.conflicts_total = 0  # writes that lost to a concurrent writer and were merged again
        self.passes_total = 0  # passes that ran to the end while leader
        self._seen: object = _NOTHING  # the status the last pass published
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Something that may change status happened; run a pass soon."""
        self._wake.set()

    def _on_change(self, change: CacheChange) -> None:
        """An object changed beyond its status: it may need writing although the status to publish is the same
        (an HTTPRoute deleted and created again at once comes back without status). Our own writes change
        status only, so they never wake us."""
        if change.routes:
            self._wake.set()

    async def run(self) -> None:
        """Reconcile whenever the status to publish or the objects change (and every `resync` s) while leader;
        until cancelled."""
        unsubscribe = self.cache.subscribe(self._on_change)
        try:
            await self._run()
        finally:
            unsubscribe()

    async def _run(self) -> None:
        failures = 0
        delay = self.resync
        self._wake.set()
        await self.holder.wait_for(1, None)  # type: ignore[arg-type]  # nothing to publish before the first build
        while True:
            await self._sleep(delay)
            if not self._leading():
                delay = self.resync
                continue
            await self._coalesce()
            try:
                await self.reconcile()
            except Exception as err:  # noqa: BLE001  status is best effort; retry with backoff
                failures += 1
                self.errors_total += 1
                delay = self.backoff.delay(failures)
                # Logged once per outage; the retries say it again only at debug level.
                (log.warning if failures == 1 else log.debug)(
                    "Gateway API status not fully written (%s); retrying with backoff", err)
            else:
                if failures:
                    log.info("Gateway API status written again after %d failed pass(es)", failures)
                failures, delay = 0, self.resync

    async def reconcile(self) -> int:
        """One pass: write every object whose status differs; returns how many were written."""
        runtime = self.holder.current
        if not self._leading() or runtime is None or not self.cache.synced:
            return 0
        desired: PublishedStatus | None = runtime.config.gateway_status
        self._seen = desired
        errors: list[str] = []
        addresses: list[dict[str, str]] | None = None
        if desired is not None and desired.gateways:
            try:
                addresses = await self.addresses()
            except Exception as err:  # noqa: BLE001  conditions are still written; addresses stay as they are
                errors.append(f"published address: {err}")
        writes = 0
        for target in self._targets(desired, addresses, rfc3339()):
            try:
                writes += await self._write(target)
            except Exception as err:  # noqa: BLE001  one object's failure must not hold up the others
                errors.append(f"{target}: {err}")
        self.passes_total += 1
        if errors:
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise StatusWriteError("; ".join(errors[:3]) + more)
        return writes

    async def addresses(self) -> list[dict[str, str]]:
        """The Gateway status addresses: --publish-status-address, or the --publish-service's; none without either."""
        if not (self.settings.publish_status_address or self.settings.publish_service):
            return []
        return gateway_addresses(await published_addresses(self.core, self.settings))

    def owns(self, key: ParentKey) -> bool:
        """Whether a parent entry with our controllerName is this process's (with --gateway, others' are siblings')."""
        return not self._gateways or f"{key[2]}/{key[3]}" in self._gateways

    def _targets(self, desired: PublishedStatus | None, addresses: list[dict[str, str]] | None,
                 now: str) -> list[_Target]:
        snapshot = self.cache.snapshot()
        targets = []
        if desired is not None:
            for name, found in desired.classes.items():
                if name in snapshot.gateway_classes:
                    targets.append(_Target(GATEWAY_CLASSES, "", name, snapshot.gateway_classes[name],
                                           partial(class_status, desired=found.to_json(), now=now)))
            for key, found in desired.gateways.items():
                if key in snapshot.gateways:
                    targets.append(_Target(GATEWAYS, key[0], key[1], snapshot.gateways[key],
                                           partial(gateway_status, desired=found.to_json(), addresses=addresses,
                                                   now=now)))
        routes = desired.routes if desired is not None else {}
        for key, obj in snapshot.http_routes.items():
            entry = routes.get(key)
            targets.append(_Target(HTTP_ROUTES, key[0], key[1], obj,
                                   partial(route_status, desired=entry.to_json() if entry is not None else [],
                                           namespace=key[0], controller=self.controller, owns=self.owns, now=now)))
        tls_routes = desired.tls_routes if desired is not None else {}
        for key, obj in snapshot.tls_routes.items():
            entry = tls_routes.get(key)
            targets.append(_Target(TLS_ROUTES, key[0], key[1], obj,
                                   partial(route_status, desired=entry.to_json() if entry is not None else [],
                                           namespace=key[0], controller=self.controller, owns=self.owns, now=now),
                                   _served_version(obj)))
        grpc_routes = desired.grpc_routes if desired is not None else {}
        for key, obj in snapshot.grpc_routes.items():
            entry = grpc_routes.get(key)
            targets.append(_Target(GRPC_ROUTES, key[0], key[1], obj,
                                   partial(route_status, desired=entry.to_json() if entry is not None else [],
                                           namespace=key[0], controller=self.controller, owns=self.owns, now=now)))
        return targets

    async def _write(self, target: _Target) -> bool:
        """Read, merge and write one object's status (again after a 409); False when nothing needed writing."""
        if target.edit(_mapping(target.cached).get("status")) is None:
            return False  # the cache already shows it: no request at all
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            if not self._leading():
                return False
            current = await self._read(target)
            if current is None:
                return False  # deleted meanwhile
            status = target.edit(current.get("status"))
            if status is None:
                return False
            outcome = await self._replace(target, {**current, "status": status})
            if outcome == _GONE:
                return False
            if outcome == _WRITTEN:
                self.writes_total += 1
                log.info("%s: status written", target)
                return True
            self.conflicts_total += 1
            await asyncio.sleep(self.conflict_backoff.delay(attempt))
        raise StatusWriteError(f"still conflicting after {CONFLICT_ATTEMPTS} attempts")

    async def _read(self, target: _Target) -> dict[str, Any] | None:
        if target.namespace:
            call = self.custom.get_namespaced_custom_object_status(
                GROUP, target.version, target.namespace, target.plural, target.name, _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT)
        else:
            call = self.custom.get_cluster_custom_object_status(
                GROUP, VERSION, target.plural, target.name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        status, body = await _answer(await call)
        if status == 404:
            return None
        if status != 200:
            raise api_error(status, body)
        found = json.loads(body)
        if not isinstance(found, dict):
            raise api_error(status, b"not an object")
        return found

    async def _replace(self, target: _Target, body: dict[str, Any]) -> str:
        """PUT the object to /status with the resourceVersion it was read at: written, conflict (409) or gone."""
        if target.namespace:
            call = self.custom.replace_namespaced_custom_object_status(
                GROUP, target.version, target.namespace, target.plural, target.name, json_body(body),
                _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        else:
            call = self.custom.replace_cluster_custom_object_status(
                GROUP, VERSION, target.plural, target.name, json_body(body), _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT)
        status, data = await _answer(await call)
        if status == 409:
            return _CONFLICT
        if status == 404:
            return _GONE
        if status != 200:
            raise api_error(status, data)
        return _WRITTEN

    def _leading(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def _desired(self) -> object:
        runtime = self.holder.current
        return runtime.config.gateway_status if runtime is not None else None

    async def _status_changed(self) -> None:
        """Until the running status differs from what the last pass published (maybe already: a build
        can go live while a pass is writing)."""
        while True:
            desired = self._desired()
            if desired is not self._seen and desired != self._seen:
                return
            await self.holder.wait_for(self.holder.generation + 1, None)  # type: ignore[arg-type]

    async def _sleep(self, delay: float) -> None:
        """Until woken, the status to publish changes, this replica becomes leader, or `delay` seconds."""
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait()),
                                              asyncio.ensure_future(self._status_changed())]
        if self.elector is not None and not self.elector.is_leader:
            waiters.append(asyncio.ensure_future(self.elector.wait_leading()))
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._wake.clear()

    async def _coalesce(self) -> None:
        """Let a burst of builds finish: wait for `debounce` s without a new one (at most `coalesce_limit` s)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.coalesce_limit
        while (left := end - loop.time()) > 0:
            try:
                await self.holder.wait_for(self.holder.generation + 1, min(self.debounce, left))
            except TimeoutError:
                return


async def _answer(response: object) -> tuple[int, bytes]:
    raw = raw_response(response)
    try:
        return raw.status, await raw.read()
    finally:
        raw.release()
