"""Policy status: publish the running configuration's `policy_status` (BackendTrafficPolicy: our
`status.ancestors` entries, one per target, each with an `Accepted` condition) and `tls_policy_status`
(the Gateway API's BackendTLSPolicy: one entry per Gateway routing to a target, or the Service for an
Ingress-only use, with `Accepted` and `ResolvedRefs`).

The Gateway API status writer's machinery (`gateway_status.GatewayStatusWriter`: leader only, a pass after a
quiet spell when the status to publish changes and every `resync` seconds, GET and PUT on /status with
the resourceVersion read, 409 merged again with backoff) with other objects: `status.ancestors` is
shared like an HTTPRoute's `status.parents` (GEP-713's PolicyStatus), so only entries whose
controllerName is ours are replaced; other controllers' are kept in place. With --gateway, each process
serves some Gateways of our class: an entry of ours naming a Gateway another process serves is that
process's, and kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from proxy.kube.client import CLUSTER, ApiCall, api_error, json_body
from proxy.kube.gateway_status import (
    _CONFLICT,
    _GONE,
    _WRITTEN,
    GatewayStatusWriter,
    Status,
    StatusDocument,
    StatusWriteError,
    _answer,
    _mapping,
    _Target,
    comparable,
    rfc3339,
    stamp,
)
from proxy.objects import Key

log = logging.getLogger("pyngress.policy_status")

# The CRD's maxItems for status.ancestors (as the Gateway API's PolicyStatus).
MAX_ANCESTORS = 16
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class PolicyKind:
    """One policy kind this writer publishes: where it lives, and where the cache and the Config hold it."""

    group: str
    version: str
    plural: str
    kind: str
    objects: str  # the Snapshot field
    status: str  # the Config field


TRAFFIC = PolicyKind("pyngress.dev", "v1alpha1", "backendtrafficpolicies", "BackendTrafficPolicy",
                     "backend_traffic_policies", "policy_status")
TLS = PolicyKind("gateway.networking.k8s.io", "v1", "backendtlspolicies", "BackendTLSPolicy", "backend_tls_policies",
                 "tls_policy_status")
KINDS = (TRAFFIC, TLS)
# Kept for callers naming BackendTrafficPolicy's (tests, the CRD).
GROUP, VERSION, PLURAL, KIND = TRAFFIC.group, TRAFFIC.version, TRAFFIC.plural, TRAFFIC.kind

API_CALLS: tuple[ApiCall, ...] = tuple(ApiCall(kind.group, f"{kind.plural}/status", verb, CLUSTER)
                                       for kind in KINDS for verb in ("get", "update"))


class PublishedPolicies(Protocol):
    """What this writer reads of the builder's TrafficPolicyStatus (proxy.routing.policy.status) and
    TlsPolicyStatus (proxy.routing.policy.tls_status)."""

    @property
    def policies(self) -> Mapping[Key, StatusDocument]: ...


AncestorKey = tuple[str, str, str, str, str]


def ancestor_key(ref: Any, namespace: str) -> AncestorKey:
    ref = _mapping(ref)
    return (ref.get("group") or "", ref.get("kind") or "", ref.get("namespace") or namespace, ref.get("name") or "",
            ref.get("sectionName") or "")


def ancestors_status(current: Any, desired: list[dict[str, Any]], *, namespace: str, controller: str,
                     now: str, kind: str = KIND, owns: Callable[[AncestorKey], bool] | None = None) -> Status | None:
    """A policy's new status, or None when status.ancestors already holds exactly `desired` as our entries.
    Our entries (controllerName ours, an ancestor `owns` accepts) are replaced by `desired`
    (PolicyStatus.to_json()); others are kept."""
    current = _mapping(current)
    ancestors = current.get("ancestors") if isinstance(current.get("ancestors"), list) else []

    def ours(entry: Any) -> bool:
        return (isinstance(entry, dict) and entry.get("controllerName") == controller
                and (owns is None or owns(ancestor_key(entry.get("ancestorRef"), namespace))))

    mine = [e for e in ancestors if ours(e)]
    others = [e for e in ancestors if not ours(e)]
    before = {ancestor_key(entry.get("ancestorRef"), namespace): entry for entry in mine}
    new_mine = [{**entry, "conditions": stamp(entry["conditions"],
                                              _mapping(before.get(ancestor_key(entry["ancestorRef"], namespace)))
                                              .get("conditions"), now)}
                for entry in desired]
    room = max(MAX_ANCESTORS - len(others), 0)
    if len(new_mine) > room:
        log.warning("%s in %s: %d ancestor entries of ours do not fit beside %d of other controllers (at most %d)",
                    kind, namespace, len(new_mine), len(others), MAX_ANCESTORS)
        new_mine = new_mine[:room]
    if sorted(map(repr, map(comparable, mine))) == sorted(map(repr, map(comparable, new_mine))):
        return None
    return {**current, "ancestors": others + new_mine}


@dataclass(slots=True)
class _PolicyTarget(_Target):
    kind: PolicyKind = TRAFFIC

    def __str__(self) -> str:
        return f"{self.kind.kind} {self.namespace}/{self.name}"


class PolicyStatusWriter(GatewayStatusWriter):
    """Keeps our entries of every BackendTrafficPolicy's and BackendTLSPolicy's status.ancestors equal to the
    build's."""

    async def reconcile(self) -> int:
        """One pass: write every policy whose status differs; returns how many were written."""
        runtime = self.holder.current
        if not self._leading() or runtime is None or not self.cache.synced:
            return 0
        desired = self._desired()
        self._seen = desired
        errors: list[str] = []
        writes = 0
        now = rfc3339()
        targets = [target for kind in KINDS
                   for target in self._policy_targets(kind, getattr(runtime.config, kind.status), now)]
        for target in targets:
            try:
                writes += await self._write(target)
            except Exception as err:  # noqa: BLE001  one object's failure must not hold up the others
                errors.append(f"{target}: {err}")
        self.passes_total += 1
        if errors:
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise StatusWriteError("; ".join(errors[:3]) + more)
        return writes

    def _desired(self) -> object:
        runtime = self.holder.current
        return tuple(getattr(runtime.config, kind.status) for kind in KINDS) if runtime is not None else None

    def owns_ancestor(self, key: AncestorKey) -> bool:
        """Whether an entry with our controllerName is this process's: with --gateway, one naming a Gateway
        another process serves is that process's."""
        return not self._gateways or key[1] != "Gateway" or f"{key[2]}/{key[3]}" in self._gateways

    def _policy_targets(self, kind: PolicyKind, desired: PublishedPolicies | None, now: str) -> list[_Target]:
        """Every policy of `kind` the cache holds: ours get the build's entries, the others (none of ours) lose
        ours."""
        found = desired.policies if desired is not None else {}
        targets: list[_Target] = []
        for key, obj in getattr(self.cache.snapshot(), kind.objects).items():
            entry = found.get(key)
            targets.append(_PolicyTarget(kind.plural, key[0], key[1], obj, partial(
                ancestors_status, desired=entry.to_json() if entry is not None else [], namespace=key[0],
                controller=self.controller, now=now, kind=kind.kind,
                owns=self.owns_ancestor if kind is TLS else None), kind=kind))
        return targets

    async def _read(self, target: _Target) -> dict[str, Any] | None:
        kind = _kind_of(target)
        status, body = await _answer(await self.custom.get_namespaced_custom_object_status(
            kind.group, kind.version, target.namespace, kind.plural, target.name, _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT))
        if status == 404:
            return None
        if status != 200:
            raise api_error(status, body)
        found = json.loads(body)
        if not isinstance(found, dict):
            raise api_error(status, b"not an object")
        return found

    async def _replace(self, target: _Target, body: dict[str, Any]) -> str:
        kind = _kind_of(target)
        status, data = await _answer(await self.custom.replace_namespaced_custom_object_status(
            kind.group, kind.version, target.namespace, kind.plural, target.name, json_body(body),
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT))
        if status == 409:
            return _CONFLICT
        if status == 404:
            return _GONE
        if status != 200:
            raise api_error(status, data)
        return _WRITTEN


def _kind_of(target: _Target) -> PolicyKind:
    return target.kind if isinstance(target, _PolicyTarget) else TRAFFIC
