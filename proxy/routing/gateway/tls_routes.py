"""TLSRoutes: server names → weighted backends, for Gateway listeners of protocol TLS in Passthrough mode.

A TLSRoute has parentRefs and hostnames like an HTTPRoute, and rules that only list backendRefs
(no matches: the ClientHello's server name is all there is). Each host key it gets on a listener
becomes one `Route` with `passthrough` set, collected per local port into a `SniTable`
(routing.passthrough); the data plane splices the TLS stream to a pod of a backend picked by weight
(proxy.passthrough). A backendRef that cannot be served keeps its weight: its share of connections
is closed, as a rule without backends closes all of them (the spec's "connection rejected").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.objects import Key, Warning
from proxy.routing.fields import Malformed, mapping, require_object, sequence
from proxy.routing.gateway.actions import BackendRef, read_backend_ref
from proxy.routing.gateway.backends import BackendResolver
from proxy.routing.gateway.hostnames import check_hostname
from proxy.routing.gateway.meta import age, generation
from proxy.routing.gateway.routes import _parent
from proxy.routing.gateway.status import ParentRef
from proxy.routing.model import Backend, Backends

KIND_TLS_ROUTE = "TLSRoute"


@dataclass(slots=True)
class TlsRouteSpec:
    """What one TLSRoute says, judged alone, with its backendRefs resolved."""

    key: Key
    obj: Any
    generation: int
    age: float
    parents: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] | None = None
    refs: tuple[BackendRef, ...] = ()
    problem: str = ""
    warnings: list[Warning] = field(default_factory=list)
    # After resolve(): the rule's backends (cluster "" for an unusable reference), and ResolvedRefs.
    backends: Backends | None = None
    cluster: str = ""
    resolved: tuple[bool, str, str] = (True, "ResolvedRefs", "all references resolved")

    def warn(self, message: str) -> None:
        self.warnings.append(Warning(KIND_TLS_ROUTE, self.key[0], self.key[1], message))


def read_tls_route(key: Key, obj: Any) -> TlsRouteSpec:
    """Judge one TLSRoute; never raises (a broken object is a spec with `problem`)."""
    spec = TlsRouteSpec(key, obj, generation(obj), age(obj))
    namespace = key[0]
    try:
        body = mapping(require_object(obj, KIND_TLS_ROUTE), "spec", "")
        spec.parents = tuple(_parent(item, f"spec.parentRefs[{i}]", namespace)
                             for i, item in enumerate(sequence(body, "parentRefs", "spec.")))
        if body.get("hostnames") is not None:
            found: dict[str, None] = {}
            for index, item in enumerate(sequence(body, "hostnames", "spec.")):
                try:
                    found[check_hostname(item, f"spec.hostnames[{index}]")] = None
                except Malformed as error:
                    spec.warn(f"{error}; hostname ignored")
            spec.hostnames = tuple(found)
        refs: list[BackendRef] = []
        for index, rule in enumerate(sequence(body, "rules", "spec.")):
            rule = require_object(rule, f"spec.rules[{index}]")
            refs.extend(read_backend_ref(require_object(item, f"spec.rules[{index}].backendRefs[{i}]"),
                                         f"spec.rules[{index}].backendRefs[{i}]", namespace)
                        for i, item in enumerate(sequence(rule, "backendRefs", f"spec.rules[{index}].")))
        spec.refs = tuple(refs)
    except Malformed as error:
        spec.problem = str(error)
    return spec


def resolve_backends(spec: TlsRouteSpec, resolver: BackendResolver) -> None:
    """The route's backends against the snapshot's Services and ReferenceGrants (sets backends, cluster, resolved)."""
    problems: list[tuple[str, str]] = []
    made: list[Backend] = []
    for ref in spec.refs:
        found = resolver.resolve(ref, route_namespace=spec.key[0], from_kind=KIND_TLS_ROUTE)
        if not found.cluster:
            problems.append((found.reason, found.message))
        made.append(Backend(found.cluster, ref.weight, ref.namespace, ref.name))
    weighted = [backend for backend in made if backend.weight > 0]
    if len(weighted) == 1 and weighted[0].cluster:
        spec.cluster, spec.backends = weighted[0].cluster, None
    else:
        spec.cluster, spec.backends = "", Backends(tuple(made))
    if problems:
        spec.resolved = (False, problems[0][0], "; ".join(dict.fromkeys(message for _, message in problems)))
    elif not made:
        spec.resolved = (True, "ResolvedRefs", "no backendRefs: connections are closed")
