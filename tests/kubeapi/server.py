"""A Kubernetes API server test double speaking the real HTTP list/watch protocol.

It serves the few resources pyngress uses (see `resources.py`) to the real kubernetes_asyncio
client over a socket: resourceVersions, watch resume from the change log, bookmarks, ERROR 410
after `compact()`, `timeoutSeconds`, label and field selectors, the /status subresource, 409 on
stale versions and name clashes, merge patches, and paginated LISTs (`limit` and `continue`:
every page is served from the first page's version, `metadata.remainingItemCount` is given
when no selector is, a token whose version was compacted answers 410 Expired with an
inconsistent-continue token, as the real API server does). Tests drive failures through hooks:
`drop_watches()`, `fail_next()`, `stop()`/`start()`, `send_bookmarks()`, `on_request()`.

The Gateway API kinds are CRDs: absent until `install_gateway_api()` (or `gateway_api=True`),
removable with `uninstall_gateway_api()`. Discovery (/api, /api/v1, /apis, /apis/<group>,
/apis/<group>/<version>) lists what is served at that moment; served at another version than the
preferred one (ReferenceGrant at v1beta1), objects carry that version's apiVersion. Discovery
requests are non-resource URLs, allowed to every authenticated user by the default
`system:discovery` role: they are kept in `discovery_requests`, apart from `requests` (what RBAC
must grant).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import ApiError
from .resources import (
    BY_GROUP_PLURAL,
    BY_KIND,
    GATEWAY_KINDS,
    POLICY_KINDS,
    RESOURCES,
    STATUS_VERBS,
    VERBS,
    Resource,
)
from .selectors import object_filter, parse_field_selector, parse_label_selector
from .store import Change, Obj, Store, Subscription

_DROP = object()  # queue marker: end this watch by cutting the connection
_END = object()  # queue marker: end this watch cleanly (as a server-side timeout does)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One API call as RBAC sees it: (group, resource[/subresource], verb) plus where."""

    verb: str  # get, list, watch, create, update, patch, delete
    group: str
    resource: str  # plural, with "/status" for the subresource
    namespace: str
    name: str
    resource_version: str = ""  # the resourceVersion query parameter (where a watch starts)
    label_selector: str = ""
    field_selector: str = ""
    limit: str = ""  # LIST page size asked for ("" = everything)
    continue_token: str = ""  # LIST: the token of a following page
    path: str = ""  # discovery requests (resource ""): the URL path


@dataclass(slots=True)
class _Bookmark:
    rv: int


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(body), status=status, content_type="application/json")


def _at(resource: Resource, version: str, obj: Obj) -> Obj:
    """`obj` as served at `version`: the Gateway API's versions share one schema, so conversion
    (strategy None, as its CRDs declare) only rewrites apiVersion."""
    api_version = resource.api_version_at(version)
    if obj.get("apiVersion", api_version) == api_version:
        return obj
    return {**obj, "apiVersion": api_version}


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


# The real API server's words for a continue token whose version was compacted.
EXPIRED_CONTINUE = ("The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter, or use the continue token in this response to "
                    "retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the first "
                    "chunk was returned and now may show up in the list.")


def _limit(value: str | None) -> int:
    if not value:
        return 0
    try:
        limit = int(value)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid limit {value!r}") from None
    return max(limit, 0)


