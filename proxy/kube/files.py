"""File mode: Kubernetes manifests on disk feed the object cache, and edits are picked up live.

A source path is a file (any name) or a folder, whose `*.yaml`, `*.yml` and `*.json` files are
read (one level, no subfolders; names starting with "." are skipped, which also skips the
`..data` links of a mounted ConfigMap). A file holds one or more YAML documents; a document is
an object or a list (`kind: List`, or `kind: IngressList` etc., as `kubectl get -o yaml` prints).

Folders are polled (stat only, no extra dependency); a changed file is parsed again off the
event loop. A file that fails to parse keeps its last good objects, so a half-saved edit never
takes routes down; a deleted file takes its objects with it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from proxy.kube.cache import CLUSTER_SCOPED, KINDS, ObjectCache
from proxy.routing.model import KubeObject

log = logging.getLogger("pyngress.files")

EXTENSIONS = (".yaml", ".yml", ".json")
# Fast enough that an edit shows within a second, cheap enough to ignore: one stat per file.
POLL_INTERVAL = 0.5
DEFAULT_NAMESPACE = "default"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# (mtime, ctime, size, inode): any rewrite, rename-over or truncation changes one of them.
Signature = tuple[int, int, int, int]


class ManifestError(Exception):
    """A manifest path given at start-up does not exist or cannot be read."""


@dataclass(slots=True)
class _FileState:
    signature: Signature
    objects: list[tuple[str, KubeObject]] = field(default_factory=list)
    error: str = ""


def parse_manifest(text: str, *, source: str = "<string>", json_only: bool = False) -> list[tuple[str, KubeObject]]:
    """The (kind, object) pairs of the kinds the proxy reads; raises ValueError when the text does not parse.

    Other kinds are skipped silently; an object without metadata.name is skipped with a warning.
    """
    if json_only:
        try:
            documents: Iterable[Any] = [json.loads(text)]
        except json.JSONDecodeError as error:
            raise ValueError(f"invalid JSON: {error}") from None
    else:
        try:
            documents = list(yaml.load_all(text, Loader=_Loader))
        except yaml.YAMLError as error:
            raise ValueError(f"invalid YAML: {error}") from None
    found: list[tuple[str, KubeObject]] = []
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        if not isinstance(document, dict):
            log.warning("%s: document %d is not an object, skipped", source, number)
            continue
        kind = document.get("kind")
        items = document.get("items")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            # `kind: List` items name their kind; `IngressList` items from the raw API may not.
            item_kind = kind[: -len("List")] or None
            for item in items:
                if isinstance(item, dict):
                    _collect(found, item.get("kind") or item_kind, item, source)
                else:
                    log.warning("%s: an item of %s is not an object, skipped", source, kind)
            continue
        _collect(found, kind, document, source)
    return found


def _collect(found: list[tuple[str, KubeObject]], kind: Any, obj: KubeObject, source: str) -> None:
    if kind not in KINDS:
        return
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        log.warning("%s: %s without metadata.name skipped", source, kind)
        return
    if kind not in CLUSTER_SCOPED and not meta.get("namespace"):
        meta["namespace"] = DEFAULT_NAMESPACE
    if kind == "Secret" and isinstance(obj.get("stringData"), dict):
        _fold_string_data(obj)
    found.append((kind, obj))


def _fold_string_data(secret: KubeObject) -> None:
    """Merge stringData into data as base64, as the API server does on write."""
    data = dict(secret.get("data") or {})
    for key, value in secret.pop("stringData").items():
        data[key] = base64.b64encode(str(value).encode()).decode("ascii")
    secret["data"] = data


class ManifestSource:
    """Loads manifest files into the cache and keeps them in sync with the disk."""

    def __init__(self, cache: ObjectCache, paths: Iterable[str], *, interval: float = POLL_INTERVAL) -> None:
        self.cache = cache
        self.paths = tuple(os.path.abspath(p) for p in paths)
        self.interval = interval
        self._files: dict[str, _FileState] = {}
        self._loaded = False
        # Objects per (kind, key) seen twice, warned about once per source file pair.
        self._duplicates_warned: set[tuple[str, str, str, str]] = set()
        self.reloads = 0

    async def load(self) -> None:
        """First load: every kind is replaced and marked synced; raises ManifestError for a missing path."""
        for path in self.paths:
            if not os.path.exists(path):
                raise ManifestError(f"manifest path {path} does not exist")
        await self._reload()

    async def run(self) -> None:
        """Poll the paths forever (cancel to stop)."""
        if not self._loaded:
            await self.load()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._reload()
            except Exception:  # a surprise in one poll must not end file watching
                log.exception("reloading manifests failed")

    async def _reload(self) -> None:
        changed_kinds = await asyncio.to_thread(self._refresh)
        if self._loaded and not changed_kinds:
            return
        kinds = KINDS if not self._loaded else sorted(changed_kinds)
        merged = self._merge()
        for kind in kinds:
            self.cache.replace(kind, merged.get(kind, ()))
        if not self._loaded:
            self._loaded = True
            for kind in KINDS:
                self.cache.mark_synced(kind)
        self.reloads += 1
        total = sum(len(s.objects) for s in self._files.values())
        log.info("loaded %d objects from %d manifest files", total, len(self._files))

    # The methods below run in a worker thread: they touch only this source's file table.

    def _scan(self) -> dict[str, Signature]:
        found: dict[str, Signature] = {}
        for root in self.paths:
            try:
                info = os.stat(root)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                try:
                    entries = list(os.scandir(root))
                except OSError as error:
                    log.warning("cannot list %s: %s", root, error)
                    continue
                for entry in entries:
                    if entry.name.startswith(".") or not entry.name.endswith(EXTENSIONS):
                        continue
                    try:
                        entry_info = os.stat(entry.path)  # follows symlinks (ConfigMap mounts)
                    except OSError:
                        continue
                    if stat.S_ISREG(entry_info.st_mode):
                        found[entry.path] = _signature(entry_info)
            elif stat.S_ISREG(info.st_mode):
                found[root] = _signature(info)
        return found

    def _refresh(self) -> set[str]:
        """Re-read changed files; returns the kinds whose objects may have changed."""
        kinds: set[str] = set()
        current = self._scan()
        for path in list(self._files):
            if path not in current:
                state = self._files.pop(path)
                kinds.update(kind for kind, _ in state.objects)
                log.info("%s removed", path)
        for path, signature in current.items():
            state = self._files.get(path)
            if state is not None and state.signature == signature:
                continue
            try:
                with open(path, "rb") as handle:
                    text = handle.read().decode("utf-8")
                objects = parse_manifest(text, source=path, json_only=path.endswith(".json"))
            except (OSError, UnicodeDecodeError, ValueError) as error:
                kept = len(state.objects) if state is not None else 0
                log.warning("%s: %s (keeping its last good %d objects)", path, error, kept)
                if state is None:
                    self._files[path] = _FileState(signature, [], str(error))
                else:
                    state.signature = signature
                    state.error = str(error)
                continue
            if state is not None:
                kinds.update(kind for kind, _ in state.objects)
            kinds.update(kind for kind, _ in objects)
            self._files[path] = _FileState(signature, objects)
        return kinds

    def _merge(self) -> dict[str, list[KubeObject]]:
        merged: dict[str, dict[tuple[str, str], tuple[str, KubeObject]]] = {}
        for path in sorted(self._files):
            for kind, obj in self._files[path].objects:
                meta = obj["metadata"]
                key = (meta.get("namespace") or "", meta["name"])
                by_key = merged.setdefault(kind, {})
                earlier = by_key.get(key)
                if earlier is not None:
                    warned = (kind, f"{key[0]}/{key[1]}", earlier[0], path)
                    if warned not in self._duplicates_warned:
                        self._duplicates_warned.add(warned)
                        log.warning("%s %s/%s in %s replaces the one in %s", kind, key[0], key[1], path, earlier[0])
                by_key[key] = (path, obj)
        return {kind: [obj for _, obj in by_key.values()] for kind, by_key in merged.items()}

    @property
    def errors(self) -> dict[str, str]:
        """Files whose last read failed, with the reason."""
        return {path: state.error for path, state in self._files.items() if state.error}


def _signature(info: os.stat_result) -> Signature:
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
