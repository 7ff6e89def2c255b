"""File mode: Kubernetes manifests on disk feed the object cache, and edits are picked up live.

A source path is a file (any name) or a folder, whose `*.yaml`, `*.yml` and `*.json` files are
read (one level, no subfolders; names starting with "." are skipped, which also skips the
`..data` links of a mounted ConfigMap). A file holds one or more YAML documents; a document is
an object or a list (`kind: List`, or `kind: IngressList` etc., as `kubectl get -o yaml` prints).

Changes are noticed through Linux inotify on every folder involved (the given folders, the
folders of given files, the folders symlinks point into), read on the event loop: an edit, a
write-and-rename, a new or deleted file, or a ConfigMap volume swapping its `..data` link
wakes a rescan within milliseconds. The rescan is a stat of each file; only files whose stat
changed, or that an event named, are parsed again (in a thread). A slow safety poll catches
what inotify cannot see (network filesystems); without inotify (another OS, no inotify
instance, the watch limit reached) the folders are polled every half second instead.

A file that fails to parse keeps its last good objects, so a half-saved edit never takes
routes down; a deleted file takes its objects with it.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import ctypes.util
import errno
import json
import logging
import os
import stat
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml

from proxy.kube.cache import (
    BACKEND_TLS_POLICY,
    BACKEND_TRAFFIC_POLICY,
    CLUSTER_SCOPED,
    CONFIG_MAP,
    CONTROLLER_CONFIG_MAP,
    GATEWAY_KINDS,
    KINDS,
    NAMESPACE,
    STORED_KINDS,
    TLS_ROUTE,
    ObjectCache,
)
from proxy.objects import KubeObject

log = logging.getLogger("pyngress.files")

EXTENSIONS = (".yaml", ".yml", ".json")
# Without inotify: fast enough that an edit shows within a second, cheap enough to ignore
# (one stat per file).
POLL_INTERVAL = 0.5
# With inotify: only for changes it cannot see (NFS, FUSE), so it can be slow.
SAFETY_POLL_INTERVAL = 2.0
DEFAULT_NAMESPACE = "default"
# The API versions read for kinds whose name other APIs use too (Istio has a `Gateway`, Knative
# and others their own kinds): an object of another group is not ours and is skipped.
GATEWAY_API_VERSIONS = frozenset({"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"})
API_VERSIONS: dict[str, frozenset[str]] = {
    **dict.fromkeys(GATEWAY_KINDS, GATEWAY_API_VERSIONS),
    # TLSRoute reached v1 in Gateway API v1.5; earlier bundles serve it as v1alpha2 (and v1alpha3).
    TLS_ROUTE: GATEWAY_API_VERSIONS | {"gateway.networking.k8s.io/v1alpha2", "gateway.networking.k8s.io/v1alpha3"},
    NAMESPACE: frozenset({"v1"}),
    CONFIG_MAP: frozenset({"v1"}),
    # Ours (Envoy Gateway's kind of the same name is gateway.envoyproxy.io's: not ours).
    BACKEND_TRAFFIC_POLICY: frozenset({"pyngress.dev/v1alpha1"}),
    BACKEND_TLS_POLICY: frozenset({"gateway.networking.k8s.io/v1"}),
}
# The API server labels every Namespace with its name (immutable), so selectors can pick one by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# (mtime, ctime, size, inode): any rewrite, rename-over or truncation changes one of them.
Signature = tuple[int, int, int, int]

# ---------------------------------------------------------------------------------- inotify
# Constants from <sys/inotify.h> (stable Linux ABI).
IN_ATTRIB = 0x0004
IN_CLOSE_WRITE = 0x0008
IN_MOVED_FROM = 0x0040
IN_MOVED_TO = 0x0080
IN_CREATE = 0x0100
IN_DELETE = 0x0200
IN_DELETE_SELF = 0x0400
IN_MOVE_SELF = 0x0800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
WATCH_MASK = (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB
              | IN_DELETE_SELF | IN_MOVE_SELF)
# struct inotify_event {int wd; uint32_t mask, cookie, len; char name[len];}
_EVENT = struct.Struct("iIII")
# Room for many events per read (one needs 16 bytes + a name of at most 256).
_READ_SIZE = 64 * 1024
# Reads per wake-up: a flood is drained in slices, the loop's reader callback comes back for the rest.
_READS_PER_WAKE = 16
# Files seen created but not yet closed (written right now); bounded in case closes go unseen.
_MAX_OPENING = 1024


class DirectoryEvent(NamedTuple):
    """One inotify event: the watched folder (its real path), the entry name ("" for the folder itself), the mask."""

    directory: str
    name: str
    mask: int


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, f"inotify is Linux only (this is {sys.platform})")
    library = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    library.inotify_init1.argtypes = [ctypes.c_int]
    library.inotify_init1.restype = ctypes.c_int
    library.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    library.inotify_add_watch.restype = ctypes.c_int
    library.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    library.inotify_rm_watch.restype = ctypes.c_int
    return library


class DirectoryWatcher:
    """Linux inotify on a set of folders, read by the event loop (`loop.add_reader`, no thread).

    Folders, not files: an editor's write-and-rename and a ConfigMap's `..data` swap replace
    the file's inode, which a watch on the file itself would lose. Raises OSError when inotify
    is unavailable (not Linux, no instance left); `update` raises OSError when a folder cannot
    be watched (the per-user watch limit reached, no permission).
    """

    def __init__(self, callback: Callable[[list[DirectoryEvent]], None]) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd = fd
        self._callback = callback
        self._by_wd: dict[int, str] = {}
        self._by_path: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def directories(self) -> frozenset[str]:
        return frozenset(self._by_path)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver events to the callback from now on, on `loop`."""
        self._loop = loop
        loop.add_reader(self.fd, self._read)

    def update(self, directories: Iterable[str]) -> bool:
        """Watch exactly `directories` (real paths); True when a watch was added (the caller rescans:
        a change between its scan and the new watch would be missed otherwise)."""
        wanted = set(directories)
        for path in list(self._by_path.keys() - wanted):
            self._forget(self._by_path[path], remove=True)
        added = False
        for path in sorted(wanted - self._by_path.keys()):
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), WATCH_MASK | IN_ONLYDIR)
            if wd < 0:
                code = ctypes.get_errno()
                if code in (errno.ENOENT, errno.ENOTDIR):
                    continue  # gone since the scan; the next scan notices
                raise OSError(code, f"cannot watch {path}: {os.strerror(code)}"
                              + (" (fs.inotify.max_user_watches reached)" if code == errno.ENOSPC else ""))
            if wd in self._by_wd:  # the same folder by another path (a bind mount): one watch serves both
                self._by_path[path] = wd
                continue
            self._by_wd[wd] = path
            self._by_path[path] = wd
            added = True
        return added

    def drain(self) -> None:
        """Deliver the events queued so far now, without waiting for the loop's reader callback."""
        if self.fd >= 0:
            self._read()

    def close(self) -> None:
        if self.fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
        self._by_wd.clear()
        self._by_path.clear()

    def _forget(self, wd: int, *, remove: bool) -> None:
        path = self._by_wd.pop(wd, None)
        for other in [p for p, w in self._by_path.items() if w == wd]:
            del self._by_path[other]
        if remove and path is not None:
            self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL if the kernel dropped it already: fine

    def _read(self) -> None:
        events: list[DirectoryEvent] = []
        for _ in range(_READS_PER_WAKE):
            try:
                data = os.read(self.fd, _READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                log.warning("reading inotify events failed: %s", error)
                break
            if not data:
                break
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size: offset + _EVENT.size + length]
                offset += _EVENT.size + length
                name = os.fsdecode(raw.split(b"\0", 1)[0])
                if mask & IN_Q_OVERFLOW:
                    events.append(DirectoryEvent("", "", mask))
                    continue
                directory = self._by_wd.get(wd)
                if directory is None:
                    continue  # a watch already forgotten
                events.append(DirectoryEvent(directory, name, mask))
                if mask & IN_IGNORED:
                    self._forget(wd, remove=False)  # the folder is gone (or we removed the watch)
                elif mask & IN_MOVE_SELF:
                    self._forget(wd, remove=True)  # the watch would follow the folder to a path we do not read
        if events:
            self._callback(events)


