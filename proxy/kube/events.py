"""Kubernetes Events (type Warning) for what the builder warns about, so `kubectl describe ingress` shows it.

Events go on the Ingress a warning concerns: a warning about a Service, EndpointSlice, Endpoints
or Secret is put on every Ingress in the cache that uses that object (and on the object itself
when none does). Events are a courtesy, never a dependency:

- deduplicated: a warning already reported is not reported again for `repeat_after` seconds
  (the builder repeats every warning on every build); a repeat bumps the existing Event's count;
- rate-limited: a token bucket across all Events, and a bounded queue that drops when full;
- leader-only when an elector is given (replicas build the same warnings);
- never fatal: API errors are counted and logged, the warning stays in the log either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from proxy.kube.client import CLUSTER, ApiCall, json_body, raw_response
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.kube.cache import ObjectCache
    from proxy.kube.leader import LeaderElector
    from proxy.objects import Warning

log = logging.getLogger("pyngress.events")

API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("", "events", "create", CLUSTER),
    ApiCall("", "events", "patch", CLUSTER),
)

REASON = "ConfigurationWarning"
COMPONENT = "pyngress"
# The builder repeats its warnings on every build; one Event (or count bump) per warning per 10 minutes.
REPEAT_AFTER = 600.0
# client-go's event spam filter allows a burst of 25; we refill one token a second across all objects.
BURST = 25
RATE = 1.0
QUEUE_SIZE = 500
REQUEST_TIMEOUT = 10.0
MAX_MESSAGE = 1024
# Events about cluster-scoped objects live in "default", as kubectl looks for them there.
CLUSTER_EVENT_NAMESPACE = "default"
# How many (object, message) pairs we remember Event names and report times for.
MEMORY = 4096

API_VERSIONS = {
    "Ingress": "networking.k8s.io/v1",
    "IngressClass": "networking.k8s.io/v1",
    "Service": "v1",
    "Endpoints": "v1",
    "Secret": "v1",
    "EndpointSlice": "discovery.k8s.io/v1",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One Event to post: the object it is about and the message."""

    kind: str
    namespace: str
    name: str
    message: str


@dataclass(slots=True)
class _Posted:
    event_name: str
    event_namespace: str
    count: int
    reported_at: float  # monotonic


class TokenBucket:
    """`burst` tokens, refilled at `rate` per second; `take()` waits for one."""

    def __init__(self, burst: int, rate: float) -> None:
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.rate = rate
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now

    async def take(self) -> None:
        while True:
            self._refill()
            if self.tokens >= 1:
                self.tokens -= 1
                return
            if self.rate <= 0:
                await asyncio.Event().wait()  # never refills: wait until cancelled
            await asyncio.sleep((1 - self.tokens) / self.rate)


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _backend_services(ingress: dict[str, Any]) -> set[str]:
    spec = ingress.get("spec") or {}
    backends = [spec.get("defaultBackend")]
    for rule in spec.get("rules") or []:
        for path in ((rule or {}).get("http") or {}).get("paths") or []:
            backends.append((path or {}).get("backend"))
    return {b["service"]["name"] for b in backends
            if isinstance(b, dict) and isinstance(b.get("service"), dict) and b["service"].get("name")}


def _tls_secrets(ingress: dict[str, Any]) -> set[str]:
    return {t["secretName"] for t in (ingress.get("spec") or {}).get("tls") or []
            if isinstance(t, dict) and t.get("secretName")}


