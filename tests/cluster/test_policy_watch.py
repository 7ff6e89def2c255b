"""Traffic policies in cluster mode, end to end against the API emulator and the real kubernetes-asyncio
client: the CRD's schema refusing typos (422), the watch feeding BackendTrafficPolicies, BackendTLSPolicies
and CA ConfigMaps to the builder (edits and deletions followed), and the status writer publishing our
status.ancestors entries (other controllers' kept), from the leader, also when started by cluster mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from kubeapi import KubeApiServer
from proxy.controller import Controller
from proxy.kube.cache import ObjectCache
from proxy.kube.leader import LeaderElector
from proxy.kube.policy_status import PolicyStatusWriter
from proxy.lifecycle.cluster import cluster_mode
from proxy.routing.model import Cluster
from proxy.runtime import RuntimeHolder
from proxy.settings import GATEWAY_CONTROLLER_NAME, Settings

from .objects import endpoint_slice, ingress, ingress_class, service
from .pipeline import FAST, Pipeline, start_pipeline
from .test_client import write_kubeconfig
from .test_watch import eventually

OURS = GATEWAY_CONTROLLER_NAME
THEIRS = "example.com/mesh"
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def traffic_policy(name: str, *services: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pyngress.dev/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": s} for s in services], **spec}}


def tls_policy(name: str, service_name: str, config_map: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": service_name}],
                     "validation": {"hostname": "web.internal",
                                    "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": config_map}]}}}


def config_map(name: str, pem: str = CA) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"ca.crt": pem, "unrelated": "x" * 1000}}


def seed(kube_api: KubeApiServer) -> None:
    kube_api.install_policies()
    kube_api.create(ingress_class())
    kube_api.create(ingress("web"))
    kube_api.create(service("web"))
    kube_api.create(endpoint_slice("web", addresses=["127.0.0.2"]))


def web_cluster(pipeline: Pipeline) -> Cluster | None:
    runtime = pipeline.holder.current
    if runtime is None:
        return None
    route = runtime.config.table.match("web.test", "/")
    return runtime.config.clusters.get(route.cluster) if route is not None else None


def ancestors(kube_api: KubeApiServer, name: str) -> list[dict[str, Any]]:
    return (kube_api.get("BackendTrafficPolicy", "default", name).get("status") or {}).get("ancestors", [])


def accepted(entry: dict[str, Any]) -> tuple[str, str]:
    (found,) = [c for c in entry["conditions"] if c["type"] == "Accepted"]
    return found["status"], found["reason"]


@pytest.fixture
async def pipelines(api_client: ApiClient) -> AsyncIterator[Callable[..., Awaitable[Pipeline]]]:
    started: list[Pipeline] = []

    async def start(settings: Settings = Settings(), *, writer: bool = False,
                    elector: LeaderElector | None = None) -> Pipeline:
        pipeline = await start_pipeline(api_client, settings, discovery_interval=0.05)
        started.append(pipeline)
        if writer:
            policy_writer = PolicyStatusWriter(pipeline.cache, settings, api_client=api_client, holder=pipeline.holder,
                                               elector=elector, debounce=0.01, backoff=FAST, conflict_backoff=FAST)
            pipeline.writer = policy_writer  # type: ignore[attr-defined]
            pipeline.spawn(policy_writer.run(), "policy status")
        return pipeline

    yield start
    for pipeline in started:
        await pipeline.close()


async def test_the_crd_schema_refuses_a_typo_through_the_real_client() -> None:
    # An emulator of its own: the writes here are a user's (kubectl's), not the proxy's, so they are not held
    # against the proxy's RBAC as the shared fixture's requests are.
    async with KubeApiServer() as server, ApiClient(Configuration(host=server.url)) as client:
        server.install_policies()
        await _typos_refused(CustomObjectsApi(client))


async def _typos_refused(api: CustomObjectsApi) -> None:
    typo = traffic_policy("typo", "web", retry={"numRetires": 2})
    with pytest.raises(ApiException) as refused:
        await api.create_namespaced_custom_object("pyngress.dev", "v1alpha1", "default", "backendtrafficpolicies",
                                                  typo)
    assert refused.value.status == 422 and 'unknown field \\"spec.retry.numRetires\\"' in str(refused.value.body)
    with pytest.raises(ApiException) as refused:
        await api.create_namespaced_custom_object("pyngress.dev", "v1alpha1", "default", "backendtrafficpolicies",
                                                  traffic_policy("slow", "web", retry={"perRetry": {"timeout": "2"}}))
    assert refused.value.status == 422 and "should match" in str(refused.value.body)
    created = await api.create_namespaced_custom_object("pyngress.dev", "v1alpha1", "default",
                                                        "backendtrafficpolicies",
                                                        traffic_policy("ok", "web", retry={"numRetries": 2}))
    assert created["metadata"]["name"] == "ok"


async def test_policies_and_ca_configmaps_reach_the_builder_and_follow_edits(
        kube_api: KubeApiServer, pipelines: Callable[..., Awaitable[Pipeline]]) -> None:
    seed(kube_api)
    kube_api.create(traffic_policy("lb", "web", loadBalancer={"type": "LeastRequest"}))
    kube_api.create(config_map("ca"))
    kube_api.create(tls_policy("tls", "web", "ca"))
    pipeline = await pipelines()

    def policy() -> Any:
        cluster = web_cluster(pipeline)
        return cluster.policy if cluster is not None else None

    await eventually(lambda: policy() is not None and policy().tls is not None, "both policies applied")
    assert policy().load_balancer.kind == "LeastRequest" and policy().tls.ca == CA.encode()
    assert web_cluster(pipeline).endpoints  # the variant cluster is resolved like the plain one
    stored = pipeline.cache.get("ConfigMap", "default", "ca")
    assert stored is not None and stored["data"] == {"ca.crt": CA}  # only the CA bundle is kept

    kube_api.apply(config_map("ca", CA.replace("MIIB", "MIIC")))
    await eventually(lambda: b"MIIC" in policy().tls.ca, "the new CA bundle")
    kube_api.apply(config_map("elsewhere"))  # a ConfigMap no BackendTLSPolicy names rebuilds nothing
    kube_api.delete("BackendTrafficPolicy", "default", "lb")
    await eventually(lambda: policy().load_balancer.kind == "RoundRobin", "the deleted policy's setting gone")
    kube_api.delete("BackendTLSPolicy", "default", "tls")
    await eventually(lambda: policy() is None, "back on the plain cluster")
    assert web_cluster(pipeline).key == "default/web:80"


async def test_without_the_policy_crds_nothing_is_watched_for_them(
        kube_api: KubeApiServer, pipelines: Callable[..., Awaitable[Pipeline]]) -> None:
    kube_api.create(ingress_class())
    kube_api.create(ingress("web"))
    kube_api.create(service("web"))
    pipeline = await pipelines()
    assert web_cluster(pipeline) is not None
    for kind in ("BackendTrafficPolicy", "BackendTLSPolicy"):
        assert not pipeline.status.kinds[kind].served and pipeline.status.kinds[kind].synced
    # ConfigMaps are watched anyway: Ingresses name them (custom-headers, auth-proxy-set-headers).
    assert not [r for r in kube_api.requests if r.resource == "backendtrafficpolicies"]
    kube_api.install_policies()
    kube_api.create(traffic_policy("lb", "web", loadBalancer={"type": "Random"}))
    await eventually(lambda: web_cluster(pipeline).policy is not None, "the CRD found and its policy applied")


async def test_the_leader_writes_our_ancestor_entries_and_keeps_other_controllers(
        kube_api: KubeApiServer, pipelines: Callable[..., Awaitable[Pipeline]]) -> None:
    seed(kube_api)
    policy = traffic_policy("p", "web", "missing", retry={"numRetries": 1})
    theirs = {"ancestorRef": {"group": "", "kind": "Service", "namespace": "default", "name": "web"},
              "controllerName": THEIRS,
              "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "mesh",
                              "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    kube_api.apply({**policy, "status": {"ancestors": [theirs]}})
    kube_api.create(traffic_policy("young", "web", loadBalancer={"type": "Random"}))  # created later: younger
    pipeline = await pipelines(writer=True)

    def ours(name: str) -> dict[str, tuple[str, str]]:
        return {e["ancestorRef"]["name"]: accepted(e) for e in ancestors(kube_api, name) if e["controllerName"] == OURS}

    await eventually(lambda: ours("p") == {"web": ("True", "Accepted"), "missing": ("False", "TargetNotFound")},
                     "status written")
    assert theirs in ancestors(kube_api, "p")
    await eventually(lambda: ours("young") == {"web": ("False", "Conflicted")}, "the younger policy's status")
    entry = next(e for e in ancestors(kube_api, "p") if e["controllerName"] == OURS)
    assert entry["ancestorRef"] == {"group": "", "kind": "Service", "namespace": "default", "name": "web"}
    assert entry["conditions"][0]["observedGeneration"] == 1

    kube_api.create(service("missing"))
    await eventually(lambda: ours("p") == {"web": ("True", "Accepted"), "missing": ("True", "Accepted")},
                     "the target found")
    writer: PolicyStatusWriter = pipeline.writer  # type: ignore[attr-defined]
    await eventually(lambda: writer.writes_total == 3, "the writer counted its writes")
    assert await writer.reconcile() == 0  # nothing left to write
    assert writer.errors_total == 0


async def test_cluster_mode_runs_the_policy_writer(kube_api: KubeApiServer, tmp_path: Path) -> None:
    seed(kube_api)
    kube_api.create(traffic_policy("p", "web", retry={"numRetries": 1}))
    path = write_kubeconfig(tmp_path / "config", {"emulator": kube_api.url}, current="emulator")
    settings = Settings(kubeconfig=str(path))
    cache, holder = ObjectCache(), RuntimeHolder()
    controller = Controller(cache=cache, settings=settings, holder=holder)
    mode = await cluster_mode(cache, settings, holder, controller=controller)
    assert mode.policy_status_writer is not None
    tasks = [asyncio.create_task(coroutine, name=name) for name, coroutine in mode.coroutines]
    tasks.append(asyncio.create_task(controller.run(), name="controller"))
    try:
        await eventually(lambda: [accepted(e) for e in ancestors(kube_api, "p")] == [("True", "Accepted")],
                         "status from cluster mode")
        assert mode.elector is not None and mode.elector.is_leader
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        controller.close()
        await mode.close()
