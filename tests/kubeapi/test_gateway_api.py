"""The emulator's Gateway API CRDs and Namespaces, against the real kubernetes_asyncio client over a socket:
absent until installed, discovery that follows installs and removals, custom object list/watch
(namespaced and cluster-wide), the /status subresource, and ReferenceGrant at an older version."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from kubeapi import KubeApiServer
from kubeapi.errors import ApiError
from kubeapi.gateway_schema import DEFAULT_CONDITIONS

from .test_emulator import collect, until, watching

GROUP = "gateway.networking.k8s.io"
# CustomObjectsApi sends a dict as a JSON patch unless told: custom resources take merge patches
# (never strategic ones).
MERGE = {"_content_type": "application/merge-patch+json"}


def gateway(name: str, namespace: str = "default", *, port: int = 80, labels: dict[str, str] | None = None) -> dict:
    return {"kind": "Gateway", "apiVersion": f"{GROUP}/v1",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"gatewayClassName": "pyngress", "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}}


def gateway_class(name: str = "pyngress") -> dict:
    return {"kind": "GatewayClass", "apiVersion": f"{GROUP}/v1", "metadata": {"name": name},
            "spec": {"controllerName": "pyngress.dev/gateway-controller"}}


def reference_grant(name: str, namespace: str = "backends", *, version: str = "v1beta1") -> dict:
    return {"kind": "ReferenceGrant", "apiVersion": f"{GROUP}/{version}",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": "default"}],
                     "to": [{"group": "", "kind": "Service"}]}}


async def get(api_client: ApiClient, path: str) -> tuple[int, Any]:
    response = await api_client.rest_client.pool_manager.get(f"{api_client.configuration.host}{path}")
    async with response:
        return response.status, await response.json()


def resource_names(document: dict) -> dict[str, bool]:
    return {r["name"]: r["namespaced"] for r in document["resources"]}


async def test_absent_until_installed(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    status, groups = await get(api_client, "/apis")
    assert GROUP not in {g["name"] for g in groups["groups"]}
    for path in (f"/apis/{GROUP}", f"/apis/{GROUP}/v1", f"/apis/{GROUP}/v1beta1"):
        status, body = await get(api_client, path)
        assert status == 404 and body["kind"] == "Status", path
    api = CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as err:
        await api.list_cluster_custom_object(GROUP, "v1", "gateways")
    assert err.value.status == 404
    with pytest.raises(ApiError) as missing:
        kube_api.create(gateway("web"))
    assert missing.value.code == 404
    assert kube_api.served("Gateway") == ()
    assert kube_api.discovery_requests == ["/apis", f"/apis/{GROUP}", f"/apis/{GROUP}/v1", f"/apis/{GROUP}/v1beta1"]
    assert [r.resource for r in kube_api.requests] == ["gateways"]  # discovery is kept apart


async def test_discovery_lists_the_installed_crds(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.install_gateway_api()
    _, groups = await get(api_client, "/apis")
    (entry,) = [g for g in groups["groups"] if g["name"] == GROUP]
    assert [v["version"] for v in entry["versions"]] == ["v1", "v1beta1", "v1alpha2"]  # v1alpha2: TLSRoute's
    assert entry["preferredVersion"] == {"groupVersion": f"{GROUP}/v1", "version": "v1"}
    status, group = await get(api_client, f"/apis/{GROUP}")
    assert status == 200 and group["kind"] == "APIGroup" and group["preferredVersion"]["version"] == "v1"
    # Through the client's own discovery call, as the watch asks it.
    response = await CustomObjectsApi(api_client).get_api_resources(GROUP, "v1", _preload_content=False)
    document = await response.json()
    assert document["kind"] == "APIResourceList" and document["groupVersion"] == f"{GROUP}/v1"
    assert resource_names(document) == {
        "gatewayclasses": False, "gatewayclasses/status": False, "gateways": True, "gateways/status": True,
        "httproutes": True, "httproutes/status": True, "referencegrants": True,  # no status subresource in its CRD
        "tlsroutes": True, "tlsroutes/status": True, "grpcroutes": True, "grpcroutes/status": True}
    by_name = {r["name"]: r for r in document["resources"]}
    assert {"list", "watch"} <= set(by_name["httproutes"]["verbs"])
    assert by_name["gateways/status"]["verbs"] == ["get", "patch", "update"]
    assert by_name["gateways"]["shortNames"] == ["gtw"] and by_name["gateways"]["categories"] == ["gateway-api"]
    _, core = await get(api_client, "/api/v1")
    assert core["groupVersion"] == "v1" and resource_names(core)["namespaces"] is False
    assert resource_names(core)["services"] is True


async def test_custom_objects_list_and_watch(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.install_gateway_api()
    kube_api.create(gateway_class())
    kube_api.create(gateway("a", "team-a"))
    kube_api.create(gateway("b", "team-b"))
    api = CustomObjectsApi(api_client)
    everything = await api.list_cluster_custom_object(GROUP, "v1", "gateways")
    assert everything["kind"] == "GatewayList" and everything["apiVersion"] == f"{GROUP}/v1"
    assert everything["metadata"]["resourceVersion"] == str(kube_api.store.rv)
    # Custom resource list items keep kind and apiVersion (built-in ones do not).
    assert [(i["kind"], i["apiVersion"], i["metadata"]["name"]) for i in everything["items"]] == [
        ("Gateway", f"{GROUP}/v1", "a"), ("Gateway", f"{GROUP}/v1", "b")]
    mine = await api.list_namespaced_custom_object(GROUP, "v1", "team-a", "gateways")
    assert [i["metadata"]["name"] for i in mine["items"]] == ["a"]
    classes = await api.list_cluster_custom_object(GROUP, "v1", "gatewayclasses")
    assert [i["metadata"]["name"] for i in classes["items"]] == ["pyngress"]
    assert "namespace" not in classes["items"][0]["metadata"]
    page = await api.list_cluster_custom_object(GROUP, "v1", "gateways", limit=1)
    assert len(page["items"]) == 1 and page["metadata"]["continue"]
    labelled = await api.list_cluster_custom_object(GROUP, "v1", "gateways", label_selector="x=y")
    assert labelled["items"] == []

    w = watch.Watch()
    async with w:
        stream = w.stream(api.list_namespaced_custom_object, GROUP, "v1", "team-a", "gateways",
                          resource_version=mine["metadata"]["resourceVersion"], timeout_seconds=5)
        task = await watching(kube_api, stream, 2)
        kube_api.create(gateway("c", "team-b"))  # another namespace: not seen
        kube_api.create(gateway("d", "team-a"))
        kube_api.delete("Gateway", "team-a", "a")
        events = await task
    assert [(e["type"], e["raw_object"]["metadata"]["name"]) for e in events] == [("ADDED", "d"), ("DELETED", "a")]
    assert kube_api.requests[-1].verb == "watch" and kube_api.requests[-1].resource == "gateways"
    assert kube_api.requests[-1].namespace == "team-a" and kube_api.requests[-1].group == GROUP


async def test_status_subresource_and_generation(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.install_gateway_api()
    api = CustomObjectsApi(api_client)
    created = await api.create_namespaced_custom_object(GROUP, "v1", "default", "gateways",
                                                        {**gateway("web"), "status": {"addresses": []}})
    # The request's status is dropped; the CRD's default ("Waiting for controller") is what reads back.
    assert created["status"] == {"conditions": DEFAULT_CONDITIONS["Gateway"]}
    assert created["metadata"]["generation"] == 1
    version = created["metadata"]["resourceVersion"]
    condition = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "observedGeneration": 1,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}
    body = {**created, "spec": {**created["spec"], "gatewayClassName": "other"}, "status": {"conditions": [condition]}}
    written = await api.replace_namespaced_custom_object_status(GROUP, "v1", "default", "gateways", "web", body)
    assert written["status"]["conditions"] == [condition]
    assert written["spec"]["gatewayClassName"] == "pyngress"  # /status changes only status
    assert int(written["metadata"]["resourceVersion"]) > int(version) and written["metadata"]["generation"] == 1
    # A stale resourceVersion conflicts, on /status as on the object.
    with pytest.raises(ApiException) as err:
        await api.replace_namespaced_custom_object_status(GROUP, "v1", "default", "gateways", "web", body)
    assert err.value.status == 409
    patched = await api.patch_namespaced_custom_object_status(
        GROUP, "v1", "default", "gateways", "web", {"status": {"conditions": [{**condition, "reason": "Patched"}]}},
        **MERGE)
    assert patched["status"]["conditions"][0]["reason"] == "Patched" and patched["metadata"]["generation"] == 1
    assert kube_api.requests[-1].resource == "gateways/status" and kube_api.requests[-1].verb == "patch"
    # The object itself ignores status; labels do not move generation, spec does.
    current = kube_api.get("Gateway", "default", "web")
    labelled = {**current, "metadata": {**current["metadata"], "labels": {"team": "a"}}, "status": {}}
    relabelled = await api.replace_namespaced_custom_object(GROUP, "v1", "default", "gateways", "web", labelled)
    assert relabelled["metadata"]["generation"] == 1 and relabelled["status"]["conditions"][0]["reason"] == "Patched"
    respecced = await api.patch_namespaced_custom_object(
        GROUP, "v1", "default", "gateways", "web",
        {"spec": {"listeners": [{"name": "h", "port": 81, "protocol": "HTTP"}]}}, **MERGE)
    assert respecced["metadata"]["generation"] == 2
    # Cluster-scoped status too.
    kube_api.create(gateway_class())
    accepted = await api.patch_cluster_custom_object_status(
        GROUP, "v1", "gatewayclasses", "pyngress", {"status": {"conditions": [condition]}}, **MERGE)
    assert accepted["status"]["conditions"] == [condition] and accepted["metadata"]["generation"] == 1
    # ReferenceGrant has no /status (its CRD declares none).
    kube_api.create(reference_grant("allow", version="v1"))
    with pytest.raises(ApiException) as err:
        await api.patch_namespaced_custom_object_status(GROUP, "v1", "backends", "referencegrants", "allow",
                                                        {"status": {}}, **MERGE)
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        await api.patch_namespaced_custom_object(GROUP, "v1", "default", "gateways", "web", {"spec": {}},
                                                 _content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415


async def test_gateway_and_class_read_back_with_the_crd_status_defaults(kube_api: KubeApiServer) -> None:
    kube_api.install_gateway_api()
    assert kube_api.create(gateway_class())["status"] == {"conditions": DEFAULT_CONDITIONS["GatewayClass"]}
    assert [c["type"] for c in kube_api.create(gateway("web"))["status"]["conditions"]] == ["Accepted", "Programmed"]
    assert {c["status"] for c in DEFAULT_CONDITIONS["Gateway"]} == {"Unknown"}
    # Status written without conditions gets them back; HTTPRoute has no default status.
    written = kube_api.patch("Gateway", "default", "web", {"status": {"conditions": None, "listeners": []}},
                             subresource="status")
    assert written["status"] == {"conditions": DEFAULT_CONDITIONS["Gateway"], "listeners": []}


def _condition(**changes: Any) -> dict:
    return {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "observedGeneration": 1,
            "lastTransitionTime": "2026-01-01T00:00:00Z", **changes}


def _parent(**changes: Any) -> dict:
    return {"parentRef": {"name": "web"}, "controllerName": "example.com/x", "conditions": [_condition()], **changes}


@pytest.mark.parametrize("kind,status,where", [
    ("Gateway", {"conditions": [{k: v for k, v in _condition().items() if k != "lastTransitionTime"}]},
     "status.conditions[0].lastTransitionTime: Required value"),
    ("Gateway", {"conditions": [_condition(lastTransitionTime="2026-01-01 00:00:00")]},
     "status.conditions[0].lastTransitionTime"),
    ("Gateway", {"conditions": [_condition(status="Yes")]}, "status.conditions[0].status: Unsupported value"),
    ("Gateway", {"conditions": [_condition(reason="")]}, "status.conditions[0].reason"),
    ("Gateway", {"conditions": [_condition(), _condition()]}, "status.conditions[1]: Duplicate value"),
    ("Gateway", {"conditions": [_condition(observedGeneration=-1)]}, "status.conditions[0].observedGeneration"),
    ("Gateway", {"listeners": [{"name": "http", "conditions": []}]}, "status.listeners[0].attachedRoutes"),
    ("Gateway", {"addresses": [{"type": "IPAddress", "value": "lb.example.com"}]}, "status.addresses[0].value"),
    ("Gateway", {"addresses": [{"type": "Hostname", "value": "LB_1"}]}, "status.addresses[0]"),
    ("HTTPRoute", {}, "status.parents: Required value"),
    ("HTTPRoute", {"parents": [_parent(conditions=[])]}, "status.parents[0].conditions"),
    ("HTTPRoute", {"parents": [_parent(controllerName="no-slash")]}, "status.parents[0].controllerName"),
    ("HTTPRoute", {"parents": [_parent()] * 33}, "status.parents: Too many: 33"),
])
async def test_status_writes_are_validated_as_the_crd_schema_says(kube_api: KubeApiServer, api_client: ApiClient,
                                                                  kind: str, status: dict, where: str) -> None:
    kube_api.install_gateway_api()
    plural = {"Gateway": "gateways", "HTTPRoute": "httproutes"}[kind]
    body = gateway("web") if kind == "Gateway" else {
        "kind": "HTTPRoute", "apiVersion": f"{GROUP}/v1", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "web"}]}}
    created = kube_api.create(body)
    api = CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as err:
        await api.replace_namespaced_custom_object_status(GROUP, "v1", "default", plural, "web",
                                                          {**created, "status": status})
    assert err.value.status == 422 and where in err.value.body, err.value.body
    assert kube_api.get(kind, "default", "web")["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_reference_grant_at_an_older_bundle_version(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.install_gateway_api(versions={"ReferenceGrant": ["v1beta1"]})
    _, v1 = await get(api_client, f"/apis/{GROUP}/v1")
    assert "referencegrants" not in resource_names(v1)
    _, v1beta1 = await get(api_client, f"/apis/{GROUP}/v1beta1")
    assert "referencegrants" in resource_names(v1beta1)
    api = CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as err:
        await api.list_cluster_custom_object(GROUP, "v1", "referencegrants")
    assert err.value.status == 404
    kube_api.create(reference_grant("allow", version="v1beta1"))
    listed = await api.list_cluster_custom_object(GROUP, "v1beta1", "referencegrants")
    assert listed["apiVersion"] == f"{GROUP}/v1beta1" and listed["items"][0]["apiVersion"] == f"{GROUP}/v1beta1"

    # The bundle is upgraded: v1 is served as well, the same objects at either version.
    w = watch.Watch()
    async with w:
        stream = w.stream(api.list_cluster_custom_object, GROUP, "v1beta1", "referencegrants",
                          resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=5)
        task = await watching(kube_api, stream, 1)
        kube_api.install_gateway_api(versions={"ReferenceGrant": ["v1", "v1beta1"]})
        kube_api.create(reference_grant("second"))
        (event,) = await task
    assert event["raw_object"]["apiVersion"] == f"{GROUP}/v1beta1"
    both = await api.list_cluster_custom_object(GROUP, "v1", "referencegrants")
    assert [(i["apiVersion"], i["metadata"]["name"]) for i in both["items"]] == [
        (f"{GROUP}/v1", "allow"), (f"{GROUP}/v1", "second")]
    # A later bundle that stops serving v1beta1 ends the watches of it.
    w = watch.Watch()
    async with w:
        stream = w.stream(api.list_cluster_custom_object, GROUP, "v1beta1", "referencegrants",
                          resource_version=str(kube_api.store.rv), timeout_seconds=30)
        task = await watching(kube_api, stream, 5)
        kube_api.install_gateway_api(versions={"ReferenceGrant": ["v1"]})
        await until(task.done)
        assert task.result() == []


async def test_uninstall_deletes_objects_and_ends_watches(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.install_gateway_api()
    kube_api.create(gateway("a"))
    kube_api.create(gateway("b", "other"))
    api = CustomObjectsApi(api_client)
    listed = await api.list_cluster_custom_object(GROUP, "v1", "gateways")
    w = watch.Watch()
    async with w:
        stream = w.stream(api.list_cluster_custom_object, GROUP, "v1", "gateways",
                          resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=30)
        task = await watching(kube_api, stream, 3)
        kube_api.uninstall_gateway_api()
        await until(task.done)
    assert [(e["type"], e["raw_object"]["metadata"]["name"]) for e in task.result()] == [
        ("DELETED", "a"), ("DELETED", "b")]  # then the stream ended
    assert kube_api.open_watches == 0
    with pytest.raises(ApiException) as err:
        await api.list_cluster_custom_object(GROUP, "v1", "gateways")
    assert err.value.status == 404
    status, _ = await get(api_client, f"/apis/{GROUP}/v1")
    assert status == 404
    kube_api.install_gateway_api(["Gateway"])  # installed again: empty, only what was installed
    assert kube_api.objects("Gateway") == [] and kube_api.served("HTTPRoute") == ()
    _, v1 = await get(api_client, f"/apis/{GROUP}/v1")
    assert resource_names(v1) == {"gateways": True, "gateways/status": True}


async def test_discovery_failures_can_be_injected(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    kube_api.fail_next(1, 503, when=lambda r: r.path.startswith(f"/apis/{GROUP}"))
    status, body = await get(api_client, f"/apis/{GROUP}/v1")
    assert status == 503 and body["code"] == 503
    status, _ = await get(api_client, f"/apis/{GROUP}/v1")
    assert status == 404


async def test_namespaces(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    api = CoreV1Api(api_client)
    created = await api.create_namespace({"metadata": {"name": "team-a", "labels": {"env": "prod"}}})
    assert created.metadata.labels == {"env": "prod", "kubernetes.io/metadata.name": "team-a"}
    assert created.status.phase == "Active" and created.spec.finalizers == ["kubernetes"]
    listed = await api.list_namespace(label_selector="env=prod")
    assert [n.metadata.name for n in listed.items] == ["team-a"]
    by_name = await api.list_namespace(label_selector="kubernetes.io/metadata.name=team-a")
    assert len(by_name.items) == 1

    w = watch.Watch()
    async with w:
        stream = w.stream(api.list_namespace, resource_version=listed.metadata.resource_version, timeout_seconds=5)
        task = await watching(kube_api, stream, 2)
        # A status write moves resourceVersion (an event) but not labels; the name label cannot be taken away.
        await api.patch_namespace_status("team-a", {"status": {"conditions": [{"type": "X", "status": "True"}]}})
        current = kube_api.get("Namespace", "", "team-a")
        current["metadata"]["labels"] = {"env": "dev"}
        await api.replace_namespace("team-a", current)
        events = await collect_events(task)
    (status_event, label_event) = events
    assert status_event["raw_object"]["metadata"]["labels"]["env"] == "prod"
    assert status_event["raw_object"]["status"]["conditions"][0]["type"] == "X"
    assert label_event["raw_object"]["metadata"]["labels"] == {"env": "dev", "kubernetes.io/metadata.name": "team-a"}
    assert label_event["raw_object"]["status"]["phase"] == "Active"
    assert [(r.verb, r.resource) for r in kube_api.requests][-2:] == [("patch", "namespaces/status"),
                                                                       ("update", "namespaces")]


async def collect_events(task: Any) -> list[dict]:
    await until(task.done)
    return task.result()


async def test_collect_helper_is_bounded(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    """The shared helper ends on the server's timeout when fewer events come (no hang)."""
    w = watch.Watch()
    async with w:
        events = await collect(w.stream(CoreV1Api(api_client).list_namespace, timeout_seconds=1), 1)
    assert events == []
