"""File mode: real files in a temporary folder, loaded into a real ObjectCache, edits picked up by inotify
events (and by polling where inotify is switched off)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from proxy.kube.cache import CacheChange, ObjectCache
from proxy.kube.files import ManifestError, ManifestSource, parse_manifest

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {{name: web, port: {{number: 80}}}}
"""

SERVICE_AND_SLICE = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{port: 80, targetPort: 8080}]
---
# a comment-only document follows
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [%s]
ports:
- port: 8080
"""

# What `kubectl get ingress,ingressclass -A -o yaml` prints.
KUBECTL_LIST = """\
apiVersion: v1
items:
- apiVersion: networking.k8s.io/v1
  kind: IngressClass
  metadata: {name: pyngress, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
  spec: {controller: pyngress.dev/ingress-controller}
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata: {name: listed, namespace: team}
  spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}
- apiVersion: v1
  kind: Pod
  metadata: {name: ignored}
kind: List
metadata: {resourceVersion: ""}
"""

POLL = 0.02  # tests poll fast; production polls every 0.5 s
# Longer than any test's deadline: with inotify on, only an event can deliver a change in time.
NEVER = 3600.0


async def eventually(predicate, *, timeout: float = 10.0) -> None:
    """Wait until predicate() is true, checking often, failing after a generous deadline."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def write(path: Path, text: str) -> None:
    """Write through a temporary name and rename, as editors and kubectl cp do."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
async def started(tmp_path):
    """`await started(*paths, inotify=..., interval=..., safety_interval=...)` -> a running ManifestSource."""
    sources: list[tuple[ManifestSource, asyncio.Task]] = []

    async def start(*paths: Path, inotify: bool = True, interval: float = POLL,
                    safety_interval: float = NEVER) -> ManifestSource:
        source = ManifestSource(ObjectCache(), [str(p) for p in paths], interval=interval,
                                safety_interval=safety_interval, inotify=inotify)
        await source.load()
        sources.append((source, asyncio.create_task(source.run())))
        return source

    yield start
    for _, task in sources:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture(params=["inotify", "poll"])
async def running(request, started):
    """Both ways changes arrive: inotify events (no poll within the deadline) and the polling fallback."""
    inotify = request.param == "inotify"

    async def start(*paths: Path) -> ObjectCache:
        source = await started(*paths, inotify=inotify, interval=POLL if not inotify else NEVER)
        assert source.mode == request.param
        return source.cache

    return start


def test_parse_multi_document_and_lists():
    found = parse_manifest(SERVICE_AND_SLICE % "10.0.0.1" + "---\n" + KUBECTL_LIST)
    assert [(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"]) for kind, obj in found] == [
        ("Service", "shop", "web"),
        ("EndpointSlice", "shop", "web-abc"),
        ("IngressClass", None, "pyngress"),
        ("Ingress", "team", "listed"),
    ]


def test_parse_typed_list_without_item_kinds_and_json():
    raw = {"kind": "IngressList", "apiVersion": "networking.k8s.io/v1",
           "items": [{"metadata": {"name": "a"}, "spec": {}}]}
    found = parse_manifest(json.dumps(raw), json_only=True)
    assert found == [("Ingress", {"metadata": {"name": "a", "namespace": "default"}, "spec": {}})]


def test_parse_defaults_skips_and_secrets(caplog):
    text = """\
