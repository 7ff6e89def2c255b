"""BackendTLSPolicy status in cluster mode, against the API emulator with the real kubernetes-asyncio client: the
leader writes our status.ancestors entries (Accepted and ResolvedRefs, observedGeneration), keeps other
controllers' entries and lastTransitionTime while a condition's status holds, follows a CA ConfigMap appearing,
and writes nothing when nothing changed; every request it makes is declared for RBAC (the fixture checks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer
from proxy.kube.cache import ObjectCache
from proxy.kube.policy_status import PolicyStatusWriter, ancestors_status
from proxy.runtime import RuntimeHolder
from proxy.settings import GATEWAY_CONTROLLER_NAME, Settings

from .pipeline import FAST, Pipeline, start_pipeline
from .test_policy_watch import config_map, seed, tls_policy
from .test_watch import eventually

OURS = GATEWAY_CONTROLLER_NAME
THEIRS = "example.com/mesh"
SERVICE_REF = {"group": "", "kind": "Service", "namespace": "default", "name": "web"}


@pytest.fixture
async def writer_pipeline(api_client: ApiClient) -> AsyncIterator[Callable[[], Awaitable[Pipeline]]]:
    started: list[Pipeline] = []

    async def start() -> Pipeline:
        settings = Settings()
        pipeline = await start_pipeline(api_client, settings, discovery_interval=0.05)
        started.append(pipeline)
        writer = PolicyStatusWriter(pipeline.cache, settings, api_client=api_client, holder=pipeline.holder,
                                    debounce=0.01, backoff=FAST, conflict_backoff=FAST)
        pipeline.writer = writer  # type: ignore[attr-defined]
        pipeline.spawn(writer.run(), "policy status")
        return pipeline

    yield start
    for pipeline in started:
        await pipeline.close()


def entries(kube_api: KubeApiServer, controller: str = OURS) -> list[dict[str, Any]]:
    status = kube_api.get("BackendTLSPolicy", "default", "tls").get("status") or {}
    return [e for e in status.get("ancestors") or () if e.get("controllerName") == controller]


def conditions(kube_api: KubeApiServer) -> dict[str, tuple[str, str, int]]:
    found = entries(kube_api)
    if len(found) != 1:
        return {}
    return {c["type"]: (c["status"], c["reason"], c["observedGeneration"]) for c in found[0]["conditions"]}


def status_writes(kube_api: KubeApiServer) -> int:
    """Writes of BackendTLSPolicy status the API received."""
    return sum(1 for r in kube_api.requests
               if r.resource == "backendtlspolicies/status" and r.verb in ("update", "patch"))


def transition(kube_api: KubeApiServer, kind: str) -> str:
    return next(c["lastTransitionTime"] for c in entries(kube_api)[0]["conditions"] if c["type"] == kind)


async def test_the_leader_writes_backend_tls_policy_status(
        kube_api: KubeApiServer, writer_pipeline: Callable[[], Awaitable[Pipeline]]) -> None:
    seed(kube_api)  # an Ingress routes to Service web: the entry names the Service
    theirs = {"ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "default",
                              "name": "mesh-gateway"},
              "controllerName": THEIRS,
              "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "theirs",
                              "observedGeneration": 1, "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    kube_api.apply({**tls_policy("tls", "web", "ca"), "status": {"ancestors": [theirs]}})
    pipeline = await writer_pipeline()
    writer: PolicyStatusWriter = pipeline.writer  # type: ignore[attr-defined]

    await eventually(lambda: conditions(kube_api) == {"Accepted": ("False", "NoValidCACertificate", 1),
                                                      "ResolvedRefs": ("False", "InvalidCACertificateRef", 1)},
                     "the missing CA reported")
    assert entries(kube_api)[0]["ancestorRef"] == SERVICE_REF
    assert entries(kube_api, THEIRS) == [theirs]

    kube_api.create(config_map("ca"))
    await eventually(lambda: conditions(kube_api) == {"Accepted": ("True", "Accepted", 1),
                                                      "ResolvedRefs": ("True", "ResolvedRefs", 1)}, "the CA found")
    accepted_at = transition(kube_api, "Accepted")
    # Counted at the API (recorded as each write arrives, before its effect can be seen): the writer's own
    # counter goes up only once the answer is back, after the status may already have been observed.
    written = status_writes(kube_api)

    policy = kube_api.get("BackendTLSPolicy", "default", "tls")
    policy["spec"]["validation"]["hostname"] = "other.internal"
    kube_api.apply({k: v for k, v in policy.items() if k != "status"})
    generation = kube_api.get("BackendTLSPolicy", "default", "tls")["metadata"]["generation"]
    assert generation == 2
    await eventually(lambda: conditions(kube_api) == {"Accepted": ("True", "Accepted", 2),
                                                      "ResolvedRefs": ("True", "ResolvedRefs", 2)},
                     "the new generation observed")
    assert transition(kube_api, "Accepted") == accepted_at  # the status held: its transition time too
    assert status_writes(kube_api) == written + 1
    await eventually(lambda: writer.writes_total == status_writes(kube_api), "the writer counted its writes")
    assert entries(kube_api, THEIRS) == [theirs]

    assert await writer.reconcile() == 0  # nothing changed: nothing written
    assert writer.writes_total == written + 1 and writer.errors_total == 0


async def test_with_gateway_selection_entries_naming_another_processs_gateway_are_kept(api_client: ApiClient) -> None:
    def entry(gateway: str, reason: str) -> dict[str, Any]:
        return {"ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "default",
                                "name": gateway},
                "controllerName": OURS,
                "conditions": [{"type": "Accepted", "status": "True", "reason": reason, "observedGeneration": 1}]}

    sibling = {**entry("b", "Accepted"), "conditions": [{**entry("b", "Accepted")["conditions"][0],
                                                         "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    current = {"ancestors": [sibling]}

    writer = PolicyStatusWriter(ObjectCache(), Settings(gateways=("default/a",)), api_client=api_client,
                                holder=RuntimeHolder())
    owns = writer.owns_ancestor
    assert owns(("", "Service", "default", "web", "")) and not owns(("gateway.networking.k8s.io", "Gateway",
                                                                       "default", "b", ""))
    new = ancestors_status(current, [entry("a", "Accepted")], namespace="default", controller=OURS,
                           now="2026-01-01T00:00:00Z", kind="BackendTLSPolicy", owns=owns)
    assert new is not None
    assert [e["ancestorRef"]["name"] for e in new["ancestors"]] == ["b", "a"]
    assert new["ancestors"][0] is sibling
    assert ancestors_status(new, [entry("a", "Accepted")], namespace="default", controller=OURS,
                            now="2026-01-02T00:00:00Z", kind="BackendTLSPolicy", owns=owns) is None
