"""Gateway API status written by the leader, end to end: emulator (with the CRDs' status defaults and
validation) -> watch -> cache -> real Controller and builder -> GatewayStatusWriter -> /status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer
from kubeapi.server import RequestRecord
from proxy.controller import Controller
from proxy.kube.cache import ObjectCache
from proxy.kube.gateway_status import GatewayStatusWriter
from proxy.kube.leader import LeaderElector
from proxy.lifecycle.cluster import cluster_mode
from proxy.metrics import Metrics
from proxy.runtime import RuntimeHolder
from proxy.settings import GATEWAY_CONTROLLER_NAME, Settings

from .gateway_objects import GROUP, gateway, gateway_class, http_route
from .objects import endpoint_slice, ingress, ingress_class, service
from .pipeline import FAST, Pipeline, start_pipeline
from .test_client import write_kubeconfig
from .test_health import sample
from .test_watch import eventually

OURS = GATEWAY_CONTROLLER_NAME
THEIRS = "example.com/other-controller"
EPOCH = "1970-01-01T00:00:00Z"
LONG_AGO = "2020-01-01T00:00:00Z"


def seed(kube_api: KubeApiServer) -> None:
    kube_api.install_gateway_api()
    kube_api.create(gateway_class("pyngress"))
    kube_api.create(gateway_class("other", controller=THEIRS))
    kube_api.create(gateway("edge", "infra"))
    kube_api.create(gateway("theirs", "infra", class_name="other"))
    kube_api.create(service("web"))
    kube_api.create(endpoint_slice("web", addresses=["127.0.0.2"]))
    kube_api.create(http_route("shop"))


def shared_route(name: str = "shared") -> dict[str, Any]:
    """An HTTPRoute attached to our Gateway and to another controller's."""
    route = http_route(name, hostname="shared.test")
    route["spec"]["parentRefs"] = [{"name": "edge", "namespace": "infra"}, {"name": "theirs", "namespace": "infra"}]
    return route


def their_entry(reason: str = "Accepted", stamp: str = LONG_AGO) -> dict[str, Any]:
    return {"parentRef": {"group": GROUP, "kind": "Gateway", "namespace": "infra", "name": "theirs"},
            "controllerName": THEIRS,
            "conditions": [{"type": "Accepted", "status": "True", "reason": reason, "message": "theirs",
                            "lastTransitionTime": stamp, "observedGeneration": 1}]}


def status(kube_api: KubeApiServer, kind: str, namespace: str, name: str) -> dict[str, Any]:
    return kube_api.get(kind, namespace, name).get("status") or {}


def conditions(found: dict[str, Any]) -> dict[str, tuple[str, str, int]]:
    """type -> (status, reason, observedGeneration)."""
    return {c["type"]: (c["status"], c["reason"], c.get("observedGeneration", -1)) for c in found.get("conditions", [])}


def stamps(found: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["lastTransitionTime"] for c in found.get("conditions", [])}


def our_parents(route_status: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in route_status.get("parents", []) if p["controllerName"] == OURS]


def gateway_ready(kube_api: KubeApiServer, name: str = "edge", generation: int = 1) -> bool:
    found = conditions(status(kube_api, "Gateway", "infra", name))
    return found.get("Programmed", ("",))[0] == "True" and found["Programmed"][2] == generation


def route_accepted(kube_api: KubeApiServer, name: str = "shop", generation: int = 1) -> bool:
    parents = our_parents(status(kube_api, "HTTPRoute", "default", name))
    return bool(parents) and all(conditions(p).get("Accepted", ("", "", 0))[::2] == ("True", generation)
                                 for p in parents)


def writes(kube_api: KubeApiServer, resource: str = "", name: str = "") -> list[RequestRecord]:
    """The status PUTs the emulator saw (of one resource and object, when given)."""
    return [r for r in kube_api.requests if r.verb == "update" and r.resource.endswith("/status")
            and (not resource or r.resource == f"{resource}/status") and (not name or r.name == name)]


def reads(kube_api: KubeApiServer, resource: str = "") -> list[RequestRecord]:
    return [r for r in kube_api.requests if r.verb == "get" and r.resource.endswith("/status")
            and (not resource or r.resource == f"{resource}/status")]


