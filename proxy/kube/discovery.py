"""Which resources the API server serves, for kinds that exist only while their CRDs are installed.

The Gateway API is a set of CustomResourceDefinitions: a cluster may have none of them, an older
bundle may serve a kind at an older version only, and they can be installed or removed while the
proxy runs. The watch asks discovery (`GET /apis/<group>/<version>`, an APIResourceList) before
watching such a kind and again every so often, and watches only what is served.

Discovery documents are non-resource URLs that the default `system:discovery` ClusterRole grants
to every authenticated user, so deploy/ RBAC needs no rule for them: API_CALLS is empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio.client import ApiClient, CustomObjectsApi

from proxy.kube.client import ApiCall, api_error

API_CALLS: tuple[ApiCall, ...] = ()

# A discovery document is small; an API server that cannot answer one in this time is in trouble.
DISCOVERY_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0


class Discoverable(Protocol):
    """What discovery needs to know of a kind (proxy.kube.watch.KindSpec has it)."""

    @property
    def kind(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def versions(self) -> tuple[str, ...]: ...
    @property
    def with_group(self) -> str: ...


async def served_resources(api_client: ApiClient, group: str, version: str, *,
                           timeout: float = DISCOVERY_TIMEOUT) -> frozenset[str] | None:
    """The resources (plurals) served at `group/version` that can be listed and watched, or None
    when the API server does not serve that group version at all (404); raises ApiException else."""
    response = await CustomObjectsApi(api_client).get_api_resources(
        group, version, _preload_content=False,
        _request_timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(CONNECT_TIMEOUT, timeout)))
    try:
        body = await response.read()
    finally:
        response.release()
    if response.status == 404:
        return None
    if response.status != 200:
        raise api_error(response.status, body)
    try:
        document = json.loads(body)
    except ValueError:
        raise api_error(502, b"discovery answered with something that is not JSON") from None
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list):
        raise api_error(502, b"discovery answered without a resource list")
    return frozenset(entry["name"] for entry in resources if _watchable(entry))


def _watchable(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "/" in entry["name"]:
        return False  # subresources (gateways/status) are not what we list
    verbs = entry.get("verbs")
    return not isinstance(verbs, list) or {"list", "watch"} <= set(verbs)


async def discover(api_client: ApiClient, specs: Iterable[Discoverable], *, every: Iterable[Discoverable] = (),
                   timeout: float = DISCOVERY_TIMEOUT) -> dict[str, str | None]:
    """kind -> the version to watch it at ("" for a kind of a built-in group), or None when not served.

    A kind with `versions` is served at the first of them the API server serves. A kind with
    `with_group` is watched while any kind of that group among `every` is served. Group versions
    are asked lazily in preference order, each at most once: a cluster serving every kind at v1
    costs one request, one without the Gateway API two small 404s.
    """
    answers: dict[tuple[str, str], frozenset[str] | None] = {}
    every = list(every)

    async def version_of(spec: Discoverable) -> str | None:
        for version in spec.versions:
            key = (spec.group, version)
            if key not in answers:
                answers[key] = await served_resources(api_client, spec.group, version, timeout=timeout)
            served = answers[key]
            if served is not None and spec.resource in served:
                return version
        return None

    found: dict[str, str | None] = {}
    for spec in specs:
        if spec.versions:
            found[spec.kind] = await version_of(spec)
        elif spec.with_group:
            found[spec.kind] = None
            for other in every:
                if other.group == spec.with_group and other.versions and await version_of(other) is not None:
                    found[spec.kind] = ""
                    break
        else:
            found[spec.kind] = ""
    return found
