"""The emulator against the real kubernetes_asyncio client over a socket."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import (
    ApiClient,
    Configuration,
    CoordinationV1Api,
    CoreV1Api,
    DiscoveryV1Api,
    NetworkingV1Api,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
)
from kubernetes_asyncio.client.exceptions import ApiException

from kubeapi import KubeApiServer
from kubeapi.errors import ApiError
from kubeapi.selectors import object_filter, parse_field_selector, parse_label_selector

WAIT = 10.0  # bound for every network wait


def ingress(name: str, namespace: str = "default", *, labels: dict[str, str] | None = None,
            host: str = "a.test") -> dict:
    return {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"rules": [{"host": host}]}}


def secret(name: str, namespace: str = "default", type_: str = "kubernetes.io/tls") -> dict:
    return {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "namespace": namespace},
            "type": type_, "data": {}}


async def collect(stream: Any, count: int) -> list[dict]:
    """The next `count` events of a Watch stream, as (type, raw object)."""
    events = []
    async with asyncio.timeout(WAIT):
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


async def watching(server: KubeApiServer, stream: Any, count: int) -> asyncio.Task:
    """Start collecting `count` events and return once the server holds the watch open (streams are lazy)."""
    before = server.open_watches
    task = asyncio.ensure_future(collect(stream, count))
    await until(lambda: server.open_watches > before or task.done())
    return task


async def until(predicate: Any) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.01)


# ---- list, get, create, replace

async def test_list_carries_resource_version_and_items_without_kind(kube_api: KubeApiServer,
                                                                    api_client: ApiClient) -> None:
    kube_api.create(ingress("a", "one"))
    kube_api.create(ingress("b", "two"))
    api = NetworkingV1Api(api_client)
    everything = await api.list_ingress_for_all_namespaces()
    assert [i.metadata.name for i in everything.items] == ["a", "b"]
    assert everything.metadata.resource_version == "2"
    response = await api.list_namespaced_ingress("two", _preload_content=False)
    raw = await response.json()
    assert raw["kind"] == "IngressList" and raw["metadata"]["resourceVersion"] == "2"
    assert [i["metadata"]["name"] for i in raw["items"]] == ["b"]
    assert "kind" not in raw["items"][0] and "apiVersion" not in raw["items"][0]


async def test_cluster_scoped_ingress_class(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.create({"kind": "IngressClass", "apiVersion": "networking.k8s.io/v1",
                     "metadata": {"name": "pyngress"}, "spec": {"controller": "pyngress.dev/ingress-controller"}})
    classes = await NetworkingV1Api(api_client).list_ingress_class()
    assert [c.spec.controller for c in classes.items] == ["pyngress.dev/ingress-controller"]
    assert classes.items[0].metadata.namespace is None


async def test_get_missing_is_a_404_status(api_client: ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        await NetworkingV1Api(api_client).read_namespaced_ingress("nope", "default")
    assert err.value.status == 404
    assert '"reason":"NotFound"' in err.value.body


async def test_create_assigns_versions_and_rejects_name_clash(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    first = await api.create_namespaced_ingress("default", ingress("a"))
    second = await api.create_namespaced_ingress("default", ingress("b"))
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert first.metadata.uid and first.metadata.generation == 1
    with pytest.raises(ApiException) as err:
        await api.create_namespaced_ingress("default", ingress("a"))
    assert err.value.status == 409
    with pytest.raises(ApiException) as err:
        await api.create_namespaced_ingress("other", ingress("c", "default"))
    assert err.value.status == 400


async def test_replace_with_stale_version_conflicts(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    created = (await api.create_namespaced_ingress("default", ingress("a"), _preload_content=False))
    body = await created.json()
    body["spec"]["rules"][0]["host"] = "b.test"
    replaced = await api.replace_namespaced_ingress("a", "default", body)
    assert replaced.spec.rules[0].host == "b.test" and replaced.metadata.generation == 2
    body["spec"]["rules"][0]["host"] = "c.test"  # still the old resourceVersion
    with pytest.raises(ApiException) as err:
        await api.replace_namespaced_ingress("a", "default", body)
    assert err.value.status == 409
    assert kube_api.get("Ingress", "default", "a")["spec"]["rules"][0]["host"] == "b.test"


async def test_noop_replace_does_not_bump_version(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    stored = kube_api.create(ingress("a"))
    again = await NetworkingV1Api(api_client).replace_namespaced_ingress("a", "default", stored)
    assert again.metadata.resource_version == stored["metadata"]["resourceVersion"]
    assert kube_api.store.rv == 1


# ---- status subresource

async def test_status_subresource_changes_only_status(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    stored = kube_api.create(ingress("a"))
    body = {**stored, "spec": {"rules": [{"host": "changed.test"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    result = await api.replace_namespaced_ingress_status("a", "default", body)
    assert result.status.load_balancer.ingress[0].ip == "192.0.2.10"
    assert result.spec.rules[0].host == "a.test"  # spec untouched through /status
    current = kube_api.get("Ingress", "default", "a")
    # The main resource ignores status changes.
    current["status"] = {"loadBalancer": {"ingress": [{"hostname": "lb.test"}]}}
    current["spec"]["rules"][0]["host"] = "b.test"
    result = await api.replace_namespaced_ingress("a", "default", current)
    assert result.spec.rules[0].host == "b.test"
    assert result.status.load_balancer.ingress[0].ip == "192.0.2.10"
    patched = await api.patch_namespaced_ingress_status(
        "a", "default", {"status": {"loadBalancer": {"ingress": [{"hostname": "lb.test"}]}}})
    assert patched.status.load_balancer.ingress[0].hostname == "lb.test"
    assert kube_api.requests[-1].resource == "ingresses/status" and kube_api.requests[-1].verb == "patch"


async def test_create_drops_status(kube_api: KubeApiServer) -> None:
    created = kube_api.create({**ingress("a"), "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
    assert "status" not in created


# ---- watch

async def test_watch_resumes_after_version_in_order(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    kube_api.create(ingress("a"))
    listed = await api.list_ingress_for_all_namespaces()
    version = listed.metadata.resource_version
    kube_api.create(ingress("b"))
    kube_api.apply(ingress("a", host="a2.test"))
    kube_api.delete("Ingress", "default", "b")
    async with watch.Watch() as w:
        events = await collect(w.stream(api.list_ingress_for_all_namespaces, resource_version=version,
                                        timeout_seconds=5), 3)
        assert [(e["type"], e["raw_object"]["metadata"]["name"]) for e in events] == [
            ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
        versions = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in events]
        assert versions == sorted(versions) and versions[0] > int(version)
        assert w.resource_version == str(versions[-1])


async def test_watch_streams_live_changes(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = CoreV1Api(api_client)
    async with watch.Watch() as w:
        stream = w.stream(api.list_namespaced_secret, "default", resource_version="0", timeout_seconds=5)
        task = await watching(kube_api, stream, 2)
        kube_api.create(secret("s1"))
        kube_api.create(secret("s2", "elsewhere"))  # another namespace: not on this watch
        kube_api.create(secret("s3"))
        events = await task
    assert [e["raw_object"]["metadata"]["name"] for e in events] == ["s1", "s3"]


async def test_watch_without_version_starts_with_current_objects(kube_api: KubeApiServer,
                                                                 api_client: ApiClient) -> None:
    kube_api.create(ingress("a"))
    api = NetworkingV1Api(api_client)
    async with watch.Watch() as w:
        events = await collect(w.stream(api.list_ingress_for_all_namespaces, timeout_seconds=5), 1)
    assert events[0]["type"] == "ADDED" and events[0]["raw_object"]["metadata"]["name"] == "a"


async def test_bookmarks_on_demand_and_periodic(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    kube_api.create(ingress("a"))
    async with watch.Watch() as w:
        stream = w.stream(api.list_ingress_for_all_namespaces, resource_version="1", allow_watch_bookmarks=True,
                          timeout_seconds=5)
        task = await watching(kube_api, stream, 1)
        kube_api.create(secret("elsewhere"))  # advances the global version without an Ingress event
        kube_api.send_bookmarks()
        (event,) = await task
        assert event["type"] == "BOOKMARK"
        assert event["raw_object"] == {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
                                       "metadata": {"resourceVersion": "2"}}
        assert w.resource_version == "2"
    kube_api.bookmark_interval = 0.05
    async with watch.Watch() as w:
        stream = w.stream(api.list_ingress_for_all_namespaces, resource_version="2", allow_watch_bookmarks=True,
                          timeout_seconds=5)
        events = await collect(stream, 2)
        assert [e["type"] for e in events] == ["BOOKMARK", "BOOKMARK"]


async def test_no_bookmarks_unless_allowed(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.bookmark_interval = 0.01
    api = NetworkingV1Api(api_client)
    async with watch.Watch() as w:
        stream = w.stream(api.list_ingress_for_all_namespaces, resource_version="0", timeout_seconds=5)
        task = await watching(kube_api, stream, 1)
        kube_api.send_bookmarks()
        kube_api.create(ingress("a"))
        (event,) = await task
    assert event["type"] == "ADDED"


async def test_timeout_seconds_ends_the_stream(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    async with watch.Watch() as w:
        async with asyncio.timeout(WAIT):
            events = [e async for e in w.stream(api.list_ingress_for_all_namespaces, resource_version="0",
                                                 timeout_seconds=1)]
    assert events == []
    assert kube_api.open_watches == 0


async def test_compacted_version_raises_410(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.create(ingress("a"))
    kube_api.create(ingress("b"))
    kube_api.compact()
    api = NetworkingV1Api(api_client)
    async with watch.Watch() as w:
        with pytest.raises(ApiException) as err:
            await collect(w.stream(api.list_ingress_for_all_namespaces, resource_version="1", timeout_seconds=5), 1)
    assert err.value.status == 410 and "Expired" in err.value.reason
    # The current version is still watchable after compaction.
    async with watch.Watch() as w:
        stream = w.stream(api.list_ingress_for_all_namespaces, resource_version="2", timeout_seconds=5)
        task = await watching(kube_api, stream, 1)
        kube_api.create(ingress("c"))
        (event,) = await task
    assert event["raw_object"]["metadata"]["name"] == "c"


# ---- paginated LIST (limit and continue)

async def list_page(api: NetworkingV1Api, **query: Any) -> dict:
    response = await api.list_ingress_for_all_namespaces(_preload_content=False, **query)
    return await response.json()


async def test_paginated_list_is_consistent_at_the_first_pages_version(kube_api: KubeApiServer,
                                                                       api_client: ApiClient) -> None:
    for name in "abcdefg":
        kube_api.create(ingress(name, "one" if name < "d" else "two"))
    api = NetworkingV1Api(api_client)
    first = await list_page(api, limit=3)
    version = first["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b", "c"]
    assert first["metadata"]["remainingItemCount"] == 4 and first["metadata"]["continue"]
    # Writes between pages do not show: every page is the list as it was at the first page's version.
    kube_api.delete("Ingress", "two", "e")
    kube_api.create(ingress("dd", "two"))
    kube_api.apply(ingress("f", "two", host="changed.test"))
    second = await list_page(api, limit=3, _continue=first["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in second["items"]] == ["d", "e", "f"]
    assert second["items"][2]["spec"]["rules"][0]["host"] == "a.test"
    assert second["metadata"]["resourceVersion"] == version and second["metadata"]["remainingItemCount"] == 1
    last = await list_page(api, limit=3, _continue=second["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in last["items"]] == ["g"]
    assert last["metadata"] == {"resourceVersion": version}  # no continue, no remainingItemCount
    now = await list_page(api)  # an unpaginated list is the present
    assert [i["metadata"]["name"] for i in now["items"]] == ["a", "b", "c", "d", "dd", "f", "g"]
    assert now["metadata"]["resourceVersion"] == str(kube_api.store.rv)
    assert [(r.limit, bool(r.continue_token)) for r in kube_api.requests if r.verb == "list"] == [
        ("3", False), ("3", True), ("3", True), ("", False)]


async def test_paginated_list_with_a_selector_has_no_remaining_count(kube_api: KubeApiServer,
                                                                    api_client: ApiClient) -> None:
    for name in "abcd":
        kube_api.create(ingress(name, labels={"app": "web"} if name != "b" else {}))
    api = NetworkingV1Api(api_client)
    first = await list_page(api, limit=2, label_selector="app=web")
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "c"]
    assert first["metadata"]["continue"] and "remainingItemCount" not in first["metadata"]
    rest = await list_page(api, limit=2, label_selector="app=web", _continue=first["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in rest["items"]] == ["d"] and "continue" not in rest["metadata"]
    # A limit as large as the list: one page, no token.
    whole = await list_page(api, limit=10)
    assert len(whole["items"]) == 4 and "continue" not in whole["metadata"]


async def test_expired_continue_token_is_410_with_an_inconsistent_token(kube_api: KubeApiServer,
                                                                       api_client: ApiClient) -> None:
    for name in "abcd":
        kube_api.create(ingress(name))
    api = NetworkingV1Api(api_client)
    first = await list_page(api, limit=2)
    kube_api.delete("Ingress", "default", "c")
    kube_api.compact()  # the first page's version is gone
    with pytest.raises(ApiException) as err:
        await api.list_ingress_for_all_namespaces(limit=2, _continue=first["metadata"]["continue"])
    assert err.value.status == 410
    status = json.loads(err.value.body)
    assert status["reason"] == "Expired" and "too old to display a consistent list" in status["message"]
    # Its token continues from the same key, but from the present (c is gone).
    rest = await list_page(api, limit=2, _continue=status["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in rest["items"]] == ["d"]
    assert rest["metadata"]["resourceVersion"] == str(kube_api.store.rv)


async def test_bad_continue_requests_are_400(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    for name in "abc":
        kube_api.create(ingress(name))
    api = NetworkingV1Api(api_client)
    first = await list_page(api, limit=1)
    with pytest.raises(ApiException) as err:
        await api.list_ingress_for_all_namespaces(limit=1, _continue="not-a-token")
    assert err.value.status == 400 and "continue key is not valid" in err.value.body
    with pytest.raises(ApiException) as err:
        await api.list_ingress_for_all_namespaces(limit=1, _continue=first["metadata"]["continue"],
                                                  resource_version="1")
    assert err.value.status == 400 and "resource version is not allowed" in err.value.body
    response = await api.list_ingress_for_all_namespaces(_preload_content=False, limit="x")
    assert response.status == 400 and "invalid limit" in await response.text()
    response.release()


# ---- selectors

async def test_label_selectors_on_list(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.create(ingress("a", labels={"app": "web", "tier": "front"}))
    kube_api.create(ingress("b", labels={"app": "api"}))
    kube_api.create(ingress("c"))
    api = NetworkingV1Api(api_client)

    async def names(selector: str) -> list[str]:
        found = await api.list_ingress_for_all_namespaces(label_selector=selector)
        return [i.metadata.name for i in found.items]

    assert await names("app=web") == ["a"]
    assert await names("app==web") == ["a"]
    assert await names("app!=web") == ["b", "c"]
    assert await names("app in (web, api)") == ["a", "b"]
    assert await names("app notin (web)") == ["b", "c"]
    assert await names("tier") == ["a"]
    assert await names("!tier") == ["b", "c"]
    assert await names("app in (web,api),!tier") == ["b"]
    with pytest.raises(ApiException) as err:
        await names("app in web")
    assert err.value.status == 400


async def test_field_selectors(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.create(secret("tls-a", "one"))
    kube_api.create(secret("opaque", "one", "Opaque"))
    kube_api.create(secret("tls-b", "two"))
    api = CoreV1Api(api_client)

    async def names(selector: str) -> list[str]:
        found = await api.list_secret_for_all_namespaces(field_selector=selector)
        return [s.metadata.name for s in found.items]

    assert await names("type=kubernetes.io/tls") == ["tls-a", "tls-b"]
    assert await names("type!=kubernetes.io/tls") == ["opaque"]
    assert await names("metadata.namespace=two") == ["tls-b"]
    assert await names("metadata.name=tls-a,type=kubernetes.io/tls") == ["tls-a"]
    with pytest.raises(ApiException) as err:
        await NetworkingV1Api(api_client).list_ingress_for_all_namespaces(field_selector="type=x")
    assert err.value.status == 400 and "field label not supported" in err.value.body


async def test_watch_sees_relabelling_as_delete_and_add(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.create(ingress("a", labels={"app": "web"}))
    api = NetworkingV1Api(api_client)
    async with watch.Watch() as w:
        stream = w.stream(api.list_ingress_for_all_namespaces, label_selector="app=web", resource_version="1",
                          timeout_seconds=5)
        task = await watching(kube_api, stream, 2)
        kube_api.apply(ingress("a", labels={"app": "other"}))
        kube_api.apply(ingress("a", labels={"app": "web"}))
        events = await task
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    assert events[0]["raw_object"]["metadata"]["labels"] == {"app": "web"}  # the old labels
    assert events[0]["raw_object"]["metadata"]["resourceVersion"] == "2"


async def test_watch_field_selector_for_secrets(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = CoreV1Api(api_client)
    async with watch.Watch() as w:
        stream = w.stream(api.list_secret_for_all_namespaces, field_selector="type=kubernetes.io/tls",
                          resource_version="0", timeout_seconds=5)
        task = await watching(kube_api, stream, 1)
        kube_api.create(secret("opaque", type_="Opaque"))
        kube_api.create(secret("tls"))
        (event,) = await task
    assert event["raw_object"]["metadata"]["name"] == "tls"


def test_selector_parsing() -> None:
    labels = parse_label_selector("a=1, b!=2,c in (x, y),d notin (z),e,!f")
    match = object_filter(labels, ())
    assert match({"metadata": {"labels": {"a": "1", "c": "x", "e": ""}}})
    assert not match({"metadata": {"labels": {"a": "1", "b": "2", "c": "x", "e": ""}}})
    assert not match({"metadata": {"labels": {"a": "1", "c": "x", "e": "", "f": "1"}}})
    assert not match({"metadata": {"labels": {"a": "1", "c": "x", "d": "z", "e": ""}}})
    assert not match({"metadata": {}})
    with pytest.raises(ApiError):
        parse_field_selector("spec.foo=1", ())
    fields = parse_field_selector("metadata.name=n", ())
    assert object_filter((), fields)({"metadata": {"name": "n"}})


# ---- leases and events

def lease_body(holder: str, renew: datetime, *, version: str | None = None) -> V1Lease:
    return V1Lease(metadata=V1ObjectMeta(name="leader", namespace="pyngress", resource_version=version),
                   spec=V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15, renew_time=renew))


async def test_lease_put_conflicts_on_stale_version(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = CoordinationV1Api(api_client)
    now = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    created = await api.create_namespaced_lease("pyngress", lease_body("pod-a", now))
    assert created.spec.renew_time == now
    stale = created.metadata.resource_version
    renewed = await api.replace_namespaced_lease("leader", "pyngress", lease_body("pod-a", now, version=stale))
    assert renewed.metadata.resource_version == stale  # same content: nothing written
    newer = now.replace(second=5)
    renewed = await api.replace_namespaced_lease("leader", "pyngress", lease_body("pod-a", newer, version=stale))
    assert int(renewed.metadata.resource_version) > int(stale)
    with pytest.raises(ApiException) as err:
        await api.replace_namespaced_lease("leader", "pyngress", lease_body("pod-b", newer, version=stale))
    assert err.value.status == 409
    assert kube_api.get("Lease", "pyngress", "leader")["spec"]["holderIdentity"] == "pod-a"
    with pytest.raises(ApiException) as err:
        await api.create_namespaced_lease("pyngress", lease_body("pod-b", now))
    assert err.value.status == 409


async def test_lease_rejects_times_without_microseconds(api_client: ApiClient) -> None:
    # A datetime whose microsecond is 0 serialises without fractional digits; the real API server answers 400.
    whole_second = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    with pytest.raises(ApiException) as err:
        await CoordinationV1Api(api_client).create_namespaced_lease("pyngress", lease_body("pod-a", whole_second))
    assert err.value.status == 400


async def test_events_create_and_patch(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = CoreV1Api(api_client)
    body = {"metadata": {"generateName": "web.", "namespace": "default"},
            "involvedObject": {"kind": "Ingress", "namespace": "default", "name": "web"},
            "reason": "BadBackend", "message": "service missing", "type": "Warning", "count": 1}
    created = await api.create_namespaced_event("default", body)
    assert created.metadata.name.startswith("web.")
    patched = await api.patch_namespaced_event(created.metadata.name, "default", {"count": 2})
    assert patched.count == 2 and patched.message == "service missing"
    found = await api.list_namespaced_event("default", field_selector="involvedObject.name=web,type=Warning")
    assert [e.count for e in found.items] == [2]


# ---- failure hooks

async def test_fail_next_answers_status_errors(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    kube_api.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            await api.list_ingress_for_all_namespaces()
        assert err.value.status == 503
    await api.list_ingress_for_all_namespaces()
    kube_api.fail_next(1, status=500, when=lambda r: r.verb == "watch")
    await api.list_ingress_for_all_namespaces()  # not a watch: served
    async with watch.Watch() as w:
        with pytest.raises(ApiException) as err:
            await collect(w.stream(api.list_ingress_for_all_namespaces, resource_version="0", timeout_seconds=5), 1)
    assert err.value.status == 500


async def test_drop_watches_cuts_streams(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    async with watch.Watch() as w:
        stream = w.stream(api.list_ingress_for_all_namespaces, resource_version="0", timeout_seconds=30)
        task = await watching(kube_api, stream, 1)
        assert kube_api.drop_watches() == 1
        with pytest.raises(aiohttp.ClientError):
            await task
    async with watch.Watch() as w:
        stream = w.stream(api.list_ingress_for_all_namespaces, resource_version="0", timeout_seconds=30)
        task = await watching(kube_api, stream, 1)
        kube_api.drop_watches(abrupt=False)
        assert await task == []  # a clean end, as after timeoutSeconds


async def test_stop_and_start_keep_data_and_port(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.create(ingress("a"))
    api = NetworkingV1Api(api_client)
    url = kube_api.url
    await kube_api.stop()
    with pytest.raises(aiohttp.ClientError):
        async with asyncio.timeout(WAIT):
            await api.list_ingress_for_all_namespaces()
    await kube_api.start()
    assert kube_api.url == url
    async with asyncio.timeout(WAIT):
        listed = await api.list_ingress_for_all_namespaces()
    assert [i.metadata.name for i in listed.items] == ["a"]


async def test_loopback_endpoints_rejected_unless_allowed(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    body = {"metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.2"]}], "ports": [{"name": "", "port": 80}]}
    api = DiscoveryV1Api(api_client)
    with pytest.raises(ApiException) as err:
        await api.create_namespaced_endpoint_slice("default", body)
    assert err.value.status == 422 and "loopback" in err.value.body
    endpoints = {"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "::1"}], "ports": [{"port": 80}]}]}
    with pytest.raises(ApiException) as err:
        await CoreV1Api(api_client).create_namespaced_endpoints("default", endpoints)
    assert err.value.status == 422
    kube_api.store.allow_loopback = True
    created = await api.create_namespaced_endpoint_slice("default", body)
    assert created.endpoints[0].addresses == ["127.0.0.2"]


async def test_requests_are_recorded_as_rbac_sees_them(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = NetworkingV1Api(api_client)
    await api.list_namespaced_ingress("default")
    with pytest.raises(ApiException):
        await api.read_namespaced_ingress("x", "default")
    await CoordinationV1Api(api_client).list_namespaced_lease("pyngress")
    assert [(r.verb, r.group, r.resource, r.namespace) for r in kube_api.requests] == [
        ("list", "networking.k8s.io", "ingresses", "default"),
        ("get", "networking.k8s.io", "ingresses", "default"),
        ("list", "coordination.k8s.io", "leases", "pyngress"),
    ]


async def test_discovery_and_unknown_paths(kube_api: KubeApiServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{kube_api.url}/apis") as response:
            groups = {g["name"] for g in (await response.json())["groups"]}
        assert {"networking.k8s.io", "discovery.k8s.io", "coordination.k8s.io"} <= groups
        async with session.get(f"{kube_api.url}/api") as response:
            assert (await response.json())["versions"] == ["v1"]
        async with session.get(f"{kube_api.url}/apis/apps/v1/deployments") as response:
            assert response.status == 404 and (await response.json())["kind"] == "Status"


async def test_bearer_token_required_when_set(kube_api: KubeApiServer) -> None:
    kube_api.token = "secret-token"
    config = Configuration(host=kube_api.url)
    async with ApiClient(config) as client:
        with pytest.raises(ApiException) as err:
            await NetworkingV1Api(client).list_ingress_class()
        assert err.value.status == 401
    config = Configuration(host=kube_api.url, api_key={"BearerToken": "secret-token"},
                           api_key_prefix={"BearerToken": "Bearer"})
    async with ApiClient(config) as client:
        await NetworkingV1Api(client).list_ingress_class()
    assert kube_api.authorizations[-1] == "Bearer secret-token"
