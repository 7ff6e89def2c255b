"""Ingress status: write our address into status.loadBalancer.ingress of the Ingresses we serve.

Only the leader writes (two replicas would otherwise fight over every Ingress). The address comes
from `--publish-status-address`, or from the `--publish-service` Service: its load balancer
ingress when it is a LoadBalancer, its externalIPs when set, else its cluster IPs (NodePort,
ClusterIP) or its externalName. The Ingresses we serve are those with a route in the running
configuration; an Ingress we no longer serve that still carries our address is cleared.

A pass runs when the cache reports a routing change (after the following build had a moment
to land), when this replica becomes leader, and every `resync` seconds. Status is written with
a merge patch on the /status subresource: no resourceVersion, so no conflicts with spec edits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api, NetworkingV1Api

from proxy.kube.client import CLUSTER, ApiCall, Backoff, api_error, raw_response
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.kube.cache import CacheChange, ObjectCache
    from proxy.kube.leader import LeaderElector
    from proxy.runtime import RuntimeHolder

log = logging.getLogger("pyngress.status")

API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("", "services", "get", CLUSTER),  # the --publish-service
    ApiCall("networking.k8s.io", "ingresses/status", "patch", CLUSTER),
)

RESYNC = 60.0
# After a routing change, how long to wait for the build it causes before writing anyway.
SETTLE = 1.0
REQUEST_TIMEOUT = 10.0

Address = dict[str, str]  # {"ip": ...} or {"hostname": ...}
Key = tuple[str, str]


def address_entry(value: str) -> Address:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return {"hostname": value}
    return {"ip": value}


def service_addresses(service: dict[str, Any]) -> list[Address]:
    """What a published Service is reachable at, in the order an Ingress status lists it."""
    spec = service.get("spec") or {}
    if spec.get("externalIPs"):
        return [address_entry(ip) for ip in spec["externalIPs"]]
    kind = spec.get("type") or "ClusterIP"
    if kind == "LoadBalancer":
        found = []
        for entry in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if entry.get("ip"):
                found.append({"ip": entry["ip"]})
            elif entry.get("hostname"):
                found.append({"hostname": entry["hostname"]})
        return found
    if kind == "ExternalName":
        return [{"hostname": spec["externalName"]}] if spec.get("externalName") else []
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [address_entry(ip) for ip in ips if ip and ip != "None"]


def _canonical(entries: Iterable[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Comparable form of a status address list (order and extra fields such as ports ignored)."""
    out = set()
    for entry in entries or ():
        if isinstance(entry, dict):
            if entry.get("ip"):
                out.add(("ip", str(entry["ip"])))
            elif entry.get("hostname"):
                out.add(("hostname", str(entry["hostname"])))
    return tuple(sorted(out))


