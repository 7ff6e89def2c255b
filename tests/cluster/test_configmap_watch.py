"""ingress-nginx's ConfigMap (--configmap) in cluster mode: the one ConfigMap is watched (its namespace, a field
selector on its name) through the API emulator and the real client; an update reaches the running
configuration without a restart, a deletion brings the defaults back with a warning. Reproduces ingress-nginx's
"configmap.md" behaviour: the controller follows its ConfigMap live (nginx reloads; we swap)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer
from proxy.lifecycle.process import new_cache
from proxy.settings import Settings

from .objects import endpoint_slice, ingress, ingress_class, service
from .pipeline import Pipeline, start_pipeline
from .test_watch import eventually

SETTINGS = Settings(configmap="ingress-nginx/controller")


def controller_config(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "controller", "namespace": "ingress-nginx"},
            "data": data}


@pytest.fixture
async def pipeline(kube_api: KubeApiServer, api_client: ApiClient) -> AsyncIterator[Pipeline]:
    kube_api.create(ingress_class())
    kube_api.create(ingress("web"))
    kube_api.create(service("web"))
    kube_api.create(endpoint_slice("web", addresses=["127.0.0.2"]))
    kube_api.create(controller_config(**{"proxy-read-timeout": "7", "hsts": "false"}))
    # Another ConfigMap of the same name elsewhere, and one beside it: neither is ours.
    other = controller_config(**{"proxy-read-timeout": "99"})
    other["metadata"]["namespace"] = "default"
    kube_api.create(other)
    beside = controller_config(**{"proxy-read-timeout": "98"})
    beside["metadata"]["name"] = "other"
    kube_api.create(beside)
    started = await start_pipeline(api_client, SETTINGS, cache=new_cache(SETTINGS), discovery_interval=0.05)
    yield started
    await started.close()


def current(pipeline: Pipeline) -> Any:
    runtime = pipeline.holder.current
    return runtime.config.global_config if runtime is not None else None


async def test_configmap_updates_through_the_watch_apply_live(kube_api: KubeApiServer, pipeline: Pipeline) -> None:
    await eventually(lambda: current(pipeline) is not None and current(pipeline).proxy_read_timeout == 7.0,
                     "the ConfigMap's first value")
    assert current(pipeline).hsts is False
    # Only the named ConfigMap is held (the field selector and the namespace keep the others off the wire).
    assert list(pipeline.cache.snapshot().controller_config_maps) == [("ingress-nginx", "controller")]
    generation = pipeline.holder.generation

    kube_api.apply(controller_config(**{"proxy-read-timeout": "9", "hsts": "true", "limit-req-status-code": "429",
                                        "no-such-key": "1"}))
    await eventually(lambda: current(pipeline).proxy_read_timeout == 9.0, "the update applied")
    assert pipeline.holder.generation > generation
    config = current(pipeline)
    assert config.hsts is True and config.limit_req_status_code == 429
    assert any("no-such-key" in str(w) and w.kind == "ConfigMap" for w in pipeline.controller.warnings)

    kube_api.delete("ConfigMap", "ingress-nginx", "controller")
    await eventually(lambda: current(pipeline).proxy_read_timeout == SETTINGS.upstream_read_timeout,
                     "defaults after the deletion")
    assert any("not found" in str(w) for w in pipeline.controller.warnings)
