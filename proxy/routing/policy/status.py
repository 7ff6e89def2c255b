"""BackendTrafficPolicy status as build output: one `status.ancestors[]` entry per target (GEP-713's
PolicyStatus, as Envoy Gateway writes it), with an `Accepted` condition and the spec's reasons:

- `Accepted` True, reason Accepted: applied to that target (the message lists ignored settings, if any);
- `Invalid`: the policy cannot be read, or the target is of a kind (or sectionName) we cannot attach to;
- `TargetNotFound`: no such object (or no rule / listener of that sectionName) in the policy's namespace;
- `Conflicted`: an older policy already targets it (the oldest wins, then namespace/name).

The status writer (cluster mode, leader only) publishes it; in file mode every problem is a warning in
the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.objects import Key, Snapshot
from proxy.routing.gateway.status import ACCEPTED, Condition, condition
from proxy.routing.policy.index import PolicyIndex, port_spellings
from proxy.routing.policy.targets import HTTP_ROUTE, INGRESS, SERVICE, TargetRef
from proxy.routing.policy.traffic import TrafficPolicy

INVALID = "Invalid"
TARGET_NOT_FOUND = "TargetNotFound"
CONFLICTED = "Conflicted"
# At most this many ancestor entries (the CRD's maxItems, as the Gateway API's PolicyStatus).
MAX_ANCESTORS = 16


@dataclass(frozen=True, slots=True)
class AncestorStatus:
    ref: TargetRef
    controller_name: str
    conditions: tuple[Condition, ...]

    def to_json(self) -> dict[str, Any]:
        return {"ancestorRef": self.ref.to_json(), "controllerName": self.controller_name,
                "conditions": [c.to_json() for c in self.conditions]}

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """Our entries of one policy's status.ancestors (BackendTrafficPolicy's here, BackendTLSPolicy's in
    tls_status)."""

    namespace: str
    name: str
    ancestors: tuple[AncestorStatus, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [ancestor.to_json() for ancestor in self.ancestors]

    def ancestor(self, kind: str, name: str, section: str = "") -> AncestorStatus | None:
        return next((a for a in self.ancestors if (a.ref.kind, a.ref.name, a.ref.section) == (kind, name, section)),
                    None)


@dataclass(frozen=True, slots=True)
class TrafficPolicyStatus:
    """Everything the policy status writer publishes for one build."""

    controller_name: str
    policies: Mapping[Key, PolicyStatus]


def policy_status(snapshot: Snapshot, index: PolicyIndex, controller: str) -> TrafficPolicyStatus | None:
    """The status of every BackendTrafficPolicy of the snapshot (None when there are none)."""
    if not index.traffic:
        return None
    found = {}
    for policy in index.traffic:
        ancestors = []
        for target in policy.targets[:MAX_ANCESTORS]:
            try:
                accepted = _accepted(snapshot, index, policy, target)
            except Exception as error:  # noqa: BLE001  (a bug must cost one condition, never the build)
                accepted = condition(ACCEPTED, False, INVALID, f"{type(error).__name__}: {error}", policy.generation)
            ancestors.append(AncestorStatus(target, controller, (accepted,)))
        found[policy.key] = PolicyStatus(policy.key[0], policy.key[1], tuple(ancestors))
    return TrafficPolicyStatus(controller, dict(sorted(found.items())))


def _accepted(snapshot: Snapshot, index: PolicyIndex, policy: TrafficPolicy, target: TargetRef) -> Condition:
    seen = policy.generation
    if policy.problem:
        return condition(ACCEPTED, False, INVALID, policy.problem, seen)
    if target.problem:
        return condition(ACCEPTED, False, INVALID, target.problem, seen)
    missing = _missing(snapshot, target)
    if missing:
        return condition(ACCEPTED, False, TARGET_NOT_FOUND, missing, seen)
    holder = index.conflicts.get(("BackendTrafficPolicy", policy.key, target.key))
    if holder is not None:
        return condition(ACCEPTED, False, CONFLICTED, f"BackendTrafficPolicy {holder[0]}/{holder[1]} (older) "
                                                      f"already targets {target}", seen)
    if policy.spec.empty:
        return condition(ACCEPTED, False, INVALID, "no setting of the policy can be applied; see its warnings", seen)
    message = "applied"
    if policy.warnings:
        notes = "; ".join(warning.message for warning in policy.warnings[:3])
        more = f" (and {len(policy.warnings) - 3} more)" if len(policy.warnings) > 3 else ""
        message = f"applied, with warnings: {notes}{more}"
    return condition(ACCEPTED, True, ACCEPTED, message[:32768], seen)


def _missing(snapshot: Snapshot, target: TargetRef) -> str:
    """Why the target cannot be found ("" when it exists)."""
    key = (target.namespace, target.name)
    where = f"{target.kind} {target.namespace}/{target.name}"
    if target.kind == SERVICE:
        service = snapshot.services.get(key)
        if service is None:
            return f"{where} not found"
        if target.section and not port_spellings(service, target.section):
            return f"{where} has no port named {target.section!r}"
        return ""
    if target.kind == INGRESS:
        return "" if key in snapshot.ingresses else f"{where} not found"
    objects = snapshot.http_routes if target.kind == HTTP_ROUTE else snapshot.gateways
    obj = objects.get(key)
    if obj is None:
        return f"{where} not found"
    if not target.section:
        return ""
    field, what = ("rules", "rule") if target.kind == HTTP_ROUTE else ("listeners", "listener")
    spec = obj.get("spec") if isinstance(obj, dict) else None
    items = spec.get(field) if isinstance(spec, dict) else None
    if isinstance(items, list) and any(isinstance(item, dict) and item.get("name") == target.section
                                       for item in items):
        return ""
    return f"{where} has no {what} named {target.section!r}"

