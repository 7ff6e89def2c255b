"""Cluster mode's source: list and watch each kind the proxy reads, feeding the ObjectCache.

One loop per kind, the kopf shape:

    LIST  -> cache.replace(kind, items), cache.mark_synced(kind) (first time)
             in pages of `page_size` (limit + continue), applied as ONE replace once the last page
             is in: the cache never sees part of a kind; an expired continue token (410) restarts
             the LIST from its first page
    WATCH from the list's resourceVersion, with bookmarks and a server-side timeout
      ADDED/MODIFIED/DELETED -> cache.apply(kind, type, raw object); the version advances
      BOOKMARK               -> only the version advances
      stream ends cleanly    -> WATCH again from the last version (no relist)
      410 Expired            -> LIST again: the atomic replace drops objects deleted while away
      any other failure      -> keep the cache, wait (capped exponential backoff, jitter),
                                WATCH again from the last version

The watch is read with the generated API functions of kubernetes_asyncio (`watch=True`,
`_preload_content=False`) rather than `kubernetes_asyncio.watch.Watch`, because Watch builds a
model object for every event (we keep raw dicts), answers an HTTP error without a JSON body
as a normal end of stream, and yields non-JSON lines as strings. Here the HTTP status is
checked and each line is parsed once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio.client import (
    ApiClient,
    CoreV1Api,
    DiscoveryV1Api,
    NetworkingV1Api,
)
from kubernetes_asyncio.client.exceptions import ApiException

from proxy.kube.cache import ObjectCache
from proxy.kube.client import CLUSTER, ApiCall, create_api_client
from proxy.settings import Settings

log = logging.getLogger("pyngress.watch")

# The API server ends a watch after this many seconds; we then watch again from the last version.
# Bounded so a silently dead connection (no RST, no bookmark) is noticed within this time plus the grace.
DEFAULT_WATCH_TIMEOUT = 300
# Extra client-side time past the server's timeout before the request is abandoned as hung.
CLIENT_TIMEOUT_GRACE = 30.0
# A LIST of thousands of objects on a busy API server can take a while, but not forever.
DEFAULT_LIST_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0
# Objects per LIST page: decoding one 5,000-Ingress body held the event loop ~150 ms; a page of 500
# is a few ms, and every page is an await (requests keep flowing between pages).
DEFAULT_PAGE_SIZE = 500
# A paginated LIST whose continue token expires (410) starts over; after this many restarts in a
# row it fails like any other error (backoff), rather than racing a compaction forever.
MAX_LIST_RESTARTS = 3
# A watch that ends cleanly faster than this without events is treated like a failure (no hot loop
# against a proxy or server that closes streams at once).
MIN_HEALTHY_STREAM = 0.5

TLS_SECRET_SELECTOR = "type=kubernetes.io/tls"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """How to list and watch one cache kind."""

    kind: str  # the ObjectCache kind
    group: str  # API group ("" = core), for RBAC
    resource: str  # plural, for RBAC
    api: type
    list_all: str  # list method for all namespaces (or the cluster-scoped list)
    list_namespaced: str | None  # None for cluster-scoped kinds
    field_selector: str = ""

    def list_function(self, api_client: ApiClient, namespace: str) -> tuple[Callable[..., Any], tuple[str, ...]]:
        """The generated list function and its positional args for this scope."""
        api = self.api(api_client)
        if namespace and self.list_namespaced:
            return getattr(api, self.list_namespaced), (namespace,)
        return getattr(api, self.list_all), ()


WATCHED_KINDS: tuple[KindSpec, ...] = (
    KindSpec("Ingress", "networking.k8s.io", "ingresses", NetworkingV1Api,
             "list_ingress_for_all_namespaces", "list_namespaced_ingress"),
    KindSpec("IngressClass", "networking.k8s.io", "ingressclasses", NetworkingV1Api, "list_ingress_class", None),
    KindSpec("Service", "", "services", CoreV1Api, "list_service_for_all_namespaces", "list_namespaced_service"),
    KindSpec("EndpointSlice", "discovery.k8s.io", "endpointslices", DiscoveryV1Api,
             "list_endpoint_slice_for_all_namespaces", "list_namespaced_endpoint_slice"),
    # Legacy Endpoints: the builder uses them only for Services that have no EndpointSlice.
    KindSpec("Endpoints", "", "endpoints", CoreV1Api, "list_endpoints_for_all_namespaces", "list_namespaced_endpoints"),
    # Only TLS Secrets: the field selector keeps every other Secret's data off the wire.
    KindSpec("Secret", "", "secrets", CoreV1Api, "list_secret_for_all_namespaces", "list_namespaced_secret",
             field_selector=TLS_SECRET_SELECTOR),
)
SPECS_BY_KIND = {spec.kind: spec for spec in WATCHED_KINDS}

# Every API call this module makes, for the RBAC check in tests/cluster/test_deploy.py.
API_CALLS: tuple[ApiCall, ...] = tuple(
    ApiCall(spec.group, spec.resource, verb, CLUSTER) for spec in WATCHED_KINDS for verb in ("list", "watch"))


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter, so replicas reconnecting after an outage spread out."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the `failures`-th failure in a row: half the step plus up to half again."""
        step = min(self.maximum, self.initial * self.factor ** max(failures - 1, 0))
        return step * (0.5 + rng() / 2)


