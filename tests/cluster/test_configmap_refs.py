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


def tls_policy(name: str, config_map_name: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}],
                     "validation": {"hostname": "web.internal", "caCertificateRefs": [
                         {"group": "", "kind": "ConfigMap", "name": config_map_name}]}}}


async def test_ca_bundles_are_kept_only_where_a_backend_tls_policy_names_them(
        kube_api: KubeApiServer, start: Start) -> None:
    """Every namespace has a kube-root-ca.crt (Kubernetes publishes it): ConfigMaps are watched for the ones
    Ingresses and BackendTLSPolicies name, and the cache keeps no CA bundle nobody names, so memory does not grow
    with the number of namespaces. A BackendTLSPolicy's caCertificateRefs (gateway-api's BackendTLSPolicy
    validation) keep that ConfigMap's ca.crt only, read again (GET) when it starts naming one, dropped after."""
    kube_api.install_policies()
    pem = "-----BEGIN CERTIFICATE-----\n" + "A" * 1500 + "\n-----END CERTIFICATE-----\n"
    root = {"ca.crt": pem}
    for index in range(200):
        kube_api.create(config_map("kube-root-ca.crt", root, namespace=f"team-{index}"))
    kube_api.create(config_map("kube-root-ca.crt", root))
    kube_api.create(config_map("ca", {**root, "other": "x" * 1000}))
    kube_api.create(tls_policy("tls", "ca"))
    running = await start(kinds=("Ingress", "ConfigMap", "BackendTLSPolicy"))
    cache = running.cache
    await eventually(lambda: data_of(running, "ca") == root, "the named CA bundle (only)")
    assert cache.count("ConfigMap") == 202
    for index in range(200):
        held = cache.get("ConfigMap", f"team-{index}", "kube-root-ca.crt")
        assert held is not None and held["data"] == {}
        assert set(held["metadata"]) <= {"name", "namespace", "uid", "resourceVersion"}
    held_bytes = sum(len(repr(cache.get("ConfigMap", f"team-{index}", "kube-root-ca.crt"))) for index in range(200))
    assert held_bytes < 200 * len(pem) / 4  # what is kept per namespace is a small fraction of one bundle
    # A policy naming an existing ConfigMap has it read again; its bundle goes when the policy does.
    assert data_of(running, "kube-root-ca.crt") == {}
    kube_api.create(tls_policy("root", "kube-root-ca.crt"))
    await eventually(lambda: data_of(running, "kube-root-ca.crt") == root, "the bundle read again")
    gets = {(get.namespace, get.name) for get in calls(kube_api, "get", "configmaps")}
    assert ("default", "kube-root-ca.crt") in gets
    kube_api.delete("BackendTLSPolicy", "default", "root")
    await eventually(lambda: data_of(running, "kube-root-ca.crt") == {}, "the bundle dropped")
    assert data_of(running, "ca") == root
