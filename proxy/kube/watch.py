"""Cluster mode's source: list and watch each kind the proxy reads, feeding the ObjectCache.

Here: the kinds watched and how (`KindSpec`, `WATCHED_KINDS`), one kind's loop (`KindWatcher`), and every
kind's loop with discovery starting and stopping them (`ClusterSource`). Their health is kept in
proxy.kube.watch_status; single Secrets and ConfigMaps read again are proxy.kube.fetchers' business.

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

Kinds whose CRDs may be missing (the Gateway API) are watched only while discovery finds them
served (see proxy.kube.discovery): asked at start, and every `DISCOVERY_INTERVAL` after. A kind
not served is, for the cache, listed and empty (synced, so Ingress routing never waits for it);
one info line says so. When it appears, its loop starts (no restart needed); when it is no longer
served (its CRD deleted, which deletes its objects too), its loop stops and its objects go.
Secrets: every Secret is listed and watched, but the cache holds the data only of TLS Secrets and of
the Secrets an Ingress or Gateway names (ObjectCache.hold_named_secrets); of the others (Helm release
Secrets are megabytes each) only the key. When something starts naming a Secret whose data is not held,
`SecretFetcher` (proxy.kube.fetchers) reads it once (GET) and hands it to the cache; from then on the watch
keeps it current.
Namespaces are read only for Gateway listeners' allowedRoutes selectors, so they are watched
only while Gateways are served. ConfigMaps are treated like Secrets: every one is listed, the cache keeps
the CA bundles of those BackendTLSPolicies name and the data of those an Ingress (or the --configmap's
proxy-set-headers) names, nothing of the rest (`ConfigMapFetcher` reads one again when something starts
naming it). Our own BackendTrafficPolicy CRD (deploy/crds/) is discovered the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import aiohttp
from kubernetes_asyncio.client import (
    ApiClient,
    CoreV1Api,
    CustomObjectsApi,
    DiscoveryV1Api,
    NetworkingV1Api,
)
from kubernetes_asyncio.client.exceptions import ApiException

from proxy.kube.cache import ObjectCache
from proxy.kube.client import (
    CLUSTER,
    CONNECT_TIMEOUT,
    ApiCall,
    Backoff,
    WatchProtocolError,
    api_error,
    create_api_client,
    describe_error,
    raw_response,
)
from proxy.kube.discovery import discover, watchable
from proxy.kube.fetchers import ConfigMapFetcher, SecretFetcher
from proxy.kube.watch_status import KindStatus, WatchStatus
from proxy.settings import Settings

log = logging.getLogger("pyngress.watch")

# The API server ends a watch after this many seconds; we then watch again from the last version.
# Bounded so a silently dead connection (no RST, no bookmark) is noticed within this time plus the grace.
DEFAULT_WATCH_TIMEOUT = 300
# Extra client-side time past the server's timeout before the request is abandoned as hung.
CLIENT_TIMEOUT_GRACE = 30.0
# A LIST of thousands of objects on a busy API server can take a while, but not forever.
DEFAULT_LIST_TIMEOUT = 120.0
# A discovery document is small; an API server that cannot answer one in this time is in trouble.
DISCOVERY_TIMEOUT = 30.0
# Objects per LIST page: decoding one 5,000-Ingress body held the event loop ~150 ms; a page of 500
# is a few ms, and every page is an await (requests keep flowing between pages).
DEFAULT_PAGE_SIZE = 500
# A paginated LIST whose continue token expires (410) starts over; after this many restarts in a
# row it fails like any other error (backoff), rather than racing a compaction forever.
MAX_LIST_RESTARTS = 3
# A watch that ends cleanly faster than this without events is treated like a failure (no hot loop
# against a proxy or server that closes streams at once).
MIN_HEALTHY_STREAM = 0.5

# How often the kinds found by discovery are looked for again: a CRD installed (or removed) is
# followed within this time, at the cost of one or two small GETs.
DISCOVERY_INTERVAL = 30.0
GATEWAY_GROUP = "gateway.networking.k8s.io"
POLICY_GROUP = "pyngress.dev"


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
    # A custom resource: the versions we read, preferred first. Watched only while discovery finds
    # one of them served, at the first one served (CustomObjectsApi's list functions).
    versions: tuple[str, ...] = ()
    # Watched only while this (discovered) kind is served.
    with_kind: str = ""

    @property
    def discovered(self) -> bool:
        """Whether discovery decides if (and at which version) this kind is watched."""
        return bool(self.versions or self.with_kind)

    def list_function(self, api_client: ApiClient, namespace: str,
                      version: str = "") -> tuple[Callable[..., Any], tuple[str, ...]]:
        """The generated list function and its positional args for this scope (and, for a custom
        resource, this version)."""
        api = self.api(api_client)
        if self.versions:
            if namespace and self.list_namespaced:
                return getattr(api, self.list_namespaced), (self.group, version, namespace, self.resource)
            return getattr(api, self.list_all), (self.group, version, self.resource)
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
    # Every Secret (any type may be named by an annotation); the cache holds only the named ones' data.
    KindSpec("Secret", "", "secrets", CoreV1Api, "list_secret_for_all_namespaces", "list_namespaced_secret"),
    # The Gateway API, where its CRDs are installed. `list_cluster_custom_object` of a namespaced
    # kind lists every namespace (GET /apis/<group>/<version>/<plural>).
    KindSpec("GatewayClass", GATEWAY_GROUP, "gatewayclasses", CustomObjectsApi, "list_cluster_custom_object", None,
             versions=("v1",)),
    KindSpec("Gateway", GATEWAY_GROUP, "gateways", CustomObjectsApi, "list_cluster_custom_object",
             "list_namespaced_custom_object", versions=("v1",)),
    KindSpec("HTTPRoute", GATEWAY_GROUP, "httproutes", CustomObjectsApi, "list_cluster_custom_object",
             "list_namespaced_custom_object", versions=("v1",)),
    # TLSRoute: v1 since Gateway API v1.5, v1alpha2/v1alpha3 before (the fields read are the same).
    KindSpec("TLSRoute", GATEWAY_GROUP, "tlsroutes", CustomObjectsApi, "list_cluster_custom_object",
             "list_namespaced_custom_object", versions=("v1", "v1alpha3", "v1alpha2")),
    KindSpec("GRPCRoute", GATEWAY_GROUP, "grpcroutes", CustomObjectsApi, "list_cluster_custom_object",
             "list_namespaced_custom_object", versions=("v1",)),
    # Bundles before ReferenceGrant reached v1 serve it at v1beta1 only.
    KindSpec("ReferenceGrant", GATEWAY_GROUP, "referencegrants", CustomObjectsApi, "list_cluster_custom_object",
             "list_namespaced_custom_object", versions=("v1", "v1beta1")),
    # For Gateway listeners' allowedRoutes namespace selectors (labels only), while Gateways are served;
    # cluster-wide even with --watch-namespace (a listener may take routes from any namespace).
    KindSpec("Namespace", "", "namespaces", CoreV1Api, "list_namespace", None, with_kind="Gateway"),
    # Traffic policies, where their CRDs are installed: ours (deploy/crds/) and the Gateway API's
    # BackendTLSPolicy, with the ConfigMaps holding CA bundles while BackendTLSPolicy is served.
    KindSpec("BackendTrafficPolicy", POLICY_GROUP, "backendtrafficpolicies", CustomObjectsApi,
             "list_cluster_custom_object", "list_namespaced_custom_object", versions=("v1alpha1",)),
    KindSpec("BackendTLSPolicy", GATEWAY_GROUP, "backendtlspolicies", CustomObjectsApi, "list_cluster_custom_object",
             "list_namespaced_custom_object", versions=("v1",)),
    # ConfigMaps: the CA bundles of BackendTLSPolicies, and those Ingresses name (custom-headers,
    # auth-proxy-set-headers); the cache keeps only those data (ObjectCache.hold_named_config_maps).
    KindSpec("ConfigMap", "", "configmaps", CoreV1Api, "list_config_map_for_all_namespaces",
             "list_namespaced_config_map"),
)
SPECS_BY_KIND = {spec.kind: spec for spec in WATCHED_KINDS}
# ingress-nginx's ConfigMap (--configmap): one object, watched in its namespace with a field selector on its
# name (see ClusterSource), whatever --watch-namespace says; its own cache kind keeps it whole.
CONTROLLER_CONFIG_MAP_SPEC = KindSpec("ControllerConfigMap", "", "configmaps", CoreV1Api,
                                      "list_config_map_for_all_namespaces", "list_namespaced_config_map")

# Every API call this module makes, for the RBAC check in tests/cluster/test_deploy.py.
API_CALLS: tuple[ApiCall, ...] = (
    *(ApiCall(spec.group, spec.resource, verb, CLUSTER) for spec in WATCHED_KINDS for verb in ("list", "watch")),
    # The fetchers' reads (proxy.kube.fetchers), with the functions ClusterSource hands them.
    ApiCall("", "secrets", "get", CLUSTER),  # SecretFetcher
    ApiCall("", "configmaps", "get", CLUSTER),  # ConfigMapFetcher
)


async def served_resources(api_client: ApiClient, group: str, version: str, *,
                           timeout: float = DISCOVERY_TIMEOUT) -> frozenset[str] | None:
    """The resources (plurals) served at `group/version` that can be listed and watched, or None
    when the API server does not serve that group version at all (404); raises ApiException else."""
    response = raw_response(await CustomObjectsApi(api_client).get_api_resources(
        group, version, _preload_content=False,
        _request_timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(CONNECT_TIMEOUT, timeout))))
    try:
        body = await response.read()
    finally:
        response.release()
    if response.status == 404:
        return None
    if response.status != 200:
        raise api_error(response.status, body)
    try:
        served = watchable(json.loads(body))
    except ValueError:
        served = None
    if served is None:
        raise WatchProtocolError(f"GET /apis/{group}/{version} answered without a resource list")
    return served


class KindWatcher:
    """The list-then-watch loop of one kind (see the module docstring)."""

    def __init__(self, spec: KindSpec, *, cache: ObjectCache, api_client: ApiClient, namespace: str,
                 status: WatchStatus, timeout_seconds: int, backoff: Backoff, list_timeout: float,
                 page_size: int = DEFAULT_PAGE_SIZE, version: str = "",
                 on_gone: Callable[[], Awaitable[None]] | None = None) -> None:
        """`version`: the API version of a custom resource. `on_gone`: awaited when the API server
        answers 404 (a kind found by discovery whose CRD went away): the first 404 after a success
        waits for discovery to look again (which stops this loop if the kind is gone) rather than
        counting as an outage."""
        self.spec = spec
        self.cache = cache
        self.namespace = namespace if spec.list_namespaced else ""
        self.status = status
        self.state = status.kinds[spec.kind]
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff
        self.list_timeout = list_timeout
        self.page_size = max(page_size, 0)  # 0: one unpaginated LIST
        self._list_fn, self._list_args = spec.list_function(api_client, self.namespace, version)
        self._query: dict[str, Any] = {"field_selector": spec.field_selector} if spec.field_selector else {}
        # None: the next step is a LIST. Otherwise: the version to watch from.
        self.version: str | None = None
        self._expired_in_a_row = 0
        self.on_gone = on_gone
        self._gone_reported = False

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
                    if self.on_gone is not None and not self._gone_reported:
                        # A deleted CRD ends its watches: with no objects there is no DELETED event first.
                        self._gone_reported = True
                        log.info("%s: watch closed at once (its CRD removed?); asking discovery again", self.where)
                        await self.on_gone()
                        continue
                    raise WatchProtocolError("watch stream closed at once")
            except ApiException as err:
                if err.status == 410:
                    self._expired(err)
                    if self._expired_in_a_row <= 1:
                        continue  # relist at once; a second 410 in a row backs off like any failure
                if err.status == 404 and self.on_gone is not None and not self._gone_reported:
                    self._gone_reported = True  # discovery decides; if it still finds the kind, the next 404 counts
                    log.info("%s: HTTP 404 (its CRD removed?); asking discovery again", self.where)
                    await self.on_gone()
                    continue
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
        self._gone_reported = False
        if self.state.consecutive_failures:
            log.debug("watch %s recovered after %d failures", self.where, self.state.consecutive_failures)
            self.status.record_success(self.spec.kind)

    async def _failed(self, err: BaseException) -> None:
        self.status.record_failure(self.spec.kind, describe_error(err))
        state = self.state
        delay = self.backoff.delay(state.consecutive_failures)
        log.debug("watch %s failing (%d in a row): %s; retrying in %.1fs",
                  self.where, state.consecutive_failures, state.last_error, delay)
        await asyncio.sleep(delay)


class ClusterSource:
    """All kind loops against one API client; `status` is readable while `run()` runs."""

    def __init__(self, cache: ObjectCache, settings: Settings, *, api_client: ApiClient,
                 kinds: Iterable[str] | None = None, timeout_seconds: int = DEFAULT_WATCH_TIMEOUT,
                 backoff: Backoff = Backoff(), list_timeout: float = DEFAULT_LIST_TIMEOUT,
                 status: WatchStatus | None = None, page_size: int = DEFAULT_PAGE_SIZE,
                 discovery_interval: float = DISCOVERY_INTERVAL) -> None:
        own = CONTROLLER_CONFIG_MAP_SPEC.kind
        config_namespace, slash, config_name = settings.configmap.partition("/")
        names = list(kinds) if kinds is not None else [spec.kind for spec in WATCHED_KINDS] + ([own] if slash else [])
        unknown = [name for name in names if name not in SPECS_BY_KIND and name != own]
        if unknown:
            raise ValueError(f"cannot watch unknown kinds {unknown}")
        self.status = status if status is not None else WatchStatus.for_kinds(names)
        for name in names:
            self.status.kinds.setdefault(name, KindStatus(name))
        self.cache = cache
        self.api_client = api_client
        self.backoff = backoff
        self.discovery_interval = discovery_interval
        self._options: dict[str, Any] = {
            "cache": cache, "api_client": api_client, "namespace": settings.watch_namespace, "status": self.status,
            "timeout_seconds": timeout_seconds, "backoff": backoff, "list_timeout": list_timeout,
            "page_size": page_size}
        specs = [SPECS_BY_KIND[kind] for kind in names if kind != own]
        # Kinds of built-in groups: always served, watched from the start.
        self.watchers = [KindWatcher(spec, **self._options) for spec in specs if not spec.discovered]
        if own in names and slash:
            spec = replace(CONTROLLER_CONFIG_MAP_SPEC, field_selector=f"metadata.name={config_name}")
            self.watchers.append(KindWatcher(spec, **{**self._options, "namespace": config_namespace}))
        # Kinds watched while discovery finds them served: kind -> (version, its loop).
        self.discovered = [spec for spec in specs if spec.discovered]
        self.running: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self.secrets: SecretFetcher | None = None
        if "Secret" in names:
            self.secrets = SecretFetcher(cache, CoreV1Api(api_client).read_namespaced_secret, backoff=backoff)
            cache.hold_named_secrets(self.secrets.want)
        self.config_maps: ConfigMapFetcher | None = None
        if "ConfigMap" in names:
            self.config_maps = ConfigMapFetcher(cache, CoreV1Api(api_client).read_namespaced_config_map,
                                                backoff=backoff)
            cache.hold_named_config_maps(self.config_maps.want)
        self._decided = False  # the first discovery is in: every discovered kind is watched or known absent
        self._recheck = asyncio.Event()  # a watched kind answered 404: ask discovery now, not at the interval
        self._looked = asyncio.Event()  # set (and replaced) after each discovery attempt
        self._looking = False  # a discovery attempt is under way

    async def run(self) -> None:
        """Run every kind's loop (and discovery's, for the kinds it decides) until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                for watcher in self.watchers:
                    group.create_task(watcher.run(), name=f"watch-{watcher.spec.kind}")
                if self.discovered:
                    group.create_task(self._follow_discovery(group), name="watch-discovery")
        finally:
            if self.secrets is not None:
                await self.secrets.close()
            if self.config_maps is not None:
                await self.config_maps.close()

    async def _follow_discovery(self, group: asyncio.TaskGroup) -> None:
        """Ask discovery now and every `discovery_interval`; start and stop loops as kinds come and go.
        Until the first answer, a failure counts against the kinds waiting for it (retried with
        backoff); after it, a failed re-check keeps what runs and tries again next interval."""
        failures = 0
        while True:
            self._looking = True
            try:
                served = await discover(partial(served_resources, self.api_client), self.discovered,
                                        every=WATCHED_KINDS)
            except Exception as err:  # noqa: BLE001  like a watch: never fatal, retried
                self._looked_again()
                failures += 1
                if self._decided:
                    log.debug("discovery re-check failed (%s); keeping the watched kinds as they are",
                              describe_error(err))
                    await self._wait(self.discovery_interval)
                else:
                    for spec in self.discovered:
                        self.status.record_failure(spec.kind, f"discovery: {describe_error(err)}")
                    await asyncio.sleep(min(self.backoff.delay(failures), self.discovery_interval))
                continue
            if failures and not self._decided:
                for spec in self.discovered:
                    self.status.record_success(spec.kind)
            failures = 0
            await self._follow(served, group)
            self._looked_again()
            await self._wait(self.discovery_interval)

    async def _look_again(self) -> None:
        """For a watched kind that answered 404: return after a discovery attempt that started after
        the 404 (it cancels the caller if the kind is no longer served)."""
        for _ in range(2 if self._looking else 1):  # one under way may have asked before the CRD went
            looked = self._looked
            self._recheck.set()
            await looked.wait()

    def _looked_again(self) -> None:
        self._looking = False
        self._looked.set()
        self._looked = asyncio.Event()

    async def _wait(self, seconds: float) -> None:
        """Until the next re-check: `seconds`, or sooner when a watched kind answered 404."""
        try:
            async with asyncio.timeout(seconds):
                await self._recheck.wait()
        except TimeoutError:
            pass
        self._recheck.clear()

    async def _follow(self, served: dict[str, str | None], group: asyncio.TaskGroup) -> None:
        first = not self._decided
        started: list[str] = []
        stopped: list[str] = []
        absent: list[str] = []
        for spec in self.discovered:
            kind, version = spec.kind, served.get(spec.kind)
            running = self.running.get(kind)
            if running is not None and running[0] == version:
                continue
            if running is not None:
                await self._stop(kind)
            if version is not None:
                self.status.mark_served(kind, version)
                watcher = KindWatcher(spec, version=version, on_gone=self._look_again, **self._options)
                task = group.create_task(watcher.run(), name=f"watch-{kind}")
                self.running[kind] = (version, task)
                if not first:
                    started.append(f"{kind} ({spec.group}/{version})" if spec.versions else kind)
            elif running is not None or first:
                # Known to have none: for the cache this kind is listed (empty), so nothing waits for it.
                self.cache.replace(kind, ())
                self.cache.mark_synced(kind)
                self.status.mark_unserved(kind)
                (stopped if running is not None else absent).append(kind)
        self._decided = True
        if absent:
            missing = [spec.kind for spec in self.discovered if spec.kind in absent and spec.versions]
            idle = [kind for kind in absent if kind not in missing]
            log.info("%s not served by the API server (CRDs not installed?): not watched%s; Ingress routing goes on "
                     "without them; looking for them again every %g s", ", ".join(missing) or "nothing",
                     f" (nor {', '.join(idle)}, read only for them)" if idle else "", self.discovery_interval)
        if started:
            log.info("now served, watching: %s", ", ".join(started))
        if stopped:
            log.info("no longer served: stopped watching %s and dropped their objects", ", ".join(stopped))

    async def _stop(self, kind: str) -> None:
        _, task = self.running.pop(kind)
        task.cancel()
        await asyncio.wait({task})


async def run_cluster_source(cache: ObjectCache, settings: Settings, *, api_client: ApiClient | None = None,
                             status: WatchStatus | None = None, **options: Any) -> None:
    """Feed `cache` from the API server until cancelled (cluster mode's counterpart of the file loader).

    Without `api_client`, one is built from settings (kubeconfig or in-cluster) and closed on exit.
    Pass a `WatchStatus` to read per-kind health while this runs; `options` go to ClusterSource
    (kinds, timeout_seconds, backoff, list_timeout, page_size, discovery_interval).
    """
    own_client = api_client is None
    client = api_client if api_client is not None else await create_api_client(settings)
    try:
        await ClusterSource(cache, settings, api_client=client, status=status, **options).run()
    finally:
        if own_client:
            await client.close()