kind: Secret
metadata: {name: cert}
type: kubernetes.io/tls
data: {tls.key: a2V5}
stringData: {tls.crt: "PEM"}
---
kind: Ingress
metadata: {namespace: x}
---
just a string
---
kind: Pod
metadata: {name: p}
"""
    with caplog.at_level(logging.WARNING, logger="pyngress.files"):
        found = parse_manifest(text, source="f.yaml")
    assert len(found) == 1
    kind, secret = found[0]
    assert kind == "Secret" and secret["metadata"]["namespace"] == "default"
    assert "stringData" not in secret
    assert secret["data"] == {"tls.key": "a2V5", "tls.crt": base64.b64encode(b"PEM").decode()}
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "Ingress without metadata.name" in messages
    assert "document 3 is not an object" in messages
    assert "Pod" not in messages  # other kinds are ignored silently


def test_parse_errors_are_value_errors():
    with pytest.raises(ValueError, match="invalid YAML"):
        parse_manifest("kind: Ingress\nmetadata: {name: [unclosed\n")
    with pytest.raises(ValueError, match="invalid JSON"):
        parse_manifest("{", json_only=True)


# The Gateway API's own example shapes, plus what they need: a Namespace with labels to select by.
GATEWAY_API = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: pyngress}
spec: {controllerName: pyngress.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: infra}
spec:
  gatewayClassName: pyngress
  listeners:
  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: edge-cert}]},
     allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {shared-gateway-access: "true"}}}}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-default, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
---
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {shared-gateway-access: "true"}}
---
# Another API's Gateway (Istio's): not ours.
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-gw}
spec: {selector: {istio: ingressgateway}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: HTTPRoute
metadata: {name: too-old}
"""


def test_parse_gateway_api_kinds_and_namespaces():
    found = parse_manifest(GATEWAY_API, source="gateway.yaml")
    assert [(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"]) for kind, obj in found] == [
        ("GatewayClass", None, "pyngress"),  # cluster-scoped: no namespace added
        ("Gateway", "infra", "edge"),
        ("HTTPRoute", "default", "shop"),  # v1beta1 is read too; no namespace: default
        ("ReferenceGrant", "infra", "from-default"),
        ("Namespace", None, "default"),
    ]
    namespace = found[-1][1]
    # As the API server labels every Namespace, so selectors can pick one by name.
    labels = namespace["metadata"]["labels"]
    assert labels == {"shared-gateway-access": "true", "kubernetes.io/metadata.name": "default"}


def test_parse_gateway_api_lists():
    raw = {"kind": "HTTPRouteList", "apiVersion": "gateway.networking.k8s.io/v1",
           "items": [{"metadata": {"name": "a", "namespace": "shop"}, "spec": {}}]}
    assert parse_manifest(json.dumps(raw), json_only=True) == [
        ("HTTPRoute", {"metadata": {"name": "a", "namespace": "shop"}, "spec": {}})]
    kubectl = {"kind": "List", "apiVersion": "v1", "items": [
        {"kind": "Gateway", "apiVersion": "gateway.networking.k8s.io/v1", "metadata": {"name": "g"}},
        {"kind": "Gateway", "apiVersion": "networking.istio.io/v1", "metadata": {"name": "istio"}},
        {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "n"}}]}
    assert [(kind, obj["metadata"]["name"]) for kind, obj in parse_manifest(json.dumps(kubectl), json_only=True)] == [
        ("Gateway", "g"), ("Namespace", "n")]
    foreign = {"kind": "GatewayList", "apiVersion": "networking.istio.io/v1", "items": [{"metadata": {"name": "x"}}]}
    assert parse_manifest(json.dumps(foreign), json_only=True) == []


async def test_gateway_api_kinds_load_into_the_cache(tmp_path, running):
    (tmp_path / "gateway.yaml").write_text(GATEWAY_API)
    (tmp_path / "secret.yaml").write_text(
        "kind: Secret\napiVersion: v1\nmetadata: {name: edge-cert, namespace: infra}\ntype: kubernetes.io/tls\n"
        "data: {tls.crt: Y2VydA==, tls.key: a2V5}\n")
    cache = await running(tmp_path)
    assert cache.synced
    snap = cache.snapshot()
    assert set(snap.gateway_classes) == {"pyngress"}
    assert set(snap.gateways) == {("infra", "edge")}
    assert set(snap.http_routes) == {("default", "shop")}
    assert set(snap.reference_grants) == {("infra", "from-default")}
    assert set(snap.namespaces) == {"default"}
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    # The certificate a Gateway listener names is followed like an Ingress's TLS Secret.
    write(tmp_path / "secret.yaml", (tmp_path / "secret.yaml").read_text().replace("Y2VydA==", "bmV3"))
    await eventually(lambda: changes)
    assert changes == [CacheChange(routes=True)]
    write(tmp_path / "gateway.yaml", GATEWAY_API.replace("kind: HTTPRoute\nmetadata: {name: shop}",
                                                         "kind: HTTPRoute\nmetadata: {name: shop, namespace: team}"))
    await eventually(lambda: ("team", "shop") in cache.snapshot().http_routes)
    assert set(cache.snapshot().http_routes) == {("team", "shop")}


