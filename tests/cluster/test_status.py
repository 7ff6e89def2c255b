"""Ingress status written by the leader, end to end: emulator -> watch -> cache -> controller -> StatusWriter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer
from proxy.kube.leader import LeaderElector
from proxy.kube.status import StatusWriter, service_addresses
from proxy.settings import Settings

from .objects import endpoint_slice, ingress, ingress_class, service
from .pipeline import FAST, Pipeline, start_pipeline
from .test_watch import eventually

PUBLISH = Settings(publish_service="pyngress/pyngress", pod_namespace="pyngress")


def load_balancer(ip: str = "192.0.2.50") -> dict:
    svc = service("pyngress", "pyngress", type_="LoadBalancer")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
    return svc


def seed(kube_api: KubeApiServer) -> None:
    kube_api.apply(ingress_class())
    kube_api.apply(ingress_class("other", controller="example.com/other"))
    kube_api.create(service("web"))
    kube_api.create(endpoint_slice("web", addresses=["127.0.0.2"]))
    kube_api.create(ingress("web", host="web.test"))
    kube_api.create(ingress("theirs", host="theirs.test", class_name="other"))
    kube_api.apply(load_balancer())


def lb(kube_api: KubeApiServer, name: str) -> list:
    status = kube_api.get("Ingress", "default", name).get("status") or {}
    return (status.get("loadBalancer") or {}).get("ingress") or []


Start = Callable[..., Awaitable[tuple[Pipeline, StatusWriter]]]


@pytest.fixture
async def start(kube_api: KubeApiServer, api_client: ApiClient) -> AsyncIterator[Start]:
    pipelines: list[Pipeline] = []

    async def start_writer(settings: Settings = PUBLISH, *, elector: LeaderElector | None = None,
                           pipeline: Pipeline | None = None) -> tuple[Pipeline, StatusWriter]:
        if pipeline is None:
            pipeline = await start_pipeline(api_client, settings)
            pipelines.append(pipeline)
        writer = StatusWriter(pipeline.cache, settings, api_client=api_client, holder=pipeline.holder,
                              elector=elector, settle=0.1, backoff=FAST)
        pipeline.spawn(writer.run(), "status")
        return pipeline, writer

    yield start_writer
    for pipeline in pipelines:
        await pipeline.close()


async def test_served_ingresses_get_the_load_balancer_address(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    _, writer = await start()
    await eventually(lambda: lb(kube_api, "web") == [{"ip": "192.0.2.50"}], "status written")
    assert lb(kube_api, "theirs") == []  # another controller's Ingress is left alone
    # (the writer counts a write once its answer is back, which may be after the status is seen)
    await eventually(lambda: writer.writes_total == 1, "the writer counted its write")
    patches = [r for r in kube_api.requests if r.verb == "patch"]
    assert {(r.resource, r.name) for r in patches} == {("ingresses/status", "web")}


async def test_address_change_and_new_ingress_follow(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    await start()
    await eventually(lambda: lb(kube_api, "web") == [{"ip": "192.0.2.50"}])
    kube_api.apply(load_balancer("192.0.2.51"))
    await eventually(lambda: lb(kube_api, "web") == [{"ip": "192.0.2.51"}], "new address")
    kube_api.create(ingress("api", host="api.test"))
    await eventually(lambda: lb(kube_api, "api") == [{"ip": "192.0.2.51"}], "new Ingress")


async def test_status_is_cleared_when_we_stop_serving(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    await start()
    await eventually(lambda: lb(kube_api, "web") == [{"ip": "192.0.2.50"}])
    kube_api.apply(ingress("web", host="web.test", class_name="other"))
    await eventually(lambda: lb(kube_api, "web") == [], "status cleared")
    assert kube_api.get("Ingress", "default", "web")["spec"]["ingressClassName"] == "other"


async def test_publish_status_address_flag(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    await start(Settings(publish_status_address=("lb.example.com", "203.0.113.7")))
    await eventually(lambda: lb(kube_api, "web") == [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}])
    assert not [r for r in kube_api.requests if r.verb == "get" and r.resource == "services"]


async def test_failed_writes_are_retried(kube_api: KubeApiServer, start: Start) -> None:
    seed(kube_api)
    kube_api.fail_next(2, 500, when=lambda r: r.resource == "ingresses/status")
    _, writer = await start()
    await eventually(lambda: lb(kube_api, "web") == [{"ip": "192.0.2.50"}], "status after retries")
    assert writer.errors_total == 2


async def test_only_the_leader_writes(kube_api: KubeApiServer, api_client: ApiClient, start: Start) -> None:
    seed(kube_api)
    electors = [LeaderElector(api_client, PUBLISH, identity=name, lease_duration=30, renew_deadline=20,
                              retry_period=0.05) for name in ("pod-a", "pod-b")]
    pipeline, first = await start(elector=electors[0])
    _, second = await start(elector=electors[1], pipeline=pipeline)
    for elector in electors:
        pipeline.spawn(elector.run(), f"elector-{elector.identity}")
    await eventually(lambda: lb(kube_api, "web") == [{"ip": "192.0.2.50"}], "status written")
    kube_api.create(ingress("api", host="api.test"))
    await eventually(lambda: lb(kube_api, "api") == [{"ip": "192.0.2.50"}])
    leader, follower = (first, second) if electors[0].is_leader else (second, first)
    assert not follower.elector.is_leader  # type: ignore[union-attr]
    await eventually(lambda: leader.writes_total == 2, "the leader counted its writes")
    assert follower.writes_total == 0


@pytest.mark.parametrize("svc,expected", [
    ({"spec": {"type": "LoadBalancer"},
      "status": {"loadBalancer": {"ingress": [{"hostname": "a.elb.test"}, {"ip": "192.0.2.1", "ipMode": "VIP"}]}}},
     [{"hostname": "a.elb.test"}, {"ip": "192.0.2.1"}]),
    ({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}}, []),  # pending
    ({"spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7", "fd00::7"]}},
     [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}]),
    ({"spec": {"type": "ClusterIP", "clusterIP": "10.0.0.8"}}, [{"ip": "10.0.0.8"}]),
    ({"spec": {"type": "ClusterIP", "clusterIP": "None"}}, []),  # headless
    ({"spec": {"type": "NodePort", "clusterIP": "10.0.0.9", "externalIPs": ["198.51.100.4"]}},
     [{"ip": "198.51.100.4"}]),
    ({"spec": {"type": "ExternalName", "externalName": "edge.example.com"}}, [{"hostname": "edge.example.com"}]),
])
def test_service_addresses(svc: dict, expected: list) -> None:
    assert service_addresses(svc) == expected