def recent(stamp: str, since: datetime) -> bool:
    """An RFC 3339 time (whole seconds) no earlier than `since` (rounded down to its second)."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) >= since - timedelta(seconds=1)


Start = Callable[..., Awaitable[tuple[Pipeline, GatewayStatusWriter]]]


@pytest.fixture
async def start(api_client: ApiClient) -> AsyncIterator[Start]:
    pipelines: list[Pipeline] = []

    async def start_writer(settings: Settings = Settings(), *, elector: LeaderElector | None = None,
                           pipeline: Pipeline | None = None) -> tuple[Pipeline, GatewayStatusWriter]:
        if pipeline is None:
            pipeline = await start_pipeline(api_client, settings)
            pipelines.append(pipeline)
        writer = GatewayStatusWriter(pipeline.cache, settings, api_client=api_client, holder=pipeline.holder,
                                     elector=elector, debounce=0.01, backoff=FAST, conflict_backoff=FAST)
        pipeline.spawn(writer.run(), "gateway status")
        return pipeline, writer

    yield start_writer
    for pipeline in pipelines:
        await pipeline.close()


async def test_our_class_gateway_and_route_are_accepted_and_programmed(kube_api: KubeApiServer,
                                                                       start: Start) -> None:
    seed(kube_api)
    began = datetime.now(UTC)
    _, writer = await start()
    await eventually(lambda: gateway_ready(kube_api) and route_accepted(kube_api), "status written")

    gateway_class_status = status(kube_api, "GatewayClass", "", "pyngress")
    assert conditions(gateway_class_status) == {"Accepted": ("True", "Accepted", 1)}
    assert {"name": "HTTPRoute"} in gateway_class_status["supportedFeatures"]
    edge = status(kube_api, "Gateway", "infra", "edge")
    assert conditions(edge) == {"Accepted": ("True", "Accepted", 1), "Programmed": ("True", "Programmed", 1)}
    assert "addresses" not in edge  # nothing published: neither --publish-service nor --publish-status-address
    (listener,) = edge["listeners"]
    assert listener["name"] == "http" and listener["attachedRoutes"] == 1
    assert listener["supportedKinds"] == [{"group": GROUP, "kind": "HTTPRoute"}, {"group": GROUP, "kind": "GRPCRoute"}]
    assert {kind: value[0] for kind, value in conditions(listener).items()} == {
        "Accepted": "True", "Programmed": "True", "ResolvedRefs": "True", "Conflicted": "False"}
    (parent,) = status(kube_api, "HTTPRoute", "default", "shop")["parents"]
    assert parent["parentRef"] == {"group": GROUP, "kind": "Gateway", "namespace": "infra", "name": "edge"}
    assert parent["controllerName"] == OURS
    assert conditions(parent) == {"Accepted": ("True", "Accepted", 1), "ResolvedRefs": ("True", "ResolvedRefs", 1)}
    # Every condition moved from the CRD's Unknown default (or from nothing): a transition, stamped now.
    for found in (gateway_class_status, edge, listener, parent):
        assert all(stamp != EPOCH and recent(stamp, began) for stamp in stamps(found).values()), found

    # Another controller's class and Gateway keep the CRD's defaults ("Waiting for controller").
    assert conditions(status(kube_api, "GatewayClass", "", "other")) == {"Accepted": ("Unknown", "Pending", -1)}
    assert conditions(status(kube_api, "Gateway", "infra", "theirs"))["Programmed"][:2] == ("Unknown", "Pending")
    assert {(r.resource, r.name) for r in writes(kube_api)} == {
        ("gatewayclasses/status", "pyngress"), ("gateways/status", "edge"), ("httproutes/status", "shop")}
    await eventually(lambda: writer.writes_total == 3, "the writer counted its writes")
    assert writer.errors_total == 0


class _Post:
    """What a GRPCRoute rule's conditions read of a call: the method (no headers)."""

    method = b"POST"

    def header(self, name: bytes) -> None:
        return None


