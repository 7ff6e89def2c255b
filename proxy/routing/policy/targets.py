"""Policy attachment (GEP-713): `targetRefs` naming objects in the policy's own namespace.

A target is (kind, namespace, name, sectionName); the index looks policies up by exactly that. Which
kinds a policy may name is the policy's business (`read_targets` takes the allowed (group, kind) pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.routing.fields import Malformed, require_object, sequence, text

GATEWAY_GROUP = "gateway.networking.k8s.io"
NETWORKING_GROUP = "networking.k8s.io"

SERVICE = "Service"
INGRESS = "Ingress"
HTTP_ROUTE = "HTTPRoute"
GATEWAY = "Gateway"

# (kind, namespace, name, sectionName): what policies are attached to.
TargetKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class TargetRef:
    """One targetRef with the policy's namespace; `problem` set: the reference cannot be used."""

    group: str
    kind: str
    name: str
    namespace: str
    section: str = ""
    problem: str = ""

    @property
    def key(self) -> TargetKey:
        return (self.kind, self.namespace, self.name, self.section)

    def to_json(self) -> dict[str, Any]:
        """The status `ancestorRef` naming this target."""
        found: dict[str, Any] = {"group": self.group, "kind": self.kind, "namespace": self.namespace,
                                 "name": self.name}
        if self.section:
            found["sectionName"] = self.section
        return found

    def __str__(self) -> str:
        section = f" (sectionName {self.section})" if self.section else ""
        return f"{self.kind} {self.namespace}/{self.name}{section}"


def read_targets(body: dict[str, Any], namespace: str, *, kinds: dict[tuple[str, str], bool]) -> tuple[TargetRef, ...]:
    """spec.targetRefs; `kinds` maps each allowed (group, kind) to whether it may carry a sectionName.
    A reference of another kind (or with a sectionName where none is supported) comes back with a problem."""
    found: dict[TargetRef, None] = {}
    for index, item in enumerate(sequence(body, "targetRefs", "spec.")):
        where = f"spec.targetRefs[{index}]."
        item = require_object(item, where[:-1])
        group = item.get("group", "")
        if group is None:
            group = ""
        if not isinstance(group, str):
            raise Malformed(f"{where}group must be a string")
        kind = text(item, "kind", where, required=True)
        name = text(item, "name", where, required=True)
        section = text(item, "sectionName", where)
        problem = ""
        sections = kinds.get((group, kind))
        if sections is None:
            allowed = ", ".join(f"{g or 'core'}/{k}" for g, k in kinds)
            problem = f"{where[:-1]}: {group or 'core'}/{kind} cannot be targeted (only {allowed})"
        elif section and not sections:
            problem = f"{where[:-1]}: sectionName is not supported for {kind} targets"
        found.setdefault(TargetRef(group, kind, name, namespace, section, problem), None)
    if not found:
        raise Malformed("spec.targetRefs names no target")
    return tuple(found)