@dataclass(slots=True)
class KindStatus:
    """The health of one kind's watch, read by metrics, /readyz logic and tests."""

    kind: str
    synced: bool = False  # the first LIST has been applied
    connected: bool = False  # a watch stream is open
    resource_version: str = ""
    consecutive_failures: int = 0
    errors_total: int = 0
    relists_total: int = 0  # LISTs after the first (410 Expired)
    events_total: int = 0  # ADDED/MODIFIED/DELETED applied
    bookmarks_total: int = 0
    last_error: str = ""
    last_error_time: float = 0.0  # time.time()

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


@dataclass(slots=True)
class WatchStatus:
    """Per-kind watch health, shared with the CLI (metrics, logs) while the watch runs."""

    kinds: dict[str, KindStatus] = field(default_factory=dict)
    # monotonic time the first kind started failing in the current outage (0: not failing)
    failing_since: float = 0.0
    _synced: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False, compare=False)

    @classmethod
    def for_kinds(cls, kinds: Iterable[str]) -> WatchStatus:
        return cls(kinds={kind: KindStatus(kind) for kind in kinds})

    @property
    def synced(self) -> bool:
        return bool(self.kinds) and all(k.synced for k in self.kinds.values())

    @property
    def failing(self) -> bool:
        """True while any kind cannot reach the API server (the last good table keeps serving)."""
        return any(k.failing for k in self.kinds.values())

    @property
    def errors_total(self) -> int:
        return sum(k.errors_total for k in self.kinds.values())

    def failing_kinds(self) -> list[str]:
        return [k.kind for k in self.kinds.values() if k.failing]

    async def wait_synced(self) -> None:
        """Return once every kind's first LIST has been applied."""
        await self._synced.wait()

    def mark_synced(self, kind: str) -> None:
        self.kinds[kind].synced = True
        if self.synced:
            self._synced.set()

    def record_failure(self, kind: str, error: str) -> None:
        """Count one failed request of `kind`; the first failure of an outage is logged (once, not per retry)."""
        state = self.kinds[kind]
        healthy = not self.failing
        state.consecutive_failures += 1
        state.errors_total += 1
        state.last_error = error
        state.last_error_time = time.time()
        if healthy:
            self.failing_since = time.monotonic()
            log.warning("watch of %s failing: %s; serving the last good configuration and retrying with backoff",
                        kind, error)

    def record_success(self, kind: str) -> None:
        """`kind` reached the API server again; the end of an outage (no kind failing) is logged once."""
        state = self.kinds[kind]
        if not state.consecutive_failures:
            return
        state.consecutive_failures = 0
        if not self.failing:
            log.warning("watch recovered after %.1f s: following the API server again",
                        time.monotonic() - self.failing_since)
            self.failing_since = 0.0


class WatchProtocolError(Exception):
    """The server sent something that is not a watch event."""


def api_error(status: int, body: bytes | str | dict[str, Any]) -> ApiException:
    """An ApiException carrying the Status reason and message, whatever shape the error body had."""
    reason = ""
    if isinstance(body, (bytes, str)):
        raw = body
        try:
            body = json.loads(raw)
        except ValueError:
            reason = raw.decode(errors="replace")[:200] if isinstance(raw, bytes) else raw[:200]
    if isinstance(body, dict):
        reason = f"{body.get('reason', '')}: {body.get('message', '')}"
        status = int(body.get("code") or status)
    return ApiException(status=status, reason=reason)