def current_addresses(ingress: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return _canonical(((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


async def published_addresses(core: CoreV1Api, settings: Settings) -> list[Address]:
    """Where clients reach us (--publish-status-address, else the --publish-service Service), IPs first,
    sorted so equal sets compare equal; shared by the Ingress and Gateway status writers."""
    if settings.publish_status_address:
        found = [address_entry(a) for a in settings.publish_status_address]
    else:
        namespace, _, name = settings.publish_service.partition("/")
        if not name:
            namespace, name = settings.pod_namespace, namespace
        response = raw_response(await core.read_namespaced_service(
            name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        try:
            body = await response.read()
            if response.status != 200:
                raise api_error(response.status, body)
        finally:
            response.release()
        found = service_addresses(json.loads(body))
    return sorted(found, key=lambda a: (0, a["ip"]) if "ip" in a else (1, a["hostname"]))


def served_ingresses(holder: RuntimeHolder) -> set[Key]:
    """(namespace, name) of every Ingress with a route in the running configuration."""
    runtime = holder.current
    if runtime is None:
        return set()
    return {(route.namespace, route.ingress) for route in runtime.config.table.routes()}


class StatusWriter:
    """Keeps status.loadBalancer.ingress of served Ingresses equal to our published address."""

    def __init__(self, cache: ObjectCache, settings: Settings, *, api_client: ApiClient, holder: RuntimeHolder,
                 elector: LeaderElector | None = None, resync: float = RESYNC, settle: float = SETTLE,
                 backoff: Backoff = Backoff(initial=1.0, maximum=60.0)) -> None:
        self.cache = cache
        self.settings = settings
        self.holder = holder
        self.elector = elector
        self.resync = resync
        self.settle = settle
        self.backoff = backoff
        self.core = CoreV1Api(api_client)
        self.networking = NetworkingV1Api(api_client)
        self.writes_total = 0
        self.errors_total = 0
        # What we wrote last, per Ingress, so a later address change still lets us clear the old one.
        self._written: dict[Key, tuple[tuple[str, str], ...]] = {}
        self._wake = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.publish_status_address or self.settings.publish_service)

    def notify(self) -> None:
        """Something that may change status happened; run a pass soon."""
        self._wake.set()

    def _on_change(self, change: CacheChange) -> None:
        if change.routes:
            self._wake.set()

    async def run(self) -> None:
        """Reconcile whenever woken (and every `resync` s) while leader; until cancelled."""
        if not self.enabled:
            log.info("no --publish-service or --publish-status-address: Ingress status is not written")
            return
        unsubscribe = self.cache.subscribe(self._on_change)
        failures = 0
        delay = self.resync
        self._wake.set()
        try:
            await self.holder.wait_for(1, None)  # type: ignore[arg-type]  # nothing is served before the first build
            while True:
                await self._sleep(delay)
                if not self._leading():
                    delay = self.resync
                    continue
                await self._settle()
                try:
                    await self.reconcile()
                    failures, delay = 0, self.resync
                except Exception as err:  # noqa: BLE001  status is best effort; retry with backoff
                    failures += 1
                    self.errors_total += 1
                    delay = self.backoff.delay(failures)
                    log.warning("ingress status not updated (%s); retrying in %.1fs", err, delay)
        finally:
            unsubscribe()

    async def reconcile(self) -> int:
        """One pass: write what differs; returns the number of Ingresses written."""
        if not self._leading() or self.holder.current is None or not self.cache.synced:
            return 0
        desired = await self.addresses()
        if not desired:
            log.debug("published address not known yet; Ingress status left as is")
            return 0
        ours = _canonical(desired)
        served = served_ingresses(self.holder)
        writes = 0
        for key, ingress in list(self.cache.snapshot().ingresses.items()):
            current = current_addresses(ingress)
            if key in served:
                if current != ours:
                    await self._write(key, desired)
                    self._written[key] = ours
                    writes += 1
            elif current and current in (ours, self._written.get(key)):
                await self._write(key, None)
                self._written.pop(key, None)
                writes += 1
        for key in [k for k in self._written if k not in self.cache.snapshot().ingresses]:
            del self._written[key]
        return writes

    async def addresses(self) -> list[Address]:
        """The addresses to publish, sorted so equal sets compare (and render) equal."""
        return await published_addresses(self.core, self.settings)

    async def _write(self, key: Key, addresses: list[Address] | None) -> None:
        namespace, name = key
        body = {"status": {"loadBalancer": {"ingress": addresses}}}
        response = raw_response(await self.networking.patch_namespaced_ingress_status(
            name, namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        try:
            data = await response.read()
            status = response.status
        finally:
            response.release()
        if status == 404:
            return  # deleted meanwhile: nothing to do
        if status != 200:
            raise api_error(status, data)
        self.writes_total += 1
        what = ", ".join(a.get("ip") or a.get("hostname", "") for a in addresses) if addresses else "nothing"
        log.info("ingress %s/%s status: %s", namespace, name, what)

    def _leading(self) -> bool:
        return self.elector is None or self.elector.is_leader

    async def _sleep(self, delay: float) -> None:
        """Until woken, until this replica becomes leader, or `delay` seconds."""
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        if self.elector is not None and not self.elector.is_leader:
            waiters.append(asyncio.ensure_future(self.elector.wait_leading()))
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._wake.clear()

    async def _settle(self) -> None:
        """Give the build that follows a routing change a moment to go live (an equal build never does)."""
        try:
            await self.holder.wait_for(self.holder.generation + 1, self.settle)
        except TimeoutError:
            pass

