"""The Gateway API kinds and Namespaces in cluster mode: the real watch and ObjectCache, with the real
kubernetes_asyncio client, against the emulator with and without the Gateway API CRDs (and with
them installed, upgraded or removed while the watch runs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer
from proxy.kube.cache import CONFIG_MAP, GATEWAY_KINDS, POLICY_KINDS, CacheChange
from proxy.kube.cache import KINDS as ALL_KINDS
from proxy.settings import Settings

from .gateway_objects import GROUP, gateway, gateway_class, http_route, namespace, reference_grant
from .objects import tls_secret
from .pipeline import start_pipeline
from .test_watch import INGRESS_KINDS, WAIT, calls, eventually, seed
from .watching import Running, Start

# The kinds these tests watch: all but the traffic policies' (tests/cluster/test_policy_watch.py has those).
KINDS = tuple(kind for kind in ALL_KINDS if kind not in (*POLICY_KINDS, CONFIG_MAP))

GATEWAY_RESOURCES = ("gatewayclasses", "gateways", "httproutes", "referencegrants")
# Discovery is asked at once and then every QUICK seconds in the tests that follow CRDs coming and going.
QUICK = 0.05
NEVER = 3600.0


@pytest.fixture
def start(start: Start) -> Start:
    """The shared `start` (tests/cluster/watching.py) with this file's kinds, and discovery asked only once."""

    def start_gateway_source(settings: Settings = Settings(), *, kinds: tuple[str, ...] = KINDS,
                             discovery_interval: float = NEVER, **options: Any) -> Awaitable[Running]:
        return start(settings, kinds=kinds, discovery_interval=discovery_interval, **options)

    return start_gateway_source


def seed_gateway_api(kube_api: KubeApiServer, *namespaces: str) -> None:
    kube_api.create(gateway_class())
    for ns in namespaces or ("default",):
        kube_api.create(namespace(ns, team=ns))
        kube_api.create(gateway("edge", ns))
        kube_api.create(http_route("shop", ns))
        kube_api.create(reference_grant("from-infra", ns))


def log_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pyngress.watch" and text in r.getMessage()]


# ---- with the CRDs installed

async def test_lists_and_watches_each_kind_when_the_crds_exist(kube_api: KubeApiServer, start: Start) -> None:
    kube_api.install_gateway_api()
    seed(kube_api)
    seed_gateway_api(kube_api, "infra")
    running = await start()
    cache, status = running.cache, running.status
    assert cache.synced and status.synced
    snapshot = cache.snapshot()
    assert set(snapshot.gateway_classes) == {"pyngress"}
    assert set(snapshot.gateways) == {("infra", "edge")}
    assert set(snapshot.http_routes) == {("infra", "shop")}
    assert set(snapshot.reference_grants) == {("infra", "from-infra")}
    assert set(snapshot.namespaces) == {"infra"}
    labels = snapshot.namespaces["infra"]["metadata"]["labels"]
    assert labels == {"team": "infra", "kubernetes.io/metadata.name": "infra"}
    assert ("default", "web") in snapshot.ingresses  # Ingress alongside, as before
    # Each kind: one LIST, then one WATCH from exactly the list's version; all at v1, found with one discovery GET.
    for resource in (*GATEWAY_RESOURCES, "namespaces"):
        (listed,) = calls(kube_api, "list", resource)
        (watched,) = calls(kube_api, "watch", resource)
        assert listed.resource_version == "" and watched.resource_version == str(kube_api.store.rv)
        assert listed.group == (GROUP if resource != "namespaces" else "") and listed.namespace == ""
    assert kube_api.discovery_requests == [f"/apis/{GROUP}/v1"]
    assert {status.kinds[kind].api_version for kind in GATEWAY_KINDS} == {"v1"}
    assert all(k.served and k.synced for k in status.kinds.values())
    await eventually(lambda: all(k.connected for k in status.kinds.values()), "every kind connected")

    # Following changes, namespaced and cluster-scoped.
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    kube_api.create(http_route("api", "infra", hostname="api.test"))
    await eventually(lambda: cache.get("HTTPRoute", "infra", "api") is not None, "HTTPRoute ADDED")
    kube_api.apply(gateway_class(controller="example.com/other"))
    await eventually(lambda: cache.get("GatewayClass", "", "pyngress")["spec"]["controllerName"] == "example.com/other")
    kube_api.delete("ReferenceGrant", "infra", "from-infra")
    await eventually(lambda: cache.get("ReferenceGrant", "infra", "from-infra") is None, "ReferenceGrant DELETED")
    kube_api.create(namespace("shop", team="shop"))
    await eventually(lambda: cache.get("Namespace", "", "shop") is not None, "Namespace ADDED")
    assert changes == [CacheChange(routes=True)] * 4
    assert status.kinds["HTTPRoute"].events_total == 1 and status.kinds["GatewayClass"].events_total == 1