async def test_folder_load_marks_synced_and_fills_every_kind(tmp_path, running):
    (tmp_path / "ingress.yaml").write_text(INGRESS.format(name="shop", host="shop.example.com"))
    (tmp_path / "backend.yml").write_text(SERVICE_AND_SLICE % "10.0.0.1")
    (tmp_path / "list.json").write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Endpoints", "metadata": {"name": "legacy"}, "subsets": []}]}))
    (tmp_path / "notes.txt").write_text("kind: Ingress\nmetadata: {name: not-read}\n")
    (tmp_path / ".hidden.yaml").write_text(INGRESS.format(name="hidden", host="h"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deeper.yaml").write_text(INGRESS.format(name="deeper", host="d"))

    cache = await running(tmp_path)
    assert cache.synced
    snap = cache.snapshot()
    assert set(snap.ingresses) == {("default", "shop")}
    assert set(snap.services) == {("shop", "web")}
    assert set(snap.endpoint_slices[("shop", "web")]) == {"web-abc"}
    assert set(snap.endpoints) == {("default", "legacy")}


async def test_single_file_and_missing_path(tmp_path, running):
    path = tmp_path / "only.txt"  # an explicit file is read whatever its name
    path.write_text(KUBECTL_LIST)
    cache = await running(path)
    assert set(cache.snapshot().ingress_classes) == {"pyngress"}
    with pytest.raises(ManifestError, match="does not exist"):
        await ManifestSource(ObjectCache(), [str(tmp_path / "nope")]).load()


async def test_edits_are_picked_up(tmp_path, running):
    ingress_file = tmp_path / "ingress.yaml"
    backend_file = tmp_path / "backend.yaml"
    ingress_file.write_text(INGRESS.format(name="shop", host="shop.example.com"))
    backend_file.write_text(SERVICE_AND_SLICE % "10.0.0.1")
    cache = await running(tmp_path)
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)

    def host() -> str:
        obj = cache.snapshot().ingresses.get(("default", "shop"))
        return obj["spec"]["rules"][0]["host"] if obj else ""

    write(ingress_file, INGRESS.format(name="shop", host="new.example.com"))
    await eventually(lambda: host() == "new.example.com")
    assert changes[-1] == CacheChange(routes=True)

    changes.clear()
    write(backend_file, SERVICE_AND_SLICE % "10.0.0.2")
    await eventually(lambda: changes)
    assert changes == [CacheChange(endpoints=frozenset({("shop", "web")}))]  # only the endpoints moved
    slice_ = cache.snapshot().endpoint_slices[("shop", "web")]["web-abc"]
    assert slice_["endpoints"][0]["addresses"] == ["10.0.0.2"]

    # a new file appears, then goes away
    extra = tmp_path / "extra.yaml"
    write(extra, INGRESS.format(name="extra", host="extra.example.com"))
    await eventually(lambda: ("default", "extra") in cache.snapshot().ingresses)
    extra.unlink()
    await eventually(lambda: ("default", "extra") not in cache.snapshot().ingresses)
    assert ("default", "shop") in cache.snapshot().ingresses

    # an in-place rewrite (same inode) is seen too
    with open(ingress_file, "w") as handle:
        handle.write(INGRESS.format(name="shop", host="inplace.example.com"))
    await eventually(lambda: host() == "inplace.example.com")


async def test_a_broken_file_keeps_its_last_good_objects(tmp_path, running, caplog):
    ingress_file = tmp_path / "ingress.yaml"
    ingress_file.write_text(INGRESS.format(name="shop", host="good.example.com"))
    (tmp_path / "other.yaml").write_text(INGRESS.format(name="other", host="other.example.com"))
    cache = await running(tmp_path)
    caplog.set_level(logging.WARNING, logger="pyngress.files")

    write(ingress_file, "kind: Ingress\nmetadata: {name: shop\n  spec: [\n")
    await eventually(lambda: "invalid YAML" in caplog.text)
    snap = cache.snapshot()
    assert snap.ingresses[("default", "shop")]["spec"]["rules"][0]["host"] == "good.example.com"
    assert ("default", "other") in snap.ingresses
    assert str(ingress_file) in caplog.text and "keeping its last good 1 objects" in caplog.text

    write(ingress_file, INGRESS.format(name="shop", host="fixed.example.com"))
    await eventually(
        lambda: cache.snapshot().ingresses[("default", "shop")]["spec"]["rules"][0]["host"] == "fixed.example.com")


async def test_broken_file_at_start_loads_the_rest(tmp_path, running):
    (tmp_path / "bad.yaml").write_text("{{{{")
    (tmp_path / "good.yaml").write_text(INGRESS.format(name="ok", host="ok"))
    cache = await running(tmp_path)
    assert cache.synced
    assert set(cache.snapshot().ingresses) == {("default", "ok")}


async def test_duplicates_last_file_wins(tmp_path, running, caplog):
    caplog.set_level(logging.WARNING, logger="pyngress.files")
    (tmp_path / "a.yaml").write_text(INGRESS.format(name="same", host="from-a"))
    (tmp_path / "b.yaml").write_text(INGRESS.format(name="same", host="from-b"))
    cache = await running(tmp_path)
    assert cache.snapshot().ingresses[("default", "same")]["spec"]["rules"][0]["host"] == "from-b"
    assert "replaces the one in" in caplog.text


# ---- inotify: every change below is seen through an event (no poll would run within the deadline)

def host_of(cache: ObjectCache, name: str) -> str:
    obj = cache.snapshot().ingresses.get(("default", name))
    return obj["spec"]["rules"][0]["host"] if obj else ""


@pytest.fixture
async def watched(started):
    async def start(*paths: Path) -> ManifestSource:
        source = await started(*paths, inotify=True, interval=NEVER, safety_interval=NEVER)
        assert source.mode == "inotify"
        return source

    return start


async def test_inotify_sees_an_in_place_edit(tmp_path, watched):
    path = tmp_path / "ingress.yaml"
    path.write_text(INGRESS.format(name="shop", host="one.example.com"))
    cache = (await watched(tmp_path)).cache
    with open(path, "w") as handle:  # same inode, truncated and rewritten
        handle.write(INGRESS.format(name="shop", host="two.example.com"))
    await eventually(lambda: host_of(cache, "shop") == "two.example.com")


async def test_inotify_sees_a_new_and_a_deleted_file(tmp_path, watched):
    (tmp_path / "a.yaml").write_text(INGRESS.format(name="a", host="a.example.com"))
    cache = (await watched(tmp_path)).cache
    (tmp_path / "b.yaml").write_text(INGRESS.format(name="b", host="b.example.com"))
    await eventually(lambda: host_of(cache, "b") == "b.example.com")
    (tmp_path / "a.yaml").unlink()
    await eventually(lambda: host_of(cache, "a") == "")
    assert host_of(cache, "b") == "b.example.com"


async def test_inotify_sees_an_atomic_rename(tmp_path, watched):
    path = tmp_path / "ingress.yaml"
    path.write_text(INGRESS.format(name="shop", host="old.example.com"))
    cache = (await watched(tmp_path)).cache
    for n in range(3):  # repeatedly: each rename replaces the inode the previous one created
        write(path, INGRESS.format(name="shop", host=f"v{n}.example.com"))
        await eventually(lambda n=n: host_of(cache, "shop") == f"v{n}.example.com")


async def test_inotify_follows_a_single_file_replaced_by_rename(tmp_path, watched):
    path = tmp_path / "only.yaml"
    path.write_text(INGRESS.format(name="shop", host="old.example.com"))
    (tmp_path / "neighbour.yaml").write_text(INGRESS.format(name="other", host="other.example.com"))
    cache = (await watched(path)).cache
    assert host_of(cache, "other") == ""  # only the file given is read, not its folder
    write(path, INGRESS.format(name="shop", host="new.example.com"))
    await eventually(lambda: host_of(cache, "shop") == "new.example.com")
    path.unlink()
    await eventually(lambda: host_of(cache, "shop") == "")
    write(path, INGRESS.format(name="shop", host="back.example.com"))  # a file that comes back is followed
    await eventually(lambda: host_of(cache, "shop") == "back.example.com")


def configmap_volume(folder: Path, version: int, files: dict[str, str]) -> None:
    """Lay out or update `folder` the way the kubelet's atomic writer updates a ConfigMap volume:
    a new timestamped folder, a `..data_tmp` link to it renamed over `..data`, user-visible links
    `name -> ..data/name`, then the old timestamped folder removed."""
    folder.mkdir(exist_ok=True)
    data = folder / f"..2026_01_01_00_00_0{version}.000000000"
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)
    old = os.readlink(folder / "..data") if (folder / "..data").is_symlink() else None
    os.symlink(data.name, folder / "..data_tmp")
    os.replace(folder / "..data_tmp", folder / "..data")
    for name in files:
        if not (folder / name).is_symlink():
            os.symlink(f"..data/{name}", folder / name)
    for link in folder.iterdir():  # keys the new version no longer has
        if link.is_symlink() and not link.name.startswith("..") and link.name not in files:
            link.unlink()
    if old is not None:
        shutil.rmtree(folder / old)