def _encode_continue(rv: int, after: tuple[str, str]) -> str:
    """Opaque to clients (they must not parse it): the list's version and the last key served."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "after": list(after)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        namespace, name = data["after"]
        return int(data["rv"]), (str(namespace), str(name))
    except (ValueError, KeyError, TypeError, UnicodeEncodeError, binascii.Error):
        raise ApiError(400, "BadRequest", f"continue key is not valid: {token[:40]!r}") from None


class KubeApiServer:
    """The emulator: `await start()` binds 127.0.0.1 (port 0 = ephemeral), `url` is what the client uses."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, allow_loopback: bool = False,
                 bookmark_interval: float = 60.0, token: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, gateway_api: bool = False) -> None:
        self.store = Store()
        # Real validation rejects loopback EndpointSlice/Endpoints addresses; tests with loopback pods opt in.
        self.store.allow_loopback = allow_loopback
        self.host = host
        self.port = port
        # The real API server sends a bookmark about once a minute to watches that allow them.
        self.bookmark_interval = bookmark_interval
        # When set, every request must carry `Authorization: Bearer <token>` (else 401).
        self.token = token
        self.ssl_context = ssl_context
        self.requests: list[RequestRecord] = []
        self.discovery_requests: list[str] = []
        self.authorizations: list[str] = []
        self._fail: list[tuple[int, int, Callable[[RequestRecord], bool] | None]] = []
        self._request_hooks: list[Callable[[RequestRecord], None]] = []
        self._watches: set[Subscription] = set()
        self._runner: web.AppRunner | None = None
        self._watch_tasks: set[asyncio.Task] = set()
        if gateway_api:
            self.install_gateway_api()

    # ---- lifecycle
    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Bind (again, on the same port after `stop()`); the store survives restarts."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: notice a client that went away (a real API server ends that watch too).
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Simulate an outage: cut every watch, close every connection, stop listening."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        self.drop_watches()
        await runner.cleanup()

    async def __aenter__(self) -> KubeApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- hooks for tests
    def drop_watches(self, resource: str | None = None, *, abrupt: bool = True) -> int:
        """End open watches (all, or those of one plural such as "ingresses"): abruptly (connection cut
        mid-stream) or cleanly (as after timeoutSeconds). Returns how many were ended."""
        watches = [sub for sub in self._watches if resource is None or sub.resource.plural == resource]
        for sub in watches:
            sub.queue.put_nowait(_DROP if abrupt else _END)
        return len(watches)

    def send_bookmarks(self) -> int:
        """Send a BOOKMARK at the current version to every watch that allows bookmarks."""
        watches = list(self._watches)
        for sub in watches:
            sub.queue.put_nowait(_Bookmark(self.store.rv))
        return len(watches)

    def fail_next(self, n: int = 1, status: int = 500, *, when: Callable[[RequestRecord], bool] | None = None) -> None:
        """Answer the next `n` requests (those `when` accepts) with `status` and a Status body."""
        self._fail.append((n, status, when))

    def on_request(self, hook: Callable[[RequestRecord], None]) -> Callable[[], None]:
        """Call `hook(record)` as each request arrives, before it is served (to change the store at an
        exact point, e.g. between two pages of a LIST). Returns a function that removes the hook."""
        self._request_hooks.append(hook)
        return lambda: self._request_hooks.remove(hook) if hook in self._request_hooks else None

    def clear_failures(self) -> None:
        """Forget failures `fail_next` still has queued."""
        self._fail.clear()

    def compact(self, rv: int | None = None) -> None:
        """Forget history up to `rv` (default: now): older watch versions get ERROR 410 Expired."""
        self.store.compact(rv)

    @property
    def open_watches(self) -> int:
        return len(self._watches)

    def watch_count(self, plural: str) -> int:
        return sum(1 for sub in self._watches if sub.resource.plural == plural)

    # ---- CRDs
    def install_gateway_api(self, kinds: Iterable[str] = GATEWAY_KINDS, *,
                            versions: Mapping[str, Sequence[str]] | None = None) -> None:
        """Install the Gateway API CRDs of `kinds` (all four by default), each served at every version its
        standard CRD serves unless `versions` names fewer (e.g. {"ReferenceGrant": ["v1beta1"]}, an older
        bundle). Called again, it updates them: watches of a version no longer served end."""
        for kind in kinds:
            resource = BY_KIND[kind]
            self.store.install(resource, tuple((versions or {}).get(kind, resource.all_versions)))
        for sub in list(self._watches):
            if sub.resource.crd and sub.version not in self.store.served_versions(sub.resource):
                sub.queue.put_nowait(_END)

    def install_policies(self, kinds: Iterable[str] = POLICY_KINDS) -> None:
        """Install the traffic policy CRDs: ours (pyngress.dev/v1alpha1) and the Gateway API's BackendTLSPolicy."""
        self.install_gateway_api(kinds)

    def uninstall_gateway_api(self, kinds: Iterable[str] = GATEWAY_KINDS) -> None:
        """Delete the Gateway API CRDs of `kinds`: their objects are deleted (watches see DELETED), their
        watches end, and they are no longer served (404, gone from discovery)."""
        for kind in kinds:
            resource = BY_KIND[kind]
            self.store.uninstall(resource)
            for sub in list(self._watches):
                if sub.resource == resource:
                    sub.queue.put_nowait(_END)

    def served(self, kind: str) -> tuple[str, ...]:
        """The versions `kind` is served at now."""
        return self.store.served_versions(BY_KIND[kind])

    # ---- direct object access for test setup (same store, same versions and events as the HTTP API)
    def create(self, obj: Obj) -> Obj:
        resource = BY_KIND[obj["kind"]]
        namespace = obj.get("metadata", {}).get("namespace", "") if resource.namespaced else ""
        return self.store.create(resource, namespace, obj)

    def apply(self, obj: Obj) -> Obj:
        """Create, or replace whatever is stored (status included, as a controller would)."""
        resource = BY_KIND[obj["kind"]]
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace", "") if resource.namespaced else ""
        try:
            self.store.get(resource, namespace, meta["name"])
        except ApiError:
            created = self.store.create(resource, namespace, obj)
            if resource.status and "status" in obj:
                return self.store.replace(resource, namespace, meta["name"], obj, subresource="status")
            return created
        body = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
        result = self.store.replace(resource, namespace, meta["name"], body)
        if resource.status and "status" in obj:
            result = self.store.replace(resource, namespace, meta["name"], body, subresource="status")
        return result

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        return self.store.get(BY_KIND[kind], namespace, name)

    def patch(self, kind: str, namespace: str, name: str, patch: Obj, *, subresource: str = "") -> Obj:
        """A merge patch of the object (subresource "status": of its status only), as a client's PATCH."""
        return self.store.patch(BY_KIND[kind], namespace, name, patch, subresource=subresource)

    def delete(self, kind: str, namespace: str, name: str) -> Obj:
        return self.store.delete(BY_KIND[kind], namespace, name)

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return self.store.list(BY_KIND[kind], namespace, lambda obj: True)[0]

    # ---- HTTP
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if self.token is not None:
                self.authorizations.append(request.headers.get("Authorization", ""))
                if request.headers.get("Authorization") != f"Bearer {self.token}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
            if self._is_discovery(request.path):
                self.discovery_requests.append(request.path)
                group = request.path.split("/")[2] if request.path.startswith("/apis/") else ""
                self._maybe_fail(RequestRecord("get", group, "", "", "", path=request.path))
                return _json_response(self._discovery(request.path))
            resource, namespace, name, subresource, version = self._route(request.path)
            record = RequestRecord(self._verb(request, name), resource.group,
                                   f"{resource.plural}/{subresource}" if subresource else resource.plural,
                                   namespace or "", name, request.query.get("resourceVersion", ""),
                                   request.query.get("labelSelector", ""), request.query.get("fieldSelector", ""),
                                   request.query.get("limit", ""), request.query.get("continue", ""))
            self.requests.append(record)  # authorized (and so recorded) before it is found to exist
            for hook in list(self._request_hooks):
                hook(record)
            self._maybe_fail(record)
            if version not in self.store.served_versions(resource):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if record.verb == "watch":
                return await self._watch(request, resource, namespace, version)
            body, status = await self._serve(request, record.verb, resource, namespace, name, subresource, version)
            return _json_response(body, status)
        except ApiError as err:
            return _json_response(err.status(), err.code)

    def _maybe_fail(self, record: RequestRecord) -> None:
        for i, (n, status, when) in enumerate(self._fail):
            if when is None or when(record):
                if n <= 1:
                    del self._fail[i]
                else:
                    self._fail[i] = (n - 1, status, when)
                raise ApiError(status, "InternalError" if status >= 500 else "Failure",
                               f"injected failure {status} for {record.verb} {record.resource}")

    @staticmethod
    def _is_discovery(path: str) -> bool:
        parts = [p for p in path.split("/") if p]
        return (parts in (["api"], ["apis"], ["version"]) or (len(parts) == 2 and parts[0] in ("api", "apis"))
                or (len(parts) == 3 and parts[0] == "apis"))

    def _group_versions(self) -> dict[str, list[str]]:
        """Group -> versions served now, preferred first ("" = core)."""
        found: dict[str, list[str]] = {}
        for resource in RESOURCES:
            versions = found.setdefault(resource.group, [])
            for version in self.store.served_versions(resource):
                if version not in versions:
                    versions.append(version)
        return {group: versions for group, versions in found.items() if versions}

    def _discovery(self, path: str) -> Any:
        parts = [p for p in path.split("/") if p]
        groups = self._group_versions()
        if parts == ["version"]:
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0-kubeapi-emulator"}
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": groups[""], "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [_api_group(group, groups[group]) for group in sorted(groups) if group]}
        if parts[0] == "api":
            group, version = "", parts[1]
        elif len(parts) == 2:
            if parts[1] not in groups or not parts[1]:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(parts[1], groups[parts[1]])}
        else:
            group, version = parts[1], parts[2]
        if version not in groups.get(group, ()):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resources: list[dict[str, Any]] = []
        for resource in RESOURCES:
            if resource.group == group and version in self.store.served_versions(resource):
                entry: dict[str, Any] = {"name": resource.plural, "singularName": resource.kind.lower(),
                                         "namespaced": resource.namespaced, "kind": resource.kind, "verbs": list(VERBS)}
                if resource.short_names:
                    entry["shortNames"] = list(resource.short_names)
                if resource.categories:
                    entry["categories"] = list(resource.categories)
                resources.append(entry)
                if resource.status:
                    resources.append({"name": f"{resource.plural}/status", "singularName": "",
                                      "namespaced": resource.namespaced, "kind": resource.kind,
                                      "verbs": list(STATUS_VERBS)})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}

    def _route(self, path: str) -> tuple[Resource, str | None, str, str, str]:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        # /api/v1/namespaces/<name>/status is the Namespace's own subresource, not a resource in it.
        if len(rest) >= 3 and rest[0] == "namespaces" and not (group == "" and rest[2:] == ["status"]):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource = BY_GROUP_PLURAL.get((group, rest[0]))
        if (resource is None or version not in resource.all_versions
                or (namespace is not None and not resource.namespaced)):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and not (subresource == "status" and resource.status):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not resource.namespaced:
            namespace = ""
        return resource, namespace, name, subresource, version

    @staticmethod
    def _verb(request: web.Request, name: str) -> str:
        method = request.method
        if method == "GET":
            if name:
                return "get"
            return "watch" if _truthy(request.query.get("watch")) else "list"
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        if method not in verbs:
            raise ApiError(405, "MethodNotAllowed", f"method {method} not allowed")
        return verbs[method]

    async def _body(self, request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError as err:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {err}") from None

    async def _serve(self, request: web.Request, verb: str, resource: Resource, namespace: str | None,
                     name: str, subresource: str, version: str) -> tuple[Any, int]:
        store = self.store
        if verb == "list":
            return self._list(request, resource, namespace, version), 200
        if namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if verb == "get":
            return _at(resource, version, store.get(resource, namespace, name)), 200
        if verb == "create":
            if name:
                raise ApiError(405, "MethodNotAllowed", "POST to a named object is not allowed")
            return _at(resource, version, store.create(resource, namespace, await self._body(request))), 201
        if not name:
            raise ApiError(405, "MethodNotAllowed", f"{verb} needs an object name")
        if verb == "update":
            updated = store.replace(resource, namespace, name, await self._body(request), subresource=subresource)
            return _at(resource, version, updated), 200
        if verb == "patch":
            content_type = request.headers.get("Content-Type", "")
            if content_type not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                raise ApiError(415, "UnsupportedMediaType", f"the emulator does not support {content_type!r} patches")
            if resource.crd and content_type == "application/strategic-merge-patch+json":
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: application/json-patch+json, "
                               "application/merge-patch+json, application/apply-patch+yaml")
            patched = store.patch(resource, namespace, name, await self._body(request), subresource=subresource)
            return _at(resource, version, patched), 200
        return _at(resource, version, store.delete(resource, namespace, name)), 200

    def _list(self, request: web.Request, resource: Resource, namespace: str | None, version: str) -> dict[str, Any]:
        query = request.query
        matches = self._filter(request, resource)
        limit = _limit(query.get("limit"))
        token = query.get("continue", "")
        metadata: dict[str, Any] = {}
        if not token and not limit:
            shared, rv = self.store.list_shared(resource, namespace, matches)
        else:
            if token:
                if query.get("resourceVersion"):
                    raise ApiError(400, "BadRequest", "specifying resource version is not allowed when using continue")
                rv, after = _decode_continue(token)
                if rv == 0:  # the inconsistent token of a 410: what is there now, after the key
                    rv = self.store.rv
                try:
                    entries = self.store.list_at(resource, namespace, matches, rv)
                except ApiError as err:
                    if err.code != 410:
                        raise
                    raise ApiError(410, "Expired", EXPIRED_CONTINUE,
                                   continue_token=_encode_continue(0, after)) from None
                entries = [entry for entry in entries if entry[0] > after]
            else:
                rv = self.store.rv
                entries = self.store.list_at(resource, namespace, matches, rv)
            page = entries[:limit] if limit else entries
            if len(page) < len(entries):
                metadata["continue"] = _encode_continue(rv, page[-1][0])
                if not query.get("labelSelector") and not query.get("fieldSelector"):
                    # Unknown (left out) when a selector filters the list, as the real server does.
                    metadata["remainingItemCount"] = len(entries) - len(page)
            shared = [obj for _, obj in page]
        if resource.crd:
            # Custom resource list items keep kind and apiVersion (at the version asked for).
            items = [_at(resource, version, item) for item in shared]
        else:
            # Built-in list items carry no kind/apiVersion; shallow copies, as the response is serialised at once.
            items = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in shared]
        return {"kind": f"{resource.kind}List", "apiVersion": resource.api_version_at(version),
                "metadata": {"resourceVersion": str(rv), **metadata}, "items": items}

    @staticmethod
    def _filter(request: web.Request, resource: Resource) -> Callable[[Obj], bool]:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), resource.fields)
        return object_filter(labels, fields)

    async def _watch(self, request: web.Request, resource: Resource, namespace: str | None,
                     version: str) -> web.StreamResponse:
        matches = self._filter(request, resource)
        query = request.query
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        raw_rv = query.get("resourceVersion", "")
        try:
            since = int(raw_rv) if raw_rv not in ("", "0") else None
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resource version: {raw_rv!r}") from None

        def visible(obj: Obj) -> bool:
            return namespace is None or obj["metadata"].get("namespace", "") == namespace

        # Decide what to replay before yielding to the loop, so no change can fall between replay and live.
        expired: ApiError | None = None
        replay: list[tuple[str, Obj]] = []
        if since is None:
            items, _ = self.store.list(resource, namespace, matches)
            replay = [("ADDED", obj) for obj in items]
        else:
            try:
                for change in self.store.changes_since(resource, since):
                    event = self._translate(change, visible, matches)
                    if event:
                        replay.append(event)
            except ApiError as err:
                expired = err
        sub = self.store.subscribe(resource, version)
        self._watches.add(sub)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await response.prepare(request)
            if expired is not None:
                # What a real API server does for a compacted version: HTTP 200 and one ERROR event.
                await response.write(_dumps({"type": "ERROR", "object": expired.status()}) + b"\n")
                await response.write_eof()
                return response
            for type_, obj in replay:
                await response.write(_dumps({"type": type_, "object": _at(resource, version, obj)}) + b"\n")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout is not None else None
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                wait = next_bookmark - loop.time() if bookmarks else None
                if deadline is not None:
                    left = deadline - loop.time()
                    wait = left if wait is None else min(wait, left)
                try:
                    item = await asyncio.wait_for(sub.queue.get(), timeout=max(wait, 0) if wait is not None else None)
                except TimeoutError:
                    now = loop.time()
                    if deadline is not None and now >= deadline:
                        if bookmarks:  # the real server sends a last bookmark just before timing out
                            await response.write(self._bookmark(resource, version, self.store.rv))
                        break
                    await response.write(self._bookmark(resource, version, self.store.rv))
                    next_bookmark = now + self.bookmark_interval
                    continue
                if item is _DROP:
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                if item is _END:
                    break
                if isinstance(item, _Bookmark):
                    if bookmarks:
                        await response.write(self._bookmark(resource, version, item.rv))
                    continue
                event = self._translate(item, visible, matches)
                if event:
                    await response.write(_dumps({"type": event[0], "object": _at(resource, version, event[1])}) + b"\n")
            await response.write_eof()
            return response
        except (ConnectionResetError, ConnectionError):
            return response
        finally:
            self._watches.discard(sub)
            self.store.unsubscribe(sub)

    @staticmethod
    def _bookmark(resource: Resource, version: str, rv: int) -> bytes:
        obj = {"kind": resource.kind, "apiVersion": resource.api_version_at(version),
               "metadata": {"resourceVersion": str(rv)}}
        return _dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    @staticmethod
    def _translate(change: Change, visible: Callable[[Obj], bool],
                   matches: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
        """The event one watch sees: selector changes turn MODIFIED into ADDED or DELETED, as the watch cache does."""
        if not visible(change.obj):
            return None
        now = matches(change.obj) if change.type != "DELETED" else False
        before = change.old is not None and matches(change.old)
        if change.type == "DELETED":
            return ("DELETED", change.obj) if before else None
        if now and before:
            return "MODIFIED", change.obj
        if now:
            return "ADDED", change.obj
        if before:
            # Relabelled out of the selector: DELETED carrying the old object at the new version.
            old = dict(change.old)
            old["metadata"] = {**old["metadata"], "resourceVersion": str(change.rv)}
            return "DELETED", old
        return None