async def test_the_watch_machinery_serves_custom_objects(kube_api: KubeApiServer, start: Start) -> None:
    """Pages, 410 relists and bookmarks work for custom objects as for built-in kinds."""
    kube_api.install_gateway_api()
    for i in range(7):
        kube_api.create(http_route(f"r-{i}", hostname=f"{i}.test"))
    running = await start(kinds=("HTTPRoute",), page_size=3)
    assert len(running.cache.snapshot().http_routes) == 7
    pages = calls(kube_api, "list", "httproutes")
    assert [(p.limit, bool(p.continue_token)) for p in pages] == [("3", False), ("3", True), ("3", True)]
    state = running.status.kinds["HTTPRoute"]

    assert kube_api.send_bookmarks() == 1
    await eventually(lambda: state.bookmarks_total == 1, "bookmark")
    kube_api.fail_next(10**6, 503, when=lambda r: r.verb == "watch" and r.resource == "httproutes")
    assert kube_api.drop_watches("httproutes") == 1
    await eventually(lambda: state.failing, "watch failing")
    kube_api.delete("HTTPRoute", "default", "r-0")  # deleted while away, history compacted past it
    kube_api.compact()
    kube_api.clear_failures()
    await eventually(lambda: state.relists_total == 1 and state.connected and not state.failing, "relisted")
    assert ("default", "r-0") not in running.cache.snapshot().http_routes
    assert len(running.cache.snapshot().http_routes) == 6


async def test_watch_namespace_limits_namespaced_gateway_kinds(kube_api: KubeApiServer, start: Start) -> None:
    kube_api.install_gateway_api()
    seed_gateway_api(kube_api, "team-a", "team-b")
    running = await start(Settings(watch_namespace="team-a"), kinds=(*GATEWAY_KINDS, "Namespace"))
    snapshot = running.cache.snapshot()
    assert set(snapshot.gateways) == {("team-a", "edge")}
    assert set(snapshot.http_routes) == {("team-a", "shop")}
    assert set(snapshot.reference_grants) == {("team-a", "from-infra")}
    # Cluster-scoped: not limited (a listener may select routes from any namespace by its labels).
    assert set(snapshot.gateway_classes) == {"pyngress"}
    assert set(snapshot.namespaces) == {"team-a", "team-b"}
    assert {(r.resource, r.namespace) for r in kube_api.requests} == {
        ("gateways", "team-a"), ("httproutes", "team-a"), ("referencegrants", "team-a"), ("tlsroutes", "team-a"),
        ("grpcroutes", "team-a"), ("gatewayclasses", ""), ("namespaces", "")}


# ---- without the CRDs, and CRDs that come and go