class KindWatcher:
    """The list-then-watch loop of one kind (see the module docstring)."""

    def __init__(self, spec: KindSpec, *, cache: ObjectCache, api_client: ApiClient, namespace: str,
                 status: WatchStatus, timeout_seconds: int, backoff: Backoff, list_timeout: float,
                 page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.spec = spec
        self.cache = cache
        self.namespace = namespace if spec.list_namespaced else ""
        self.status = status
        self.state = status.kinds[spec.kind]
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff
        self.list_timeout = list_timeout
        self.page_size = max(page_size, 0)  # 0: one unpaginated LIST
        self._list_fn, self._list_args = spec.list_function(api_client, self.namespace)
        self._query: dict[str, Any] = {"field_selector": spec.field_selector} if spec.field_selector else {}
        # None: the next step is a LIST. Otherwise: the version to watch from.
        self.version: str | None = None
        self._expired_in_a_row = 0

    @property
    def where(self) -> str:
        return f"{self.spec.kind} in {self.namespace}" if self.namespace else self.spec.kind

    async def run(self) -> None:
        while True:
            try:
                if self.version is None:
                    await self._list()
                started, events = time.monotonic(), self.state.events_total + self.state.bookmarks_total
                await self._watch()
                quiet = self.state.events_total + self.state.bookmarks_total == events
                if quiet and time.monotonic() - started < MIN_HEALTHY_STREAM:
                    raise WatchProtocolError("watch stream closed at once")
            except ApiException as err:
                if err.status == 410:
                    self._expired(err)
                    if self._expired_in_a_row <= 1:
                        continue  # relist at once; a second 410 in a row backs off like any failure
                await self._failed(err)
            except Exception as err:  # noqa: BLE001  a watch must never die: the cache keeps serving
                await self._failed(err)

    async def _list(self) -> None:
        restarts = 0
        while True:
            try:
                items, version, pages = await self._list_pages()
                break
            except ApiException as err:
                if err.status != 410 or restarts >= MAX_LIST_RESTARTS:
                    raise
                restarts += 1  # the continue token expired between pages: a consistent list needs a fresh start
                log.info("LIST %s: continue token expired (%s); listing again from the first page",
                         self.where, err.reason)
        relist = self.state.synced
        self.cache.replace(self.spec.kind, items)
        if relist:
            self.state.relists_total += 1
        else:
            self.cache.mark_synced(self.spec.kind)
            self.status.mark_synced(self.spec.kind)
        self.version = self.state.resource_version = version
        self._recovered()
        log.info("listed %d %s (version %s%s)%s", len(items), self.where, version,
                 f", {pages} pages" if pages > 1 else "", " again" if relist else "")

    async def _list_pages(self) -> tuple[list[Any], str, int]:
        """Every page of one LIST: (all items, the list's resourceVersion (the first page's), page count).
        Nothing reaches the cache here; a 410 on a continue token propagates (the caller restarts)."""
        items: list[Any] = []
        version = ""
        token = ""
        pages = 0
        timeout = aiohttp.ClientTimeout(total=self.list_timeout, sock_connect=CONNECT_TIMEOUT)
        while True:
            query = dict(self._query)
            if self.page_size:
                query["limit"] = self.page_size
            if token:
                query["_continue"] = token
            response = await self._list_fn(*self._list_args, **query, _preload_content=False,
                                           _request_timeout=timeout)
            try:
                body = await response.read()
                if response.status != 200:
                    raise api_error(response.status, body)
            finally:
                response.release()
            listing = json.loads(body)
            page = listing.get("items") if isinstance(listing, dict) else None
            metadata = (listing.get("metadata") or {}) if isinstance(listing, dict) else {}
            page_version = metadata.get("resourceVersion")
            if page is None:
                page = []
            if not isinstance(page, list) or not page_version:
                raise WatchProtocolError(f"LIST {self.spec.resource} answered without items or resourceVersion")
            pages += 1
            version = version or page_version  # watch from the first page's version: later pages are that snapshot
            items.extend(page)
            token = metadata.get("continue") or ""
            if not token or not self.page_size:
                return items, version, pages

    async def _watch(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds + CLIENT_TIMEOUT_GRACE, sock_connect=CONNECT_TIMEOUT)
        response = await self._list_fn(
            *self._list_args, **self._query, watch=True, resource_version=self.version,
            allow_watch_bookmarks=True, timeout_seconds=self.timeout_seconds,
            _preload_content=False, _request_timeout=timeout)
        try:
            if response.status != 200:
                raise api_error(response.status, await response.read())
            self.state.connected = True
            self._recovered()
            while line := await response.content.readline():
                if line.strip():
                    self._handle(json.loads(line))
        finally:
            self.state.connected = False
            if response.content.at_eof():
                response.release()  # the connection goes back to the pool
            else:
                response.close()  # cancelled or broken mid-stream: the connection cannot be reused

    def _handle(self, event: Any) -> None:
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise WatchProtocolError(f"not a watch event: {str(event)[:200]}")
        type_, obj = event.get("type"), event["object"]
        if type_ == "ERROR":
            raise api_error(500, obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if type_ == "BOOKMARK":
            self.state.bookmarks_total += 1
        elif type_ in ("ADDED", "MODIFIED", "DELETED"):
            self.cache.apply(self.spec.kind, type_, obj)
            self.state.events_total += 1
        else:
            log.debug("ignoring %s watch event of type %r", self.where, type_)
            return
        if version:
            self.version = self.state.resource_version = version
        self._expired_in_a_row = 0

    def _expired(self, err: ApiException) -> None:
        self._expired_in_a_row += 1
        log.info("watch %s: version %s expired (%s); listing again", self.where, self.version, err.reason)
        self.version = None

    def _recovered(self) -> None:
        if self.state.consecutive_failures:
            log.debug("watch %s recovered after %d failures", self.where, self.state.consecutive_failures)
            self.status.record_success(self.spec.kind)

    async def _failed(self, err: BaseException) -> None:
        self.status.record_failure(self.spec.kind, _describe(err))
        state = self.state
        delay = self.backoff.delay(state.consecutive_failures)
        log.debug("watch %s failing (%d in a row): %s; retrying in %.1fs",
                  self.where, state.consecutive_failures, state.last_error, delay)
        await asyncio.sleep(delay)


def _describe(err: BaseException) -> str:
    if isinstance(err, ApiException):
        return f"HTTP {err.status} {err.reason}".strip()
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class ClusterSource:
    """All kind loops against one API client; `status` is readable while `run()` runs."""

    def __init__(self, cache: ObjectCache, settings: Settings, *, api_client: ApiClient,
                 kinds: Iterable[str] | None = None, timeout_seconds: int = DEFAULT_WATCH_TIMEOUT,
                 backoff: Backoff = Backoff(), list_timeout: float = DEFAULT_LIST_TIMEOUT,
                 status: WatchStatus | None = None, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        names = list(kinds) if kinds is not None else [spec.kind for spec in WATCHED_KINDS]
        unknown = [name for name in names if name not in SPECS_BY_KIND]
        if unknown:
            raise ValueError(f"cannot watch unknown kinds {unknown}")
        self.status = status if status is not None else WatchStatus.for_kinds(names)
        for name in names:
            self.status.kinds.setdefault(name, KindStatus(name))
        self.watchers = [
            KindWatcher(SPECS_BY_KIND[name], cache=cache, api_client=api_client, namespace=settings.watch_namespace,
                        status=self.status, timeout_seconds=timeout_seconds, backoff=backoff,
                        list_timeout=list_timeout, page_size=page_size)
            for name in names
        ]

    async def run(self) -> None:
        """Run every kind's loop until cancelled."""
        async with asyncio.TaskGroup() as group:
            for watcher in self.watchers:
                group.create_task(watcher.run(), name=f"watch-{watcher.spec.kind}")


async def run_cluster_source(cache: ObjectCache, settings: Settings, *, api_client: ApiClient | None = None,
                             status: WatchStatus | None = None, **options: Any) -> None:
    """Feed `cache` from the API server until cancelled (cluster mode's counterpart of the file loader).

    Without `api_client`, one is built from settings (kubeconfig or in-cluster) and closed on exit.
    Pass a `WatchStatus` to read per-kind health while this runs; `options` go to ClusterSource
    (kinds, timeout_seconds, backoff, list_timeout, page_size).
    """
    own_client = api_client is None
    client = api_client if api_client is not None else await create_api_client(settings)
    try:
        await ClusterSource(cache, settings, api_client=client, status=status, **options).run()
    finally:
        if own_client:
            await client.close()