@pytest.mark.parametrize("given", ["folder", "file"])
async def test_inotify_follows_a_configmap_volume_swap(tmp_path, watched, given):
    volume = tmp_path / "config"
    configmap_volume(volume, 1, {"ingress.yaml": INGRESS.format(name="shop", host="v1.example.com")})
    source = await watched(volume if given == "folder" else volume / "ingress.yaml")
    cache = source.cache
    assert host_of(cache, "shop") == "v1.example.com"
    configmap_volume(volume, 2, {"ingress.yaml": INGRESS.format(name="shop", host="v2.example.com")})
    await eventually(lambda: host_of(cache, "shop") == "v2.example.com")
    configmap_volume(volume, 3, {"ingress.yaml": INGRESS.format(name="shop", host="v3.example.com")})
    await eventually(lambda: host_of(cache, "shop") == "v3.example.com")
    if given == "folder":  # a key added to the ConfigMap appears as a new link
        configmap_volume(volume, 4, {"ingress.yaml": INGRESS.format(name="shop", host="v3.example.com"),
                                     "extra.yaml": INGRESS.format(name="extra", host="extra.example.com")})
        await eventually(lambda: host_of(cache, "extra") == "extra.example.com")
        configmap_volume(volume, 5, {"ingress.yaml": INGRESS.format(name="shop", host="v3.example.com")})
        await eventually(lambda: host_of(cache, "extra") == "")
    assert source.mode == "inotify"