async def test_without_crds_ingress_routes_and_one_line_says_so(kube_api: KubeApiServer, api_client: ApiClient,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyngress.watch")
    seed(kube_api)
    # The real Controller on a cache expecting every kind: it builds, because absent kinds are known empty.
    pipeline = await start_pipeline(api_client, Settings(), discovery_interval=QUICK)
    try:
        route = pipeline.holder.current.config.table.match("web.test", "/")  # type: ignore[union-attr]
        assert route is not None and route.ingress == "web"
        assert pipeline.cache.synced
        await eventually(lambda: len(kube_api.discovery_requests) >= 8, "a few re-checks")
        for kind in GATEWAY_KINDS:
            state = pipeline.status.kinds[kind]
            assert not state.served and state.synced and not state.failing and not state.connected
        assert not pipeline.status.kinds["Namespace"].served
        # Nothing asked of what is not there; Namespaces are not watched for nothing.
        assert not [r for r in kube_api.requests if r.resource in (*GATEWAY_RESOURCES, "namespaces")]
        assert set(kube_api.discovery_requests) >= {f"/apis/{GROUP}/v1", f"/apis/{GROUP}/v1beta1"}
        assert kube_api.open_watches == len(INGRESS_KINDS) + 1  # and ConfigMaps (Ingresses name them)
        (line,) = log_lines(caplog, "not served")
        assert line.startswith("GatewayClass, Gateway, HTTPRoute, TLSRoute, GRPCRoute, ReferenceGrant, "
                               "BackendTrafficPolicy, BackendTLSPolicy not served by the API server")
        assert "Namespace" in line and "every 0.05 s" in line
    finally:
        await pipeline.close()


async def test_crds_installed_later_are_watched_without_a_restart(kube_api: KubeApiServer, start: Start,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyngress.watch")
    seed(kube_api)
    running = await start(discovery_interval=QUICK)
    cache, status = running.cache, running.status
    assert cache.synced and kube_api.open_watches == len(INGRESS_KINDS)
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)

    kube_api.install_gateway_api()
    seed_gateway_api(kube_api, "infra")
    await eventually(lambda: cache.get("HTTPRoute", "infra", "shop") is not None, "HTTPRoute listed")
    await eventually(lambda: all(cache.get(kind, "infra", name) is not None for kind, name in (
        ("Gateway", "edge"), ("ReferenceGrant", "from-infra"), ("GatewayClass", "pyngress"), ("Namespace", "infra"))),
        "every kind listed")
    await eventually(lambda: status.synced and kube_api.open_watches == len(KINDS), "every kind watched")
    assert all(status.kinds[kind].served and status.kinds[kind].api_version == "v1" for kind in GATEWAY_KINDS)
    assert all(status.kinds[kind].relists_total == 0 for kind in KINDS)  # a first LIST, not a relist
    assert changes and all(change.routes for change in changes)
    assert not running.task.done() and len(calls(kube_api, "list", "ingresses")) == 1  # no restart
    (line,) = log_lines(caplog, "now served")
    assert "HTTPRoute (gateway.networking.k8s.io/v1)" in line and "Namespace" in line
    kube_api.create(http_route("later", "infra"))
    await eventually(lambda: cache.get("HTTPRoute", "infra", "later") is not None, "watched after the list")

    # Removed again (deleting a CRD deletes its objects): watches stop, objects go, nothing failing.
    kube_api.uninstall_gateway_api()
    await eventually(lambda: not any(status.kinds[kind].served for kind in (*GATEWAY_KINDS, "Namespace")),
                     "kinds no longer served")
    await eventually(lambda: kube_api.open_watches == len(INGRESS_KINDS), "their watches closed")
    snapshot = cache.snapshot()
    assert not snapshot.http_routes and not snapshot.gateways and not snapshot.gateway_classes
    assert not snapshot.reference_grants and not snapshot.namespaces
    assert cache.synced and status.synced and not status.failing
    (line,) = log_lines(caplog, "no longer served")
    assert "HTTPRoute" in line
    namespaces_listed = len(calls(kube_api, "list", "namespaces"))
    await eventually(lambda: len(kube_api.discovery_requests) >= 20, "more re-checks")
    assert len(calls(kube_api, "list", "namespaces")) == namespaces_listed  # not watched again while absent
    # One line for the absence at start, however many re-checks found them absent; none for a failure.
    assert len(log_lines(caplog, "not served")) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a removed CRD is no outage"


async def test_reference_grant_at_v1beta1_then_v1_when_the_bundle_serves_it(kube_api: KubeApiServer,
                                                                            start: Start) -> None:
    kube_api.install_gateway_api(versions={"ReferenceGrant": ["v1beta1"]})
    kube_api.create(reference_grant("old", "infra", version="v1beta1"))
    running = await start(kinds=GATEWAY_KINDS, discovery_interval=QUICK)
    state = running.status.kinds["ReferenceGrant"]
    assert state.api_version == "v1beta1" and state.served
    assert running.cache.get("ReferenceGrant", "infra", "old")["apiVersion"] == f"{GROUP}/v1beta1"
    assert kube_api.discovery_requests[:2] == [f"/apis/{GROUP}/v1", f"/apis/{GROUP}/v1beta1"]

    kube_api.install_gateway_api(versions={"ReferenceGrant": ["v1", "v1beta1"]})  # the bundle is upgraded
    await eventually(lambda: state.api_version == "v1" and state.synced and state.connected, "watched at v1")
    assert set(running.cache.snapshot().reference_grants) == {("infra", "old")}
    assert not running.status.failing and state.relists_total == 0
    kube_api.create(reference_grant("new", "infra"))
    await eventually(lambda: running.cache.get("ReferenceGrant", "infra", "new") is not None)
    assert kube_api.watch_count("referencegrants") == 1


async def test_a_discovery_failure_holds_only_the_kinds_it_decides(kube_api: KubeApiServer, start: Start) -> None:
    kube_api.install_gateway_api()
    seed(kube_api)
    seed_gateway_api(kube_api, "infra")
    kube_api.fail_next(10**6, 503, when=lambda r: r.path.startswith(f"/apis/{GROUP}"))
    running = await start(discovery_interval=QUICK, wait=False)
    status = running.status
    await eventually(lambda: all(status.kinds[kind].synced for kind in INGRESS_KINDS), "Ingress kinds listed")
    await eventually(lambda: status.kinds["Gateway"].errors_total >= 2, "discovery retried")
    assert not running.cache.synced  # what it holds back cannot be known yet: no build on a guess
    assert set(status.failing_kinds()) == {*GATEWAY_KINDS, "Namespace"}
    assert "503" in status.kinds["HTTPRoute"].last_error and "discovery" in status.kinds["HTTPRoute"].last_error
    kube_api.clear_failures()
    async with asyncio.timeout(WAIT):
        await status.wait_synced()
    await eventually(lambda: running.cache.synced and not status.failing, "recovered")
    assert running.cache.get("Gateway", "infra", "edge") is not None

    # Once decided, a failed re-check changes nothing: what is watched stays watched, nothing failing.
    asked = len(kube_api.discovery_requests)
    kube_api.fail_next(10**6, 500, when=lambda r: r.path.startswith(f"/apis/{GROUP}"))
    await eventually(lambda: len(kube_api.discovery_requests) >= asked + 3, "re-checks failing")
    assert not status.failing and all(status.kinds[kind].served for kind in GATEWAY_KINDS)
    assert kube_api.open_watches == len(KINDS)
    kube_api.clear_failures()


# ---- what counts as a change

async def test_namespace_labels_matter_and_status_does_not(kube_api: KubeApiServer, start: Start) -> None:
    kube_api.install_gateway_api()
    kube_api.create(namespace("team", env="prod"))
    running = await start(kinds=(*GATEWAY_KINDS, "Namespace"))
    state = running.status.kinds["Namespace"]
    changes: list[CacheChange] = []
    running.cache.subscribe(changes.append)
    # Written by others (the namespace controller, kubectl), each a MODIFIED event with a new resourceVersion.
    kube_api.patch("Namespace", "", "team", {"status": {"conditions": [{"type": "X", "status": "True"}]}},
                   subresource="status")
    kube_api.patch("Namespace", "", "team", {"metadata": {"annotations": {"note": "churn"}}})
    await eventually(lambda: state.events_total == 2, "both events applied")
    assert changes == []
    kube_api.patch("Namespace", "", "team", {"metadata": {"labels": {"env": "dev"}}})
    await eventually(lambda: state.events_total == 3, "label event applied")
    assert changes == [CacheChange(routes=True)]
    assert running.cache.get("Namespace", "", "team")["metadata"]["labels"]["env"] == "dev"


async def test_a_gateway_certificate_secret_is_relevant(kube_api: KubeApiServer, start: Start) -> None:
    kube_api.install_gateway_api()
    kube_api.create(gateway("edge", "infra", certificate="edge-cert"))
    kube_api.create(gateway("other", "infra", certificate="shared-cert", certificate_namespace="certs"))
    for name, ns in (("edge-cert", "infra"), ("shared-cert", "certs"), ("unrelated", "infra")):
        kube_api.create(tls_secret(name, ns))
    running = await start(kinds=("Gateway", "Secret"))
    state = running.status.kinds["Secret"]
    changes: list[CacheChange] = []
    running.cache.subscribe(changes.append)
    kube_api.apply(tls_secret("unrelated", "infra", payload="bmV3"))
    await eventually(lambda: state.events_total == 1)
    assert changes == []
    kube_api.apply(tls_secret("edge-cert", "infra", payload="bmV3"))
    kube_api.apply(tls_secret("shared-cert", "certs", payload="bmV3"))
    await eventually(lambda: state.events_total == 3)
    assert changes == [CacheChange(routes=True)] * 2


async def test_gateway_status_writes_rebuild_nothing(kube_api: KubeApiServer, start: Start) -> None:
    kube_api.install_gateway_api()
    kube_api.create(http_route("shop"))
    running = await start(kinds=("HTTPRoute",))
    state = running.status.kinds["HTTPRoute"]
    changes: list[CacheChange] = []
    running.cache.subscribe(changes.append)
    parents = {"parents": [{"parentRef": {"name": "edge", "namespace": "infra"}, "controllerName": "example.com/x",
                            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                                            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}]}
    kube_api.apply({**kube_api.get("HTTPRoute", "default", "shop"), "status": parents})
    await eventually(lambda: state.events_total == 1)
    assert changes == [] and running.cache.get("HTTPRoute", "default", "shop")["status"] == parents
