"""ConfigMaps an Ingress names (custom-headers, auth-proxy-set-headers: ingress-nginx's
test/e2e/annotations/customheaders.go and auth.go): every ConfigMap is watched, only the named ones' data is held;
one named after it arrived is read again (GET). Real watcher + real ObjectCache + the real kubernetes_asyncio
client against the API test double."""

from __future__ import annotations

from typing import Any

from kubeapi import KubeApiServer
from proxy.kube.cache import CacheChange

from .objects import ingress
from .test_watch import calls
from .watching import Start, eventually

KINDS = ("Ingress", "ConfigMap")
HEADERS = "nginx.ingress.kubernetes.io/custom-headers"


def config_map(name: str, data: dict[str, str], namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data}


def annotated(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    obj = ingress(name, "default")
    obj["metadata"]["annotations"] = annotations
    return obj


def data_of(running: Any, name: str) -> dict[str, str] | None:
    found = running.cache.get("ConfigMap", "default", name)
    return None if found is None else found.get("data")


async def test_a_named_configmap_is_held_and_the_others_are_not(kube_api: KubeApiServer, start: Start) -> None:
    kube_api.create(config_map("big", {"payload": "x" * 100_000}))
    kube_api.create(config_map("headers", {"X-A": "1"}))
    kube_api.create(annotated("web", {HEADERS: "headers"}))
    running = await start(kinds=KINDS)
    await eventually(lambda: data_of(running, "headers") == {"X-A": "1"}, "the named ConfigMap's data")
    assert data_of(running, "big") == {}
    changes: list[CacheChange] = []
    running.cache.subscribe(changes.append)
    kube_api.apply(config_map("big", {"payload": "y" * 100_000}))
    kube_api.apply(config_map("headers", {"X-A": "2"}))  # a marker: once it is in, the first one was seen
    await eventually(lambda: changes, "the named ConfigMap's change")
    assert changes == [CacheChange(routes=True)]
    assert data_of(running, "big") == {}


async def test_an_ingress_naming_an_existing_configmap_reads_it_again(kube_api: KubeApiServer, start: Start) -> None:
    kube_api.create(config_map("headers", {"X-A": "1"}))
    running = await start(kinds=KINDS)
    assert data_of(running, "headers") == {}
    assert calls(kube_api, "get", "configmaps") == []
    kube_api.create(annotated("web", {"nginx.ingress.kubernetes.io/auth-proxy-set-headers": "default/headers"}))
    await eventually(lambda: data_of(running, "headers") == {"X-A": "1"}, "the ConfigMap read again")
    (get,) = calls(kube_api, "get", "configmaps")
    assert (get.namespace, get.name) == ("default", "headers")
    # Named no more: its data goes again.
    kube_api.apply(annotated("web", {}))
    await eventually(lambda: data_of(running, "headers") == {}, "the data dropped")