async def test_grpc_routes_are_watched_routed_and_given_status(kube_api: KubeApiServer, start: Start) -> None:
    """A GRPCRoute (watched like HTTPRoutes) attaches to the listener, its calls route by service/method, and the
    leader writes its status.parents entry like an HTTPRoute's. One whose hostname meets the older HTTPRoute's on
    the listener is refused (GRPCRouteSpec.hostnames: one of the two kinds per hostname), as its status says."""
    seed(kube_api)
    echo = {"method": {"service": "pkg.Echo", "method": "Say"}}
    calls = http_route("calls", hostname="grpc.test")
    calls["kind"] = "GRPCRoute"
    calls["spec"]["rules"][0]["matches"] = [echo]
    # shop, the HTTPRoute, has that hostname: older, or as old and first by namespace/name.
    clash = http_route("tardy", hostname="gw.test")
    clash["kind"] = "GRPCRoute"
    kube_api.create(calls)
    kube_api.create(clash)
    pipeline, _ = await start()

    def parent_of(name: str) -> dict[str, tuple[str, str, int]]:
        parents = our_parents(status(kube_api, "GRPCRoute", "default", name))
        return conditions(parents[0]) if parents else {}

    await eventually(lambda: parent_of("calls").get("Accepted", ("",))[0] == "True"
                     and parent_of("tardy").get("Accepted", ("",))[0] == "False", "GRPCRoute status written")
    assert parent_of("calls") == {"Accepted": ("True", "Accepted", 1), "ResolvedRefs": ("True", "ResolvedRefs", 1)}
    assert parent_of("tardy")["Accepted"][:2] == ("False", "NotAllowedByListeners")
    assert route_accepted(kube_api)  # the HTTPRoute keeps its hostname
    config = pipeline.holder.current.config  # type: ignore[union-attr]
    (listener,) = config.listeners.values()
    call = listener.table.match("grpc.test", "/pkg.Echo/Say", _Post())  # type: ignore[arg-type]
    assert call is not None and call.kind == "GRPCRoute" and call.ingress == "calls"
    assert config.clusters[call.cluster].protocol == "h2"  # (routing.policies.HTTP2)
    assert listener.table.match("grpc.test", "/pkg.Echo/Other", _Post()) is None  # type: ignore[arg-type]
    assert {r.name for r in writes(kube_api, "grpcroutes")} == {"calls", "tardy"}