class EventRecorder:
    """Turns builder warnings into rate-limited Warning Events; `run()` posts them until cancelled."""

    def __init__(self, api_client: ApiClient, settings: Settings, *, cache: ObjectCache | None = None,
                 elector: LeaderElector | None = None, warnings: Callable[[], Iterable[Warning]] | None = None,
                 repeat_after: float = REPEAT_AFTER, burst: int = BURST, rate: float = RATE,
                 queue_size: int = QUEUE_SIZE, settle: float = 1.0, resync: float = 300.0) -> None:
        """`warnings`: where to read the latest build's warnings (e.g. `lambda: controller.warnings`);
        with it and a cache, `run()` records them after every build (looked at every `settle` s),
        when this replica becomes leader, and every `resync` s."""
        self.core = CoreV1Api(api_client)
        self.settings = settings
        self.cache = cache
        self.elector = elector
        self.warnings = warnings
        self.repeat_after = repeat_after
        self.settle = settle
        self.resync = resync
        self.bucket = TokenBucket(burst, rate)
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize=queue_size)
        self.instance = settings.pod_name or socket.gethostname()
        self.posted_total = 0
        self.errors_total = 0
        self.dropped_total = 0
        self._posted: OrderedDict[Notice, _Posted] = OrderedDict()
        self._queued: set[Notice] = set()

    @property
    def pending(self) -> int:
        return self.queue.qsize()

    def record(self, warnings: Iterable[Warning]) -> int:
        """Queue Events for warnings not reported within `repeat_after`; returns how many were queued."""
        if self.elector is not None and not self.elector.is_leader:
            return 0
        now = time.monotonic()
        queued = 0
        for warning in warnings:
            for notice in self.notices(warning):
                posted = self._posted.get(notice)
                if notice in self._queued or (posted and now - posted.reported_at < self.repeat_after):
                    continue
                try:
                    self.queue.put_nowait(notice)
                except asyncio.QueueFull:
                    self.dropped_total += 1
                    log.debug("event queue full; dropped: %s", notice)
                    continue
                self._queued.add(notice)
                queued += 1
        return queued

    def notices(self, warning: Warning) -> list[Notice]:
        """The Events one warning becomes: on the Ingresses using the object, else on the object."""
        if warning.kind == "Ingress" or self.cache is None:
            return [Notice(warning.kind, warning.namespace, warning.name, warning.message)]
        users = self._ingresses_using(warning)
        if not users:
            return [Notice(warning.kind, warning.namespace, warning.name, warning.message)]
        where = f"{warning.namespace}/{warning.name}" if warning.namespace else warning.name
        message = f"{warning.kind} {where}: {warning.message}"
        return [Notice("Ingress", namespace, name, message) for namespace, name in sorted(users)]

    def _ingresses_using(self, warning: Warning) -> set[tuple[str, str]]:
        assert self.cache is not None
        ingresses = self.cache.snapshot().ingresses
        service = None
        if warning.kind in ("Service", "Endpoints"):
            service = warning.name
        elif warning.kind == "EndpointSlice":
            found = self.cache.get("EndpointSlice", warning.namespace, warning.name)
            service = ((found or {}).get("metadata", {}).get("labels") or {}).get("kubernetes.io/service-name")
        if service is not None:
            return {key for key, ing in ingresses.items()
                    if key[0] == warning.namespace and service in _backend_services(ing)}
        if warning.kind == "Secret":
            return {key for key, ing in ingresses.items()
                    if key[0] == warning.namespace and warning.name in _tls_secrets(ing)}
        return set()

    async def run(self) -> None:
        """Post queued Events until cancelled; with `warnings` and a cache, also collect them."""
        collector = None
        if self.warnings is not None and self.cache is not None:
            collector = asyncio.create_task(self._collect(), name="events-collect")
        try:
            while True:
                notice = await self.queue.get()
                self._queued.discard(notice)
                if self.elector is not None and not self.elector.is_leader:
                    continue
                await self.bucket.take()
                await self._post(notice)
        finally:
            if collector is not None:
                collector.cancel()
                await asyncio.gather(collector, return_exceptions=True)

    async def _collect(self) -> None:
        """Record the latest build's warnings when they change, when this replica becomes leader,
        and every `resync` s. The controller replaces its warnings tuple on every build, so looking
        at it every `settle` s sees each build without a hook into the controller, and a leader
        elected after the build (a restart, a takeover) still reports what is wrong now."""
        assert self.warnings is not None
        seen: object = None
        was_leading = False
        resynced = time.monotonic()
        while True:
            try:
                current = self.warnings()
                leading = self.elector is None or self.elector.is_leader
                due = time.monotonic() - resynced >= self.resync
                if leading and (current is not seen or not was_leading or due):
                    self.record(current)
                    seen = current
                    if due:
                        resynced = time.monotonic()
                was_leading = leading
            except Exception:  # events must never take anything down
                log.exception("collecting warnings for events failed")
            await asyncio.sleep(self.settle)

    async def _post(self, notice: Notice) -> None:
        try:
            previous = self._posted.get(notice)
            if previous is not None and await self._bump(previous, notice):
                return
            await self._create(notice)
        except Exception as err:  # noqa: BLE001  never fatal
            self.errors_total += 1
            log.warning("could not post event about %s %s/%s: %s", notice.kind, notice.namespace, notice.name, err)

    async def _create(self, notice: Notice) -> None:
        namespace = notice.namespace or CLUSTER_EVENT_NAMESPACE
        stamp = _timestamp()
        involved: dict[str, Any] = {"kind": notice.kind, "name": notice.name,
                                    "apiVersion": API_VERSIONS.get(notice.kind, "v1")}
        if notice.namespace:
            involved["namespace"] = notice.namespace
        if self.cache is not None and notice.kind in API_VERSIONS:
            found = self.cache.get(notice.kind, notice.namespace, notice.name)
            uid = (found or {}).get("metadata", {}).get("uid")
            if uid:
                involved["uid"] = uid
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{notice.name}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": REASON, "message": notice.message[:MAX_MESSAGE], "type": "Warning",
            "source": {"component": COMPONENT, "host": self.instance},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": self.settings.controller_name, "reportingInstance": self.instance,
        }
        created = await self._call(self.core.create_namespaced_event(namespace, json_body(body), _preload_content=False,
                                                                     _request_timeout=REQUEST_TIMEOUT))
        self._remember(notice, _Posted(created["metadata"]["name"], namespace, 1, time.monotonic()))

    async def _bump(self, previous: _Posted, notice: Notice) -> bool:
        """Count a repeat on the existing Event; False if that Event is gone (expired after an hour)."""
        count = previous.count + 1
        patch = {"count": count, "lastTimestamp": _timestamp()}
        response = raw_response(await self.core.patch_namespaced_event(
            previous.event_name, previous.event_namespace, patch, _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT))
        try:
            data, status = await response.read(), response.status
        finally:
            response.release()
        if status == 404:
            return False
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
        self.posted_total += 1
        self._remember(notice, _Posted(previous.event_name, previous.event_namespace, count, time.monotonic()))
        return True

    async def _call(self, request: Any) -> dict[str, Any]:
        response = await request
        try:
            data, status = await response.read(), response.status
        finally:
            response.release()
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
        self.posted_total += 1
        return json.loads(data)

    def _remember(self, notice: Notice, posted: _Posted) -> None:
        self._posted[notice] = posted
        self._posted.move_to_end(notice)
        while len(self._posted) > MEMORY:
            self._posted.popitem(last=False)
