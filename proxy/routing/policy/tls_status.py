"""BackendTLSPolicy status as build output: the Gateway API's PolicyAncestorStatus entries of ours.

Ancestors (GEP-713, as the conformance suite looks them up): every Gateway of ours whose HTTPRoutes or
GRPCRoutes, accepted there, have a backendRef to the targeted Service (to the port a `sectionName` names). A Service
only Ingresses route to has no Gateway to name: its entry names the Service itself (a ParentReference of
kind Service, as GAMMA routes name theirs), so problems such as a missing CA bundle are visible on the
policy. A Service none of our routes uses gets no entry: we do not speak for traffic we do not carry.

Each entry carries the same two conditions, judged per target:

- `Accepted`: True/Accepted; False with `Invalid` (the policy cannot be read), `TargetNotFound` (no such
  Service, or no port of that sectionName), `Conflicted` (an older policy, then namespace/name, already
  targets it), `NoValidCACertificate` (every caCertificateRef is invalid: connections fail);
- `ResolvedRefs`: True/ResolvedRefs; False with `InvalidKind` (a reference to something other than a
  core ConfigMap) or `InvalidCACertificateRef` (no such ConfigMap, or no PEM certificate in `ca.crt`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.objects import Key, Snapshot
from proxy.routing.gateway.status import ACCEPTED, Condition, condition
from proxy.routing.policy.index import PolicyIndex, port_spellings
from proxy.routing.policy.status import (
    CONFLICTED,
    INVALID,
    MAX_ANCESTORS,
    TARGET_NOT_FOUND,
    AncestorStatus,
    PolicyStatus,
)
from proxy.routing.policy.targets import GATEWAY, GATEWAY_GROUP, SERVICE, TargetRef
from proxy.routing.policy.tls import KIND, TlsPolicy

if TYPE_CHECKING:
    from proxy.routing.gateway.status import GatewayApiStatus

RESOLVED_REFS = "ResolvedRefs"
NO_VALID_CA = "NoValidCACertificate"


@dataclass(frozen=True, slots=True)
class TlsPolicyStatus:
    """Everything the policy status writer publishes for BackendTLSPolicies in one build."""

    controller_name: str
    policies: Mapping[Key, PolicyStatus]


# (namespace, Service) -> the Gateways (namespace, name) whose accepted HTTPRoutes send there, with the
# backend ports the routes name (as written: numbers).
ServiceUse = dict[Key, dict[Key, set[str]]]


def tls_policy_status(snapshot: Snapshot, index: PolicyIndex, controller: str, *,
                      gateway_status: GatewayApiStatus | None,
                      used: Iterable[tuple[str, str, str]]) -> TlsPolicyStatus | None:
    """The status of every BackendTLSPolicy (None when there are none). `used`: (namespace, Service, port as
    written) of every cluster our routes send to, for the entries naming a Service."""
    if not index.tls:
        return None
    wanted = {(target.namespace, target.name) for policy in index.tls for target in policy.targets}
    uses = _gateway_uses(snapshot, gateway_status, wanted)
    served: dict[Key, set[str]] = {}
    for namespace, name, port in used:
        if (namespace, name) in wanted:
            served.setdefault((namespace, name), set()).add(port)
    found = {}
    for policy in index.tls:
        ancestors: list[AncestorStatus] = []
        for target in policy.targets:
            refs = _ancestors(snapshot, uses, served, target)
            if not refs:
                continue
            try:
                conditions = _conditions(snapshot, index, policy, target)
            except Exception as error:  # noqa: BLE001  (a bug must cost one condition, never the build)
                conditions = (condition(ACCEPTED, False, INVALID, f"{type(error).__name__}: {error}",
                                        policy.generation),)
            ancestors.extend(AncestorStatus(ref, controller, conditions) for ref in refs)
        unique = tuple({(a.ref.kind, a.ref.namespace, a.ref.name, a.ref.section): a for a in ancestors}.values())
        found[policy.key] = PolicyStatus(policy.key[0], policy.key[1], unique[:MAX_ANCESTORS])
    return TlsPolicyStatus(controller, dict(sorted(found.items())))


def _gateway_uses(snapshot: Snapshot, gateway_status: GatewayApiStatus | None, wanted: set[Key]) -> ServiceUse:
    uses: ServiceUse = {}
    if gateway_status is None:
        return uses
    for statuses, objects in ((gateway_status.routes, snapshot.http_routes),
                              (gateway_status.grpc_routes, snapshot.grpc_routes)):
        for key, route_status in statuses.items():
            gateways = sorted({(p.parent_ref.namespace, p.parent_ref.name) for p in route_status.parents
                               if p.parent_ref.kind == GATEWAY and _accepted(p.conditions)})
            if not gateways:
                continue
            for service, port in _backend_refs(objects.get(key), key[0]):
                if service in wanted:
                    by_gateway = uses.setdefault(service, {})
                    for gateway in gateways:
                        by_gateway.setdefault(gateway, set()).add(port)
    return uses


def _accepted(conditions: tuple[Condition, ...]) -> bool:
    return any(c.type == ACCEPTED and c.status == "True" for c in conditions)


def _backend_refs(route: Any, namespace: str) -> Iterable[tuple[Key, str]]:
    """(Service, port as written) of every Service backendRef of an HTTPRoute's (or GRPCRoute's) rules."""
    spec = route.get("spec") if isinstance(route, dict) else None
    rules = spec.get("rules") if isinstance(spec, dict) else None
    for rule in rules if isinstance(rules, list) else ():
        refs = rule.get("backendRefs") if isinstance(rule, dict) else None
        for ref in refs if isinstance(refs, list) else ():
            if not isinstance(ref, dict) or (ref.get("group") or "") != "" or (ref.get("kind") or SERVICE) != SERVICE:
                continue
            name = ref.get("name")
            if isinstance(name, str) and name:
                yield (ref.get("namespace") or namespace, name), str(ref.get("port", ""))


def _ancestors(snapshot: Snapshot, uses: ServiceUse, served: dict[Key, set[str]],
               target: TargetRef) -> list[TargetRef]:
    if target.problem:
        return []
    service = (target.namespace, target.name)
    # The ports a sectionName names (None: any; also when the Service or that port is missing: any use of the
    # Service then shows the policy's TargetNotFound).
    ports = set(port_spellings(snapshot.services.get(service), target.section)) if target.section else None
    ports = ports or None
    gateways = [TargetRef(GATEWAY_GROUP, GATEWAY, name, namespace)
                for (namespace, name), used in sorted(uses.get(service, {}).items()) if ports is None or used & ports]
    if gateways:
        return gateways
    ports_served = served.get(service, set())
    return [target] if ports_served and (ports is None or ports_served & ports) else []


def _conditions(snapshot: Snapshot, index: PolicyIndex, policy: TlsPolicy,
                target: TargetRef) -> tuple[Condition, ...]:
    seen = policy.generation
    if policy.problem or policy.spec is None or policy.spec.tls is None:
        return (condition(ACCEPTED, False, INVALID, policy.problem or "cannot be read", seen),)
    tls = policy.spec.tls
    if policy.unresolved is not None:
        resolved = condition(RESOLVED_REFS, False, policy.unresolved[0], policy.unresolved[1][:32768], seen)
    else:
        resolved = condition(RESOLVED_REFS, True, RESOLVED_REFS, "every reference resolved", seen)
    return (_accepted_condition(snapshot, index, policy, target, no_ca=not tls.ca and not tls.system_ca), resolved)


def _accepted_condition(snapshot: Snapshot, index: PolicyIndex, policy: TlsPolicy, target: TargetRef, *,
                        no_ca: bool) -> Condition:
    seen = policy.generation
    service = snapshot.services.get((target.namespace, target.name))
    if service is None:
        return condition(ACCEPTED, False, TARGET_NOT_FOUND, f"Service {target.namespace}/{target.name} not found",
                         seen)
    if target.section and not port_spellings(service, target.section):
        return condition(ACCEPTED, False, TARGET_NOT_FOUND, f"Service {target.namespace}/{target.name} has no port "
                                                            f"named {target.section!r}", seen)
    holder = index.conflicts.get((KIND, policy.key, target.key))
    if holder is not None:
        return condition(ACCEPTED, False, CONFLICTED, f"{KIND} {holder[0]}/{holder[1]} (older) already targets "
                                                      f"{target}", seen)
    if no_ca:
        return condition(ACCEPTED, False, NO_VALID_CA, "no caCertificateRef is valid: connections to the targets "
                                                       "fail", seen)
    return condition(ACCEPTED, True, ACCEPTED, "applied", seen)
