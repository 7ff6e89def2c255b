"""Which kinds to watch, and at which version, for kinds that exist only while their CRDs are installed.

The Gateway API is a set of CustomResourceDefinitions: a cluster may have none of them, an older
bundle may serve a kind at an older version only, and they can be installed or removed while the
proxy runs. The watch asks discovery (`GET /apis/<group>/<version>`, an APIResourceList; the
request itself is `proxy.kube.watch.served_resources`) before watching such a kind and again every
so often, and watches only what is served. This module decides from the answers.

Discovery documents are non-resource URLs that the default `system:discovery` ClusterRole grants
to every authenticated user, so deploy/ RBAC needs no rule for them: API_CALLS is empty.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from proxy.kube.client import ApiCall

API_CALLS: tuple[ApiCall, ...] = ()

# (group, version) -> the resources served there that can be listed and watched, or None when
# the API server does not serve that group version at all.
Fetch = Callable[[str, str], Awaitable[frozenset[str] | None]]


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
    def with_kind(self) -> str: ...


def watchable(document: Any) -> frozenset[str] | None:
    """The resources of an APIResourceList that can be listed and watched (no subresources);
    None when `document` is not one."""
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list):
        return None
    return frozenset(entry["name"] for entry in resources if _watchable(entry))


def _watchable(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "/" in entry["name"]:
        return False  # subresources (gateways/status) are not what we list
    verbs = entry.get("verbs")
    return not isinstance(verbs, list) or {"list", "watch"} <= set(verbs)


async def discover(fetch: Fetch, specs: Iterable[Discoverable], *,
                   every: Iterable[Discoverable] = ()) -> dict[str, str | None]:
    """kind -> the version to watch it at ("" for a kind of a built-in group), or None when not served.

    A kind with `versions` is served at the first of them the API server serves. A kind with
    `with_kind` is watched while that kind (one of `every`) is served. Group versions
    are asked lazily in preference order, each at most once: a cluster serving every kind at v1
    costs one request, one without the Gateway API two small 404s.
    """
    answers: dict[tuple[str, str], frozenset[str] | None] = {}
    every = list(every)

    async def version_of(spec: Discoverable) -> str | None:
        for version in spec.versions:
            key = (spec.group, version)
            if key not in answers:
                answers[key] = await fetch(spec.group, version)
            served = answers[key]
            if served is not None and spec.resource in served:
                return version
        return None

    found: dict[str, str | None] = {}
    for spec in specs:
        if spec.versions:
            found[spec.kind] = await version_of(spec)
        elif spec.with_kind:
            needed = [other for other in every if other.kind == spec.with_kind and other.versions]
            found[spec.kind] = "" if needed and await version_of(needed[0]) is not None else None
        else:
            found[spec.kind] = ""
    return found