class ManifestError(Exception):
    """A manifest path given at start-up does not exist or cannot be read."""


@dataclass(slots=True)
class _FileState:
    signature: Signature
    objects: list[tuple[str, KubeObject]] = field(default_factory=list)
    error: str = ""


def parse_manifest(text: str, *, source: str = "<string>", json_only: bool = False) -> list[tuple[str, KubeObject]]:
    """The (kind, object) pairs of the kinds the proxy reads; raises ValueError when the text does not parse.

    Other kinds are skipped silently, and so are Gateway API kinds of another apiVersion than
    gateway.networking.k8s.io/v1 or v1beta1 (another API's `Gateway` is not ours); an object
    without metadata.name is skipped with a warning. Namespaced objects without a namespace go to
    `default`; a Namespace gets the `kubernetes.io/metadata.name` label the API server gives it.
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
            # `kind: List` items name their kind and version; `IngressList` items from the raw API may not.
            item_kind = kind[: -len("List")] or None
            for item in items:
                if isinstance(item, dict):
                    _collect(found, item.get("kind") or item_kind, item.get("apiVersion") or document.get("apiVersion"),
                             item, source)
                else:
                    log.warning("%s: an item of %s is not an object, skipped", source, kind)
            continue
        _collect(found, kind, document.get("apiVersion"), document, source)
    return found


def _collect(found: list[tuple[str, KubeObject]], kind: Any, api_version: Any, obj: KubeObject, source: str) -> None:
    if kind not in KINDS:
        return
    versions = API_VERSIONS.get(kind)
    if versions is not None and api_version not in versions:
        log.debug("%s: %s of apiVersion %r is not one we read, skipped", source, kind, api_version)
        return
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(name, str) or not name:
        log.warning("%s: %s without metadata.name skipped", source, kind)
        return
    if kind not in CLUSTER_SCOPED and not meta.get("namespace"):
        meta["namespace"] = DEFAULT_NAMESPACE
    if kind == "Secret" and isinstance(obj.get("stringData"), dict):
        _fold_string_data(obj)
    if kind == NAMESPACE:
        labels = meta.get("labels")
        meta["labels"] = {**(labels if isinstance(labels, dict) else {}), NAMESPACE_NAME_LABEL: name}
    found.append((kind, obj))


def _fold_string_data(secret: KubeObject) -> None:
    """Merge stringData into data as base64, as the API server does on write."""
    data = dict(secret.get("data") or {})
    for key, value in secret.pop("stringData").items():
        data[key] = base64.b64encode(str(value).encode()).decode("ascii")
    secret["data"] = data


class ManifestSource:
    """Loads manifest files into the cache and keeps them in sync with the disk.

    `inotify=False` (or a system without it) polls every `interval`; with inotify, events
    trigger rescans and a poll every `safety_interval` catches what inotify cannot see.
    """

    def __init__(self, cache: ObjectCache, paths: Iterable[str], *, interval: float = POLL_INTERVAL,
                 safety_interval: float = SAFETY_POLL_INTERVAL, inotify: bool = True) -> None:
        self.cache = cache
        self.paths = tuple(os.path.abspath(p) for p in paths)
        self.interval = interval
        self.safety_interval = safety_interval
        self.use_inotify = inotify
        self._files: dict[str, _FileState] = {}
        self._loaded = False
        # Objects per (kind, key) seen twice, warned about once per source file pair.
        self._duplicates_warned: set[tuple[str, str, str, str]] = set()
        self.reloads = 0
        self._watcher: DirectoryWatcher | None = None
        self._wake = asyncio.Event()
        # Filled by inotify events between rescans (event loop only); handed to the next rescan.
        self._named: set[str] = set()  # paths an event said were written or replaced: read even if stat looks equal
        self._opening: set[str] = set()  # created and not yet closed: wait for the close before reading
        self._reread_all = False  # the kernel's event queue overflowed
        # Real folder -> the folder paths, as given or scanned, that lead to it (event names map back to files).
        self._aliases: dict[str, frozenset[str]] = {}

    @property
    def mode(self) -> str:
        """"inotify" while change events are delivered, "poll" otherwise."""
        return "inotify" if self._watcher is not None else "poll"

    async def load(self) -> None:
        """First load: every kind is replaced and marked synced; raises ManifestError for a missing path."""
        for path in self.paths:
            if not os.path.exists(path):
                raise ManifestError(f"manifest path {path} does not exist")
        if self._watcher is None:
            self._start_watching()
        await self._reload()

    async def run(self) -> None:
        """Follow the paths forever (cancel to stop)."""
        try:
            if not self._loaded:
                await self.load()
            while True:
                woken = self._wake.is_set()
                if not woken:
                    wait = self.safety_interval if self._watcher is not None else self.interval
                    try:
                        async with asyncio.timeout(wait):
                            woken = await self._wake.wait()
                    except TimeoutError:
                        pass
                self._wake.clear()
                try:
                    await self._reload(poll=not woken)
                except Exception:  # a surprise in one rescan must not end file watching
                    log.exception("reloading manifests failed")
        finally:
            self.close()

    def close(self) -> None:
        """Release the inotify instance (run() does this when cancelled)."""
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    def _start_watching(self) -> None:
        if not self.use_inotify:
            log.info("manifests: polling every %.2f s (inotify switched off)", self.interval)
            return
        try:
            watcher = DirectoryWatcher(self._on_events)
        except OSError as error:
            log.warning("manifests: inotify unavailable (%s); polling every %.2f s instead", error, self.interval)
            return
        watcher.start(asyncio.get_running_loop())
        self._watcher = watcher

    def _on_events(self, events: list[DirectoryEvent]) -> None:
        """Note what the events name and wake the rescan (event loop; no I/O here)."""
        for event in events:
            if event.mask & IN_Q_OVERFLOW:
                self._reread_all = True
                continue
            if not event.name:
                continue
            for folder in self._aliases.get(event.directory, ()):
                path = os.path.join(folder, event.name)
                if event.mask & IN_CREATE and not event.mask & IN_ISDIR:
                    self._opening.add(path)
                if event.mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE):
                    self._opening.discard(path)
                if event.mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_ATTRIB):
                    self._named.add(path)
        if len(self._opening) > _MAX_OPENING:
            self._opening.clear()
        self._wake.set()

    async def _reload(self, *, poll: bool = False) -> None:
        if self._watcher is not None:
            self._watcher.drain()  # what happened before this rescan is known to it (files still open, names)
            self._wake.clear()  # ... so those events need no rescan of their own
        named, self._named = self._named, set()
        reread_all, self._reread_all = self._reread_all, False
        # A poll (no event woke us) reads files still open for writing too: their close may have gone unseen.
        opening = frozenset() if poll else frozenset(self._opening)
        changed_kinds, folders = await asyncio.to_thread(
            self._refresh, named=named, opening=opening, reread_all=reread_all)
        self._watch(folders)
        if self._loaded and not changed_kinds:
            return
        if CONFIG_MAP in changed_kinds:
            changed_kinds.add(CONTROLLER_CONFIG_MAP)  # the cache keeps --configmap's from the same documents
        kinds = STORED_KINDS if not self._loaded else sorted(changed_kinds)
        merged = self._merge()
        merged[CONTROLLER_CONFIG_MAP] = merged.get(CONFIG_MAP, [])
        for kind in kinds:
            self.cache.replace(kind, merged.get(kind, ()))
        if not self._loaded:
            self._loaded = True
            for kind in STORED_KINDS:
                self.cache.mark_synced(kind)
        self.reloads += 1
        total = sum(len(s.objects) for s in self._files.values())
        log.info("loaded %d objects from %d manifest files", total, len(self._files))

    def _watch(self, folders: dict[str, frozenset[str]]) -> None:
        self._aliases = folders
        if self._watcher is None:
            return
        try:
            added = self._watcher.update(folders)
        except OSError as error:
            log.warning("manifests: %s; polling every %.2f s instead of inotify", error, self.interval)
            self.close()
            return
        if added:
            self._wake.set()  # rescan once more: something may have changed before the watch existed

    # The methods below run in a worker thread: they touch only this source's file table.

    def _scan(self) -> tuple[dict[str, Signature], dict[str, frozenset[str]]]:
        """The manifest files with their stat signatures, and the folders to watch (real path -> aliases)."""
        found: dict[str, Signature] = {}
        folders: dict[str, set[str]] = {}

        def watch(folder: str, *, alias: bool = True) -> None:
            real = os.path.realpath(folder)
            aliases = folders.setdefault(real, set())
            if alias:
                aliases.add(folder)

        for root in self.paths:
            try:
                info = os.stat(root)
            except OSError:
                watch(os.path.dirname(root))  # gone: its folder shows it coming back
                continue
            if stat.S_ISDIR(info.st_mode):
                watch(root)
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
                        if entry.is_symlink():  # a link elsewhere: its target changes in that folder
                            watch(os.path.dirname(os.path.realpath(entry.path)), alias=False)
            elif stat.S_ISREG(info.st_mode):
                found[root] = _signature(info)
                watch(os.path.dirname(root))
                if os.path.islink(root):
                    watch(os.path.dirname(os.path.realpath(root)), alias=False)
        return found, {real: frozenset(aliases) for real, aliases in folders.items()}

    def _refresh(self, *, named: set[str] | frozenset[str] = frozenset(), opening: frozenset[str] = frozenset(),
                 reread_all: bool = False) -> tuple[set[str], dict[str, frozenset[str]]]:
        """Re-read changed files; returns the kinds whose objects may have changed, and the folders to watch."""
        kinds: set[str] = set()
        current, folders = self._scan()
        for path in list(self._files):
            if path not in current:
                removed = self._files.pop(path)
                kinds.update(kind for kind, _ in removed.objects)
                log.info("%s removed", path)
        for path, signature in current.items():
            state = self._files.get(path)
            if path in opening and not os.path.islink(path):
                continue  # being written: its close event comes next
            if state is not None and state.signature == signature and not reread_all and path not in named:
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
            if state is not None and state.objects == objects:
                if state.error:
                    log.info("%s: readable again, content as before", path)
                state.signature, state.error = signature, ""
                continue  # touched or rewritten with the same content: nothing to replace
            if state is not None:
                kinds.update(kind for kind, _ in state.objects)
            kinds.update(kind for kind, _ in objects)
            self._files[path] = _FileState(signature, objects)
        return kinds, folders

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
