"""The cluster watch: real watcher + real ObjectCache + real kubernetes_asyncio client against the emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer, RequestRecord
from proxy.kube.cache import KINDS, ObjectCache
from proxy.kube.client import Backoff
from proxy.kube.watch import MAX_LIST_RESTARTS, run_cluster_source
from proxy.kube.watch_status import WatchStatus
from proxy.settings import Settings

from .objects import (
    endpoint_slice,
    endpoints,
    ingress,
    ingress_class,
    service,
    tls_secret,
)
from .watching import FAST, INGRESS_KINDS, WAIT, Running, Start, eventually  # noqa: F401  (imported from here too)


def seed(kube_api: KubeApiServer, namespace: str = "default") -> None:
    kube_api.apply(ingress_class())
    kube_api.create(ingress("web", namespace, tls_secret="web-tls"))
    kube_api.create(service("web", namespace))
    kube_api.create(endpoint_slice("web", namespace, addresses=["127.0.0.2", "127.0.0.3"]))
    kube_api.create(endpoints("legacy", namespace, addresses=["127.0.0.4"]))
    kube_api.create(tls_secret("web-tls", namespace))
    kube_api.create(tls_secret("opaque", namespace, type_="Opaque"))


def calls(kube_api: KubeApiServer, verb: str, resource: str) -> list:
    return [r for r in kube_api.requests if r.verb == verb and r.resource == resource]


# ---- initial sync and following changes

async def test_initial_sync_fills_the_cache(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    running = await start()
    cache = running.cache
    assert cache.synced and running.status.synced
    assert cache.get("Ingress", "default", "web")["spec"]["tls"][0]["secretName"] == "web-tls"
    assert cache.get("IngressClass", "", "pyngress") is not None
    assert cache.get("Service", "default", "web") is not None
    assert cache.get("Endpoints", "default", "legacy") is not None
    snapshot = cache.snapshot()
    assert list(snapshot.endpoint_slices[("default", "web")]) == ["web-abcde"]
    assert ("default", "web-tls") in snapshot.secrets
    # Every Secret is listed and watched, but an Opaque one nothing names is held by key only.
    assert ("default", "opaque") not in snapshot.secrets
    assert ("default", "opaque") in cache.unheld_secrets()
    # Each kind: one LIST, then a WATCH from exactly the list's version.
    for resource in ("ingresses", "ingressclasses", "services", "endpointslices", "endpoints", "secrets"):
        (listed,) = calls(kube_api, "list", resource)
        (watched,) = calls(kube_api, "watch", resource)
        assert listed.resource_version == "" and watched.resource_version == str(kube_api.store.rv)
    await eventually(lambda: all(k.connected and not k.failing for k in running.status.kinds.values()), "connected")


async def test_not_synced_until_every_kind_has_listed(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    kube_api.fail_next(10**6, 503, when=lambda r: r.verb == "list" and r.resource == "services")
    running = await start(wait=False)
    await eventually(lambda: running.status.kinds["Service"].errors_total >= 3, "service list failures")
    await eventually(lambda: all(k.synced for k in running.status.kinds.values() if k.kind != "Service"))
    assert not running.cache.synced and not running.status.synced
    assert running.status.failing_kinds() == ["Service"]
    assert "503" in running.status.kinds["Service"].last_error
    kube_api.clear_failures()
    async with asyncio.timeout(WAIT):
        await running.status.wait_synced()
    assert running.cache.synced and not running.status.failing


async def test_follows_add_modify_delete(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    running = await start()
    cache = running.cache
    changes: list[object] = []
    cache.subscribe(changes.append)
    kube_api.create(ingress("api", host="api.test"))
    await eventually(lambda: cache.get("Ingress", "default", "api") is not None, "ADDED")
    kube_api.apply(ingress("api", host="api2.test"))
    await eventually(lambda: cache.get("Ingress", "default", "api")["spec"]["rules"][0]["host"] == "api2.test",
                     "MODIFIED")
    kube_api.delete("Ingress", "default", "api")
    await eventually(lambda: cache.get("Ingress", "default", "api") is None, "DELETED")
    kube_api.apply(endpoint_slice("web", addresses=["127.0.0.9"]))

    def web_addresses() -> list:
        return [e["addresses"] for e in cache.snapshot().endpoint_slices[("default", "web")]["web-abcde"]["endpoints"]]

    await eventually(lambda: web_addresses() == [["127.0.0.9"]])
    kube_api.delete("IngressClass", "", "pyngress")
    await eventually(lambda: cache.get("IngressClass", "", "pyngress") is None)
    assert any(getattr(c, "routes", False) for c in changes)
    assert any(("default", "web") in getattr(c, "endpoints", ()) for c in changes)
    assert running.status.kinds["Ingress"].events_total == 3
    assert running.status.kinds["Ingress"].resource_version == str(kube_api.store.rv - 2)


# ---- failures: expired versions, dropped streams, outages

async def test_expired_version_relists_and_drops_objects_deleted_while_away(kube_api: KubeApiServer,
                                                                            start: Start) -> None:
    seed(kube_api)
    running = await start()
    state = running.status.kinds["Ingress"]
    kube_api.fail_next(10**6, 503, when=lambda r: r.verb == "watch" and r.resource == "ingresses")
    assert kube_api.drop_watches("ingresses") == 1
    await eventually(lambda: state.failing, "ingress watch failing")
    kube_api.delete("Ingress", "default", "web")
    kube_api.create(ingress("new", host="new.test"))
    kube_api.compact()  # history is gone: resuming from the old version answers 410
    kube_api.clear_failures()
    await eventually(lambda: state.relists_total == 1 and not state.failing, "relist")
    await eventually(lambda: state.connected)
    assert running.cache.get("Ingress", "default", "web") is None
    assert running.cache.get("Ingress", "default", "new") is not None
    assert len(calls(kube_api, "list", "ingresses")) == 2
    # Other kinds resumed from their versions without listing again.
    await eventually(lambda: not running.status.failing)
    assert len(calls(kube_api, "list", "services")) == 1
    kube_api.create(ingress("after", host="after.test"))
    await eventually(lambda: running.cache.get("Ingress", "default", "after") is not None, "watching after the relist")


async def test_dropped_watch_resumes_without_relist_or_lost_events(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    running = await start()
    state = running.status.kinds["Ingress"]
    version_before = state.resource_version
    kube_api.fail_next(10**6, 500, when=lambda r: r.verb == "watch" and r.resource == "ingresses")
    kube_api.drop_watches()
    await eventually(lambda: state.consecutive_failures >= 2, "ingress watch failing")
    assert running.cache.get("Ingress", "default", "web") is not None  # the cache keeps serving
    kube_api.create(ingress("a", host="a.test"))
    kube_api.apply(ingress("web", host="changed.test", tls_secret="web-tls"))
    kube_api.delete("Ingress", "default", "a")
    kube_api.clear_failures()
    await eventually(lambda: not state.failing and state.connected, "ingress watch back")
    await eventually(lambda: state.events_total == 3, "three events")
    cache = running.cache
    assert cache.get("Ingress", "default", "a") is None
    assert cache.get("Ingress", "default", "web")["spec"]["rules"][0]["host"] == "changed.test"
    assert state.relists_total == 0 and len(calls(kube_api, "list", "ingresses")) == 1
    # Every reconnect asked for exactly the last version seen: nothing replayed twice, nothing skipped.
    resumed = calls(kube_api, "watch", "ingresses")[1:]
    assert len(resumed) >= 2 and {r.resource_version for r in resumed} == {version_before}
    assert state.resource_version == str(kube_api.store.rv)


async def test_outage_keeps_the_cache_and_recovers(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    running = await start()
    status = running.status
    before = running.cache.snapshot()
    await kube_api.stop()
    await eventually(lambda: all(k.consecutive_failures >= 2 for k in status.kinds.values()), "every watch failing")
    assert status.failing and not any(k.connected for k in status.kinds.values())
    assert status.errors_total >= 12
    assert running.cache.snapshot().ingresses == before.ingresses and running.cache.synced
    kube_api.create(ingress("during", host="during.test"))  # written while the API server was "down"
    kube_api.delete("Service", "default", "web")
    await kube_api.start()
    await eventually(lambda: not status.failing and all(k.connected for k in status.kinds.values()), "recovery")
    await eventually(lambda: running.cache.get("Ingress", "default", "during") is not None)
    await eventually(lambda: running.cache.get("Service", "default", "web") is None)
    assert all(k.relists_total == 0 for k in status.kinds.values())


async def test_restart_that_lost_history_relists_every_kind(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    running = await start()
    await kube_api.stop()
    kube_api.delete("Secret", "default", "web-tls")
    kube_api.compact()  # a restarted API server's watch cache starts now
    await kube_api.start()
    await eventually(lambda: all(k.relists_total == 1 for k in running.status.kinds.values()), "every kind relisted")
    await eventually(lambda: not running.status.failing)
    assert ("default", "web-tls") not in running.cache.snapshot().secrets


async def test_bookmarks_advance_the_version_and_avoid_a_relist(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    running = await start()
    state = running.status.kinds["Ingress"]
    listed_at = state.resource_version
    for i in range(3):  # writes to a kind nobody watches move the global version
        kube_api.create({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                         "metadata": {"name": f"l{i}", "namespace": "default"}, "spec": {}})
    now = kube_api.store.rv
    assert kube_api.send_bookmarks() == 6
    await eventually(lambda: state.resource_version == str(now), "bookmark applied")
    assert state.bookmarks_total == 1 and state.events_total == 0 and int(listed_at) < now
    kube_api.compact()  # versions before the bookmark are gone
    kube_api.drop_watches()
    await eventually(lambda: len(calls(kube_api, "watch", "ingresses")) == 2 and state.connected, "resumed")
    assert calls(kube_api, "watch", "ingresses")[1].resource_version == str(now)
    await eventually(lambda: not running.status.failing and running.cache.synced)
    assert all(k.relists_total == 0 for k in running.status.kinds.values())



async def test_stream_timeout_resumes_from_the_last_version(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    running = await start(kinds=("Ingress",), timeout_seconds=1)
    state = running.status.kinds["Ingress"]
    kube_api.create(ingress("a", host="a.test"))
    await eventually(lambda: running.cache.get("Ingress", "default", "a") is not None)
    version = state.resource_version
    await eventually(lambda: len(calls(kube_api, "watch", "ingresses")) >= 2, "a second watch after the timeout")
    second = calls(kube_api, "watch", "ingresses")[1]
    assert second.resource_version == version
    assert state.errors_total == 0 and state.relists_total == 0


# ---- paginated LIST

def ingress_pages(kube_api: KubeApiServer) -> list[RequestRecord]:
    return calls(kube_api, "list", "ingresses")


def whole_or_nothing(cache: ObjectCache) -> list[int]:
    """Record the Ingress count the cache shows at every change: a partial LIST would show in between."""
    seen: list[int] = []
    cache.subscribe(lambda change: seen.append(len(cache.snapshot().ingresses)))
    return seen


async def test_list_is_paginated_and_applied_as_one_replace(kube_api: KubeApiServer, start: Start) -> None:
    for i in range(12):
        kube_api.create(ingress(f"i-{i:02}", host=f"{i}.test"))
    cache = ObjectCache(kinds=("Ingress",))
    seen = whole_or_nothing(cache)
    running = await start(kinds=("Ingress",), cache=cache, page_size=5)
    assert seen and set(seen) == {12}  # one replace holding every page (then the synced notice)
    pages = ingress_pages(kube_api)
    assert [(p.limit, bool(p.continue_token)) for p in pages] == [("5", False), ("5", True), ("5", True)]
    # The watch starts from the list's version (the first page's), not from a later page's.
    (watched,) = calls(kube_api, "watch", "ingresses")
    assert watched.resource_version == running.status.kinds["Ingress"].resource_version == str(kube_api.store.rv)
    kube_api.create(ingress("after", host="after.test"))
    await eventually(lambda: running.cache.get("Ingress", "default", "after") is not None)


async def test_writes_between_pages_arrive_through_the_watch(kube_api: KubeApiServer, start: Start) -> None:
    for i in range(12):
        kube_api.create(ingress(f"i-{i:02}", host=f"{i}.test"))
    listed_at = kube_api.store.rv

    def between_pages(record: RequestRecord) -> None:
        if record.verb == "list" and record.continue_token and kube_api.store.rv == listed_at:
            kube_api.apply(ingress("i-01", host="changed.test"))  # on a page already served
            kube_api.delete("Ingress", "default", "i-11")  # on a page still to come
            kube_api.create(ingress("i-05b", host="new.test"))  # would sort into the next page

    kube_api.on_request(between_pages)
    cache = ObjectCache(kinds=("Ingress",))
    listed: list[set[str]] = []
    cache.subscribe(lambda change: listed.append({name for _, name in cache.snapshot().ingresses}))
    running = await start(kinds=("Ingress",), cache=cache, page_size=5)
    # What the LIST applied: the 12 of its first page's version, none of the writes made between pages.
    assert listed[0] == {f"i-{i:02}" for i in range(12)}
    assert cache.get("Ingress", "default", "i-01")["spec"]["rules"][0]["host"] in ("1.test", "changed.test")
    # The list is the state at its first page; the watch from that version brings the three writes.
    (watched,) = calls(kube_api, "watch", "ingresses")
    assert watched.resource_version == str(listed_at)
    await eventually(lambda: running.status.kinds["Ingress"].events_total == 3, "the three writes replayed")
    assert cache.get("Ingress", "default", "i-01")["spec"]["rules"][0]["host"] == "changed.test"
    assert cache.get("Ingress", "default", "i-11") is None
    assert cache.get("Ingress", "default", "i-05b") is not None
    assert len(cache.snapshot().ingresses) == 12


async def test_expired_continue_token_restarts_the_list(kube_api: KubeApiServer, start: Start) -> None:
    for i in range(12):
        kube_api.create(ingress(f"i-{i:02}", host=f"{i}.test"))
    compactions: list[int] = []

    def compact_once(record: RequestRecord) -> None:
        if record.verb == "list" and record.continue_token and not compactions:
            kube_api.delete("Ingress", "default", "i-00")  # a write, then history up to it is gone
            kube_api.compact()
            compactions.append(kube_api.store.rv)

    kube_api.on_request(compact_once)
    cache = ObjectCache(kinds=("Ingress",))
    seen = whole_or_nothing(cache)
    running = await start(kinds=("Ingress",), cache=cache, page_size=5)
    assert seen and set(seen) == {11}  # never the first page of the expired attempt
    assert cache.get("Ingress", "default", "i-00") is None
    pages = [(bool(p.continue_token)) for p in ingress_pages(kube_api)]
    assert pages == [False, True, False, True, True]  # page 1, page 2 (410), then the whole list again
    state = running.status.kinds["Ingress"]
    assert state.errors_total == 0 and state.relists_total == 0 and not running.status.failing
    assert state.resource_version == str(compactions[0])


async def test_continue_tokens_that_keep_expiring_back_off_then_recover(kube_api: KubeApiServer,
                                                                        start: Start) -> None:
    for i in range(12):
        kube_api.create(ingress(f"i-{i:02}", host=f"{i}.test"))

    def always_compact(record: RequestRecord) -> None:
        if record.verb == "list" and record.continue_token:
            kube_api.apply({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                            "metadata": {"name": "tick", "namespace": "default"},
                            "spec": {"holderIdentity": str(kube_api.store.rv)}})
            kube_api.compact()

    remove = kube_api.on_request(always_compact)
    running = await start(kinds=("Ingress",), page_size=5, wait=False)
    state = running.status.kinds["Ingress"]
    await eventually(lambda: state.errors_total >= 1, "a failure recorded after bounded restarts")
    assert "410" in state.last_error and not state.synced
    first_pages = [p for p in ingress_pages(kube_api) if not p.continue_token]
    assert len(first_pages) >= MAX_LIST_RESTARTS + 1
    remove()
    async with asyncio.timeout(WAIT):
        await running.status.wait_synced()
    assert len(running.cache.snapshot().ingresses) == 12
    await eventually(lambda: not running.status.failing, "recovered")


async def test_page_size_zero_lists_in_one_request(kube_api: KubeApiServer, start: Start) -> None:
    for i in range(7):
        kube_api.create(ingress(f"i-{i}", host=f"{i}.test"))
    running = await start(kinds=("Ingress",), page_size=0)
    assert [(p.limit, p.continue_token) for p in ingress_pages(kube_api)] == [("", "")]
    assert len(running.cache.snapshot().ingresses) == 7


# ---- scope and selectors

async def test_watch_namespace_limits_namespaced_kinds(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api, "team-a")
    seed(kube_api, "team-b")
    running = await start(Settings(watch_namespace="team-a"))
    snapshot = running.cache.snapshot()
    assert set(snapshot.ingresses) == {("team-a", "web")}
    assert set(snapshot.services) == {("team-a", "web")}
    assert set(snapshot.endpoint_slices) == {("team-a", "web")}
    assert set(snapshot.endpoints) == {("team-a", "legacy")}
    assert set(snapshot.secrets) == {("team-a", "web-tls")}
    assert set(snapshot.ingress_classes) == {"pyngress"}  # cluster-scoped: not limited
    kube_api.create(ingress("other", "team-b", host="b.test"))
    kube_api.create(ingress("mine", "team-a", host="a.test"))
    await eventually(lambda: running.cache.get("Ingress", "team-a", "mine") is not None)
    assert running.cache.get("Ingress", "team-b", "other") is None
    namespaces = {(r.resource, r.namespace) for r in kube_api.requests}
    namespaced = ("ingresses", "services", "endpointslices", "endpoints", "secrets")
    assert namespaces == {(resource, "team-a") for resource in namespaced} | {("ingressclasses", "")}


async def test_only_tls_secrets_are_held_unnamed(kube_api: KubeApiServer, start: Start) -> None:
    running = await start(kinds=("Secret",))
    kube_api.create(tls_secret("opaque", type_="Opaque"))
    kube_api.create(tls_secret("cert"))
    await eventually(lambda: running.cache.get("Secret", "default", "cert") is not None)
    await eventually(lambda: ("default", "opaque") in running.cache.unheld_secrets())
    assert running.cache.get("Secret", "default", "opaque") is None


async def test_large_objects_stream_whole(kube_api: KubeApiServer, start: Start) -> None:
    running = await start(kinds=("Secret",))
    payload = "QUJD" * 250_000  # a 1 MB value: far beyond one read buffer, below etcd's 1.5 MiB limit
    kube_api.create(tls_secret("big", payload=payload))
    await eventually(lambda: running.cache.get("Secret", "default", "big") is not None)
    assert running.cache.get("Secret", "default", "big")["data"]["tls.crt"] == payload


# ---- entry point and knobs

async def test_run_cluster_source_builds_its_client_from_settings(kube_api: KubeApiServer, tmp_path: Path) -> None:
    seed(kube_api)
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": kube_api.url}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}]}))
    cache = ObjectCache()
    status = WatchStatus.for_kinds(KINDS)
    task = asyncio.create_task(run_cluster_source(cache, Settings(kubeconfig=str(kubeconfig)), status=status,
                                                  backoff=FAST))
    try:
        async with asyncio.timeout(WAIT):
            await status.wait_synced()
        assert cache.synced and cache.get("Ingress", "default", "web") is not None
        await eventually(lambda: kube_api.open_watches == 7)  # (ConfigMaps too: Ingresses name them)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await eventually(lambda: kube_api.open_watches == 0, "client closed with the source")


async def test_unknown_kind_is_refused(api_client: ApiClient) -> None:
    with pytest.raises(ValueError, match="Pod"):
        await run_cluster_source(ObjectCache(), Settings(), api_client=api_client, kinds=("Pod",))


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    assert [backoff.delay(n, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff.delay(20, rng=lambda: 1.0) == 30.0
    assert backoff.delay(20, rng=lambda: 0.0) == 15.0  # never less than half the step: no reconnect storm
    assert 15.0 <= backoff.delay(50) <= 30.0
