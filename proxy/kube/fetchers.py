"""Reading one Secret or ConfigMap again (GET) when something starts naming one whose data the cache dropped.

Cluster mode lists and watches every Secret and ConfigMap, but the cache holds the data only of those that
matter (ObjectCache.hold_named_secrets, hold_named_config_maps). When an Ingress, Gateway or
BackendTLSPolicy starts naming one held by key alone, the cache calls a fetcher's `want(key)`; the fetcher
reads it once, retried with backoff, and hands it back; from then on the watch keeps it current.
The read function is the watch's (proxy.kube.watch declares its API calls).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from proxy.kube.cache import ObjectCache
from proxy.kube.client import CONNECT_TIMEOUT, Backoff, WatchProtocolError, api_error, describe_error, raw_response
from proxy.objects import Key, KubeObject

log = logging.getLogger("pyngress.watch")

# A Secret read again (GET) for a new reference: retried with backoff this many times, then left to the
# watch (its next change brings it) with a warning.
SECRET_FETCH_ATTEMPTS = 5
SECRET_FETCH_TIMEOUT = 30.0

# The generated read function of one kind: read(name, namespace, **options).
Read = Callable[..., Awaitable[Any]]


class SecretFetcher:
    """Reads a Secret again (GET) when something starts naming one whose data the cache does not hold.

    `want(key)` is the cache's callback (called inside a cache write: it only schedules); each key is
    read by one task at a time, retried with backoff, and dropped when the cache no longer wants it
    (deleted, or brought by a watch event meanwhile)."""

    def __init__(self, cache: ObjectCache, read: Read, *, backoff: Backoff) -> None:
        """`read(name, namespace, **options)`: the API's read function of this kind."""
        self.cache = cache
        self.read = read
        self.backoff = backoff
        self.tasks: dict[Key, asyncio.Task[None]] = {}
        self.fetched_total = 0

    kind = "Secret"

    def want(self, key: Key) -> None:
        if key in self.tasks:
            return
        task = asyncio.get_running_loop().create_task(self._fetch(key),
                                                      name=f"get-{self.kind.lower()}-{key[0]}/{key[1]}")
        self.tasks[key] = task
        task.add_done_callback(lambda _: self.tasks.pop(key, None))

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _fetch(self, key: Key) -> None:
        try:
            await self._read(key)
        finally:
            self._ended(key)

    # The hooks a fetcher of another kind replaces.
    def _ended(self, key: Key) -> None:
        self.cache.fetch_ended(key)

    def _wanted(self, key: Key) -> bool:
        return key in self.cache.unheld_secrets()

    def _deliver(self, obj: KubeObject) -> None:
        self.cache.fetched(obj)

    async def _read(self, key: Key) -> None:
        namespace, name = key
        timeout = aiohttp.ClientTimeout(total=SECRET_FETCH_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        for attempt in range(1, SECRET_FETCH_ATTEMPTS + 1):
            if not self._wanted(key):
                return
            try:
                response = raw_response(await self.read(name, namespace, _preload_content=False,
                                                        _request_timeout=timeout))
                try:
                    body = await response.read()
                finally:
                    response.release()
                if response.status == 404:
                    return  # deleted meanwhile: the watch brings the DELETED event
                if response.status != 200:
                    raise api_error(response.status, body)
                obj = json.loads(body)
                if not isinstance(obj, dict):
                    raise WatchProtocolError(f"GET {self.kind} {namespace}/{name} answered without an object")
                self.fetched_total += 1
                self._deliver(obj)
                return
            except Exception as err:  # noqa: BLE001  retried; the watch keeps the rest going
                if attempt == SECRET_FETCH_ATTEMPTS:
                    log.warning("could not read %s %s/%s (%s); it is used once it changes or the watch "
                                "lists again", self.kind, namespace, name, describe_error(err))
                    return
                await asyncio.sleep(self.backoff.delay(attempt))


class ConfigMapFetcher(SecretFetcher):
    """Reads a ConfigMap again (GET) when an Ingress starts naming one whose data the cache dropped."""

    kind = "ConfigMap"

    def _ended(self, key: Key) -> None:
        self.cache.config_map_fetch_ended(key)

    def _wanted(self, key: Key) -> bool:
        return self.cache.wants_config_map(key)

    def _deliver(self, obj: KubeObject) -> None:
        self.cache.fetched_config_map(obj)
