"""Gateway API status as data: the build's output for the status writer, which only publishes it.

Each condition carries the `observedGeneration` of the object it describes (its
`metadata.generation` when it was translated); `lastTransitionTime` is the writer's to add (a clock
is not the builder's business). HTTPRoute status lists only the parentRefs that name one of our
Gateways: entries of other controllers, and of our Gateways served by another process
(--gateway), are someone else's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.objects import Key

GATEWAY_GROUP = "gateway.networking.k8s.io"

# Condition types and reasons (sigs.k8s.io/gateway-api apis/v1).
ACCEPTED = "Accepted"
PROGRAMMED = "Programmed"
RESOLVED_REFS = "ResolvedRefs"
CONFLICTED = "Conflicted"
OVERLAPPING_TLS_CONFIG = "OverlappingTLSConfig"
PARTIALLY_INVALID = "PartiallyInvalid"

TRUE = "True"
FALSE = "False"


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str  # "True" / "False"
    reason: str
    message: str
    observed_generation: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "status": self.status, "reason": self.reason, "message": self.message,
                "observedGeneration": self.observed_generation}


def condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> Condition:
    return Condition(kind, TRUE if ok else FALSE, reason, message, generation)


@dataclass(frozen=True, slots=True)
class ClassStatus:
    """A GatewayClass of ours: Accepted, and the features this implementation supports."""

    name: str
    conditions: tuple[Condition, ...]
    supported_features: tuple[str, ...]  # sorted, as the API asks

    def to_json(self) -> dict[str, Any]:
        return {"conditions": [c.to_json() for c in self.conditions],
                "supportedFeatures": [{"name": name} for name in self.supported_features]}


@dataclass(frozen=True, slots=True)
class ListenerStatus:
    name: str
    supported_kinds: tuple[tuple[str, str], ...]  # (group, kind)
    attached_routes: int
    conditions: tuple[Condition, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "supportedKinds": [{"group": g, "kind": k} for g, k in self.supported_kinds],
                "attachedRoutes": self.attached_routes, "conditions": [c.to_json() for c in self.conditions]}


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    namespace: str
    name: str
    conditions: tuple[Condition, ...]
    listeners: tuple[ListenerStatus, ...]

    def to_json(self) -> dict[str, Any]:
        """`status` without `addresses` (the writer knows the published addresses)."""
        return {"conditions": [c.to_json() for c in self.conditions],
                "listeners": [listener.to_json() for listener in self.listeners]}

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def listener(self, name: str) -> ListenerStatus | None:
        return next((item for item in self.listeners if item.name == name), None)


@dataclass(frozen=True, slots=True)
class ParentRef:
    """A route's parentRef with its defaults filled in, as the status entry names it."""

    name: str
    namespace: str
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    section_name: str = ""
    port: int | None = None

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"group": self.group, "kind": self.kind, "namespace": self.namespace,
                                 "name": self.name}
        if self.section_name:
            found["sectionName"] = self.section_name
        if self.port is not None:
            found["port"] = self.port
        return found


@dataclass(frozen=True, slots=True)
class RouteParentStatus:
    parent_ref: ParentRef
    controller_name: str
    conditions: tuple[Condition, ...]

    def to_json(self) -> dict[str, Any]:
        return {"parentRef": self.parent_ref.to_json(), "controllerName": self.controller_name,
                "conditions": [c.to_json() for c in self.conditions]}

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """Our entries of one HTTPRoute's status.parents (one per parentRef naming one of our Gateways)."""

    namespace: str
    name: str
    parents: tuple[RouteParentStatus, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [parent.to_json() for parent in self.parents]

    def parent(self, gateway: str, section_name: str = "") -> RouteParentStatus | None:
        """The entry for a parentRef to Gateway `gateway` ("name" or "namespace/name")."""
        for parent in self.parents:
            ref = parent.parent_ref
            if gateway in (ref.name, f"{ref.namespace}/{ref.name}") and ref.section_name == section_name:
                return parent
        return None


@dataclass(frozen=True, slots=True)
class GatewayApiStatus:
    """Everything the status writer publishes for one build, keyed like the snapshot's mappings."""

    controller_name: str
    classes: Mapping[str, ClassStatus]
    gateways: Mapping[Key, GatewayStatus]
    routes: Mapping[Key, RouteStatus]
    # TLSRoutes' parent entries (the same shape as HTTPRoutes').
    tls_routes: Mapping[Key, RouteStatus] = field(default_factory=dict)
    # GRPCRoutes' parent entries (the same shape as HTTPRoutes').
    grpc_routes: Mapping[Key, RouteStatus] = field(default_factory=dict)
