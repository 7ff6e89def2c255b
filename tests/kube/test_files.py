"""File mode: real files in a temporary folder, loaded into a real ObjectCache, edits picked up by polling."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
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
  kind: ConfigMap
  metadata: {name: ignored}
kind: List
metadata: {resourceVersion: ""}
"""

POLL = 0.02  # tests poll fast; production polls every 0.5 s


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
async def running(tmp_path):
    sources: list[tuple[ManifestSource, asyncio.Task]] = []

    async def start(*paths: Path) -> ObjectCache:
        cache = ObjectCache()
        source = ManifestSource(cache, [str(p) for p in paths], interval=POLL)
        await source.load()
        sources.append((source, asyncio.create_task(source.run())))
        return cache

    yield start
    for _, task in sources:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


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