@pytest.mark.parametrize("settings,expected", [
    (Settings(publish_status_address=("LB.Example.com", "203.0.113.7")),
     [{"type": "IPAddress", "value": "203.0.113.7"}, {"type": "Hostname", "value": "lb.example.com"}]),
    (Settings(publish_service="pyngress/pyngress"), [{"type": "IPAddress", "value": "192.0.2.50"}]),
])
async def test_addresses_are_the_published_ones(kube_api: KubeApiServer, start: Start, settings: Settings,
                                                expected: list[dict[str, str]]) -> None:
    seed(kube_api)
    published = service("pyngress", "pyngress", type_="LoadBalancer")
    kube_api.apply({**published, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.50"}]}}})
    await start(settings)
    await eventually(lambda: gateway_ready(kube_api), "Gateway status")
    assert status(kube_api, "Gateway", "infra", "edge")["addresses"] == expected
    # Another controller's Gateway gets none.
    assert "addresses" not in status(kube_api, "Gateway", "infra", "theirs")
    service_reads = [r for r in kube_api.requests if r.verb == "get" and r.resource == "services"]
    assert bool(service_reads) == bool(settings.publish_service)


async def test_another_controllers_entry_on_a_shared_route_survives(kube_api: KubeApiServer,
                                                                    start: Start) -> None:
    seed(kube_api)
    kube_api.create(shared_route())
    kube_api.patch("HTTPRoute", "default", "shared", {"status": {"parents": [their_entry()]}}, subresource="status")
    _, writer = await start()
    await eventually(lambda: route_accepted(kube_api, "shared"), "our entry written")
    parents = status(kube_api, "HTTPRoute", "default", "shared")["parents"]
    assert parents[0] == their_entry()  # untouched, in its place
    assert [p["parentRef"]["name"] for p in parents] == ["theirs", "edge"]

    # They update theirs: we have nothing to write about it.
    before = len(writes(kube_api, "httproutes", "shared"))
    kube_api.patch("HTTPRoute", "default", "shared",
                   {"status": {"parents": [their_entry("Updated"), *our_parents(status(kube_api, "HTTPRoute",
                                                                                        "default", "shared"))]}},
                   subresource="status")
    await eventually(lambda: writer.cache.get("HTTPRoute", "default", "shared")["status"]["parents"][0]
                     == their_entry("Updated"), "their update in the cache")
    assert await writer.reconcile() == 0
    assert len(writes(kube_api, "httproutes", "shared")) == before

    # The route leaves our Gateway: our entry goes, theirs stays.
    route = kube_api.get("HTTPRoute", "default", "shared")
    route["spec"]["parentRefs"] = [{"name": "theirs", "namespace": "infra"}]
    kube_api.apply(route)
    await eventually(lambda: not our_parents(status(kube_api, "HTTPRoute", "default", "shared")), "our entry removed")
    assert status(kube_api, "HTTPRoute", "default", "shared")["parents"] == [their_entry("Updated")]
    # The same when our whole GatewayClass goes (nothing of ours is served any more).
    await eventually(lambda: route_accepted(kube_api, "shop"))
    kube_api.delete("GatewayClass", "", "pyngress")
    await eventually(lambda: status(kube_api, "HTTPRoute", "default", "shop")["parents"] == [], "entries removed")


async def test_spec_changes_move_observed_generation(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    await start()
    await eventually(lambda: gateway_ready(kube_api) and route_accepted(kube_api), "status written")
    first = stamps(status(kube_api, "Gateway", "infra", "edge"))

    edge = kube_api.get("Gateway", "infra", "edge")
    edge["spec"]["listeners"].append({"name": "alt", "port": 8081, "protocol": "HTTP",
                                      "allowedRoutes": {"namespaces": {"from": "All"}}})
    updated = kube_api.apply(edge)
    assert updated["metadata"]["generation"] == 2
    await eventually(lambda: gateway_ready(kube_api, generation=2), "Gateway observedGeneration 2")
    after = status(kube_api, "Gateway", "infra", "edge")
    assert stamps(after) == first  # same type and status: the transition time stays
    assert [(listener["name"], listener["attachedRoutes"]) for listener in after["listeners"]] == [
        ("http", 1), ("alt", 1)]
    assert conditions(after["listeners"][1])["Accepted"] == ("True", "Accepted", 2)

    route = kube_api.get("HTTPRoute", "default", "shop")
    route["spec"]["hostnames"] = ["gw2.test"]
    assert kube_api.apply(route)["metadata"]["generation"] == 2
    await eventually(lambda: route_accepted(kube_api, "shop", generation=2), "route observedGeneration 2")


async def test_last_transition_time_moves_only_with_the_status(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    # What an earlier run of ours left: Accepted True (as it still is), Programmed False (no longer).
    old = [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "accepted",
            "observedGeneration": 0, "lastTransitionTime": LONG_AGO},
           {"type": "Programmed", "status": "False", "reason": "Invalid", "message": "not yet",
            "observedGeneration": 0, "lastTransitionTime": LONG_AGO}]
    kube_api.patch("Gateway", "infra", "edge", {"status": {"conditions": old}}, subresource="status")
    began = datetime.now(UTC)
    await start()
    await eventually(lambda: gateway_ready(kube_api), "status written")
    found = status(kube_api, "Gateway", "infra", "edge")
    assert conditions(found)["Accepted"] == ("True", "Accepted", 1)
    assert stamps(found)["Accepted"] == LONG_AGO
    assert stamps(found)["Programmed"] != LONG_AGO and recent(stamps(found)["Programmed"], began)


async def test_nothing_is_written_when_nothing_changed(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    kube_api.create(shared_route())
    pipeline, writer = await start()
    await eventually(lambda: gateway_ready(kube_api) and route_accepted(kube_api)
                     and route_accepted(kube_api, "shared"))
    written = len(writes(kube_api))
    # Our writes came back through the watch: the cache shows them, and they rebuilt nothing.
    generation = pipeline.holder.generation
    await eventually(lambda: all(pipeline.cache.get(kind, ns, name).get("status") == status(kube_api, kind, ns, name)
                                 for kind, ns, name in (("GatewayClass", "", "pyngress"), ("Gateway", "infra", "edge"),
                                                        ("HTTPRoute", "default", "shop"),
                                                        ("HTTPRoute", "default", "shared"))), "watch caught up")
    assert pipeline.holder.generation == generation

    status_requests = len(reads(kube_api)) + len(writes(kube_api))
    # A pass by hand, a pass on request, and a rebuild whose Gateway API status is the same: no request at all.
    assert await writer.reconcile() == 0
    passes = writer.passes_total
    writer.notify()
    await eventually(lambda: writer.passes_total > passes, "a pass on request")
    kube_api.create(ingress_class())
    kube_api.create(ingress("web", host="web.test"))
    await pipeline.holder.wait_for(generation + 1, 10)
    assert await writer.reconcile() == 0
    assert len(reads(kube_api)) + len(writes(kube_api)) == status_requests
    assert len(writes(kube_api)) == written
    await eventually(lambda: writer.writes_total == written)
    assert writer.errors_total == 0


async def test_a_conflicting_write_is_read_merged_and_retried(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    kube_api.create(shared_route())
    raced: list[RequestRecord] = []

    def race(record: RequestRecord) -> None:
        # Another controller writes its entry between our read and our write: our resourceVersion is stale.
        if record.verb == "update" and record.resource == "httproutes/status" and record.name == "shared" and not raced:
            raced.append(record)
            kube_api.patch("HTTPRoute", "default", "shared", {"status": {"parents": [their_entry()]}},
                           subresource="status")

    kube_api.on_request(race)
    _, writer = await start()
    await eventually(lambda: route_accepted(kube_api, "shared"), "our entry written after the conflict")
    parents = status(kube_api, "HTTPRoute", "default", "shared")["parents"]
    assert parents[0] == their_entry() and len(parents) == 2
    assert writer.conflicts_total == 1 and writer.errors_total == 0
    assert len(writes(kube_api, "httproutes", "shared")) == 2 and len(reads(kube_api, "httproutes")) >= 2


async def test_failed_writes_are_retried_with_backoff(kube_api: KubeApiServer, start: Start,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    seed(kube_api)
    kube_api.fail_next(3, 500, when=lambda r: r.resource == "gateways/status" and r.verb == "update")
    _, writer = await start()
    await eventually(lambda: gateway_ready(kube_api) and route_accepted(kube_api), "status after retries")
    assert writer.errors_total == 3
    # The route and the class were written at the first pass: one failing object holds up no other.
    assert len(writes(kube_api, "httproutes")) == 1 and len(writes(kube_api, "gatewayclasses")) == 1
    failures = [r for r in caplog.records if r.name == "pyngress.gateway_status" and r.levelname == "WARNING"]
    assert len(failures) == 1 and "Gateway infra/edge" in failures[0].getMessage()  # logged once


async def test_a_non_leader_writes_nothing(kube_api: KubeApiServer, api_client: ApiClient, start: Start) -> None:
    seed(kube_api)
    electors = [LeaderElector(api_client, Settings(), identity=name, lease_duration=30, renew_deadline=20,
                              retry_period=0.05) for name in ("pod-a", "pod-b")]
    pipeline, first = await start(elector=electors[0])
    _, second = await start(elector=electors[1], pipeline=pipeline)
    for elector in electors:
        pipeline.spawn(elector.run(), f"elector-{elector.identity}")
    await eventually(lambda: gateway_ready(kube_api) and route_accepted(kube_api), "status written")
    leader, follower = (first, second) if electors[0].is_leader else (second, first)
    assert follower.elector is not None and not follower.elector.is_leader
    requests = len(kube_api.requests)
    assert await follower.reconcile() == 0
    assert len(kube_api.requests) == requests  # not even a read
    kube_api.create(http_route("more", hostname="more.test"))
    await eventually(lambda: route_accepted(kube_api, "more") and status(kube_api, "Gateway", "infra", "edge")
                     ["listeners"][0]["attachedRoutes"] == 2, "the leader writes the new route and attachedRoutes")
    assert len(writes(kube_api)) == 5
    await eventually(lambda: leader.writes_total == 5, "the leader counted its writes")
    assert follower.writes_total == 0


async def test_cluster_mode_runs_the_writer_behind_its_elector(kube_api: KubeApiServer, tmp_path: Path) -> None:
    seed(kube_api)
    path = write_kubeconfig(tmp_path / "config", {"emulator": kube_api.url}, current="emulator")
    settings = Settings(kubeconfig=str(path), publish_status_address=("203.0.113.9",))
    cache, holder = ObjectCache(), RuntimeHolder()
    controller = Controller(cache=cache, settings=settings, holder=holder)
    metrics = Metrics(holder=holder)
    mode = await cluster_mode(cache, settings, holder, controller=controller, metrics=metrics)
    tasks = [asyncio.create_task(coroutine, name=name) for name, coroutine in mode.coroutines]
    tasks.append(asyncio.create_task(controller.run(), name="controller"))
    try:
        await eventually(lambda: gateway_ready(kube_api) and route_accepted(kube_api), "status from cluster mode")
        assert mode.elector is not None and mode.elector.is_leader
        addresses = status(kube_api, "Gateway", "infra", "edge")["addresses"]
        assert addresses == [{"type": "IPAddress", "value": "203.0.113.9"}]
        await eventually(lambda: sample(metrics, "pyngress_status_writes_total", kind="Gateway") == 3)
        assert sample(metrics, "pyngress_status_writes_total", kind="Ingress") == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        controller.close()
        await mode.close()


async def test_a_route_deleted_and_created_again_at_once_gets_its_status(kube_api: KubeApiServer,
                                                                        start: Start) -> None:
    """`kubectl replace --force`, or a cleanup and the next apply landing together: the new object has no status
    while the build is the same as the running one (same route), so no new status to publish says it."""
    seed(kube_api)
    await start()
    await eventually(lambda: route_accepted(kube_api), "status written")
    kube_api.delete("HTTPRoute", "default", "shop")
    kube_api.create(http_route("shop"))
    assert not our_parents(status(kube_api, "HTTPRoute", "default", "shop"))
    await eventually(lambda: route_accepted(kube_api), "the new object's status written")