async def test_a_file_still_being_written_is_read_once_closed(tmp_path, watched, caplog):
    caplog.set_level(logging.WARNING, logger="pyngress.files")
    cache = (await watched(tmp_path)).cache
    text = INGRESS.format(name="slow", host="slow.example.com")
    with open(tmp_path / "slow.yaml", "w") as handle:
        handle.write(text[: len(text) // 2])
        handle.flush()
        # Another file's change forces a rescan after the half write; the open file must not be read yet.
        write(tmp_path / "marker.yaml", INGRESS.format(name="marker", host="marker.example.com"))
        await eventually(lambda: host_of(cache, "marker") == "marker.example.com")
        assert host_of(cache, "slow") == "" and "slow.yaml" not in caplog.text
        handle.write(text[len(text) // 2:])
    await eventually(lambda: host_of(cache, "slow") == "slow.example.com")
    assert "slow.yaml" not in caplog.text  # never read half-written (it would not have parsed)


async def test_rewriting_the_same_content_changes_nothing(tmp_path, watched):
    path = tmp_path / "ingress.yaml"
    path.write_text(INGRESS.format(name="shop", host="same.example.com"))
    source = await watched(tmp_path)
    changes: list[CacheChange] = []
    source.cache.subscribe(changes.append)
    reloads = source.reloads
    write(path, INGRESS.format(name="shop", host="same.example.com"))
    write(tmp_path / "marker.yaml", INGRESS.format(name="marker", host="m"))  # ordered after the rewrite
    await eventually(lambda: host_of(source.cache, "marker") == "m")
    assert source.reloads == reloads + 1 and len(changes) == 1  # the marker only


async def test_polling_when_inotify_is_off(tmp_path, started):
    path = tmp_path / "ingress.yaml"
    path.write_text(INGRESS.format(name="shop", host="one.example.com"))
    source = await started(tmp_path, inotify=False, interval=POLL)
    assert source.mode == "poll"
    write(path, INGRESS.format(name="shop", host="two.example.com"))
    await eventually(lambda: host_of(source.cache, "shop") == "two.example.com")
    (tmp_path / "new.yaml").write_text(INGRESS.format(name="new", host="new.example.com"))
    await eventually(lambda: host_of(source.cache, "new") == "new.example.com")


async def test_safety_poll_catches_what_no_event_announced(tmp_path, started):
    """A change inotify cannot see (here: a file whose watch was never set, as on NFS) is found by the slow poll."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = outside / "real.yaml"
    target.write_text(INGRESS.format(name="shop", host="one.example.com"))
    folder = tmp_path / "manifests"
    folder.mkdir()
    os.symlink(target, folder / "ingress.yaml")
    source = await started(folder, inotify=True, interval=NEVER, safety_interval=0.05)
    assert source.mode == "inotify"
    # The link's target folder is watched too, so even this shows through an event; a safety poll
    # must still find it when the event is lost: replace the watched folder's view by removing the watch.
    source._watcher.update(())  # no watch at all: only the safety poll is left
    with open(target, "w") as handle:
        handle.write(INGRESS.format(name="shop", host="two.example.com"))
    await eventually(lambda: host_of(source.cache, "shop") == "two.example.com")


POLICIES = """\
apiVersion: pyngress.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: web-retries}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  retry: {numRetries: 2}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: envoy-gateways-own}
spec: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: web-tls, namespace: shop}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  validation: {hostname: web.internal, caCertificateRefs: [{group: "", kind: ConfigMap, name: web-ca}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-ca, namespace: shop}
data: {ca.crt: "-----BEGIN CERTIFICATE-----", other: ignored}
"""


def test_parse_policy_kinds_of_our_versions_only():
    found = parse_manifest(POLICIES, source="policies.yaml")
    assert [(kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) for kind, obj in found] == [
        ("BackendTrafficPolicy", "default", "web-retries"),  # Envoy Gateway's kind of the same name is not ours
        ("BackendTLSPolicy", "shop", "web-tls"),
        ("ConfigMap", "shop", "web-ca"),
    ]


async def test_policy_kinds_load_into_the_cache_and_a_named_ca_configmap_is_followed(tmp_path, running):
    (tmp_path / "policies.yaml").write_text(POLICIES)
    cache = await running(tmp_path)
    snap = cache.snapshot()
    assert set(snap.backend_traffic_policies) == {("default", "web-retries")}
    assert set(snap.backend_tls_policies) == {("shop", "web-tls")}
    # File mode keeps every ConfigMap of the manifests whole (an Ingress may name one: custom-headers).
    assert snap.config_maps[("shop", "web-ca")]["data"]["ca.crt"] == "-----BEGIN CERTIFICATE-----"
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    write(tmp_path / "policies.yaml", POLICIES.replace("ca.crt: \"-----BEGIN", "ca.crt: \"-----BEGIN NEW"))
    await eventually(lambda: changes)
    assert changes == [CacheChange(routes=True)]  # the CA bundle a BackendTLSPolicy names


async def test_opaque_secrets_from_manifests_reach_the_snapshot(tmp_path, running):
    """File mode holds every Secret of the manifests, any type (an auth-secret's htpasswd in stringData)."""
    (tmp_path / "auth.yaml").write_text(
        "kind: Secret\napiVersion: v1\nmetadata: {name: basic-auth, namespace: shop}\ntype: Opaque\n"
        "stringData: {auth: 'foo:{PLAIN}bar'}\n")
    cache = await running(tmp_path)
    secret = cache.snapshot().secrets[("shop", "basic-auth")]
    assert secret["data"] == {"auth": "Zm9vOntQTEFJTn1iYXI="}
