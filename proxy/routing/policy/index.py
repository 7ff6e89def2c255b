"""Which policy applies where: the targets of every accepted policy, and the routes they change.

Precedence (Envoy Gateway's for BackendTrafficPolicy, route over Gateway, with the Service between them,
as GEP-713 places backends below the Gateway), most specific first, section by section (`spec.fold`):

1. an HTTPRoute rule's own `retry` / `sessionPersistence` (the Gateway API's fields);
2. a policy on the HTTPRoute naming that rule (`sectionName`), then one on the whole HTTPRoute or Ingress;
3. a policy on the backend's Service port (`sectionName`: the port's name), then on the whole Service
   (BackendTrafficPolicy, and BackendTLSPolicy for `tls`);
4. a policy on the Gateway naming the listener the route came through, then one on the whole Gateway.

Two policies of a kind on the same target: the oldest wins (then namespace/name), the other is Conflicted
there. Ingress routes take layers 2 and 3 (a Gateway's policy is for its own routes). A route's requests go
to a cluster per backend Service port and effective `ClusterPolicy` (`policies.policy_key`): the index
hands out those variant keys and remembers the policy of each (`variants`), so the cluster resolver
builds them. Route sections of a Service policy (retry, faults, rate limits) apply to a route whose
backends all agree on them; a split over Services with different ones takes none (a warning says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from proxy.objects import Key, KubeObject, Snapshot, Warning
from proxy.routing.clusters import split_cluster_key
from proxy.routing.model import PROTOCOL_H2C, Backends, Route
from proxy.routing.policies import ClusterPolicy, policy_key
from proxy.routing.policy.spec import EMPTY, SPEC_NAMES, PolicySpec, fold, overlap
from proxy.routing.policy.targets import GATEWAY, HTTP_ROUTE, INGRESS, SERVICE, TargetKey, TargetRef
from proxy.routing.policy.tls import TlsPolicy, read_tls_policy
from proxy.routing.policy.traffic import TrafficPolicy, read_traffic_policy

_NO_LAYERS: tuple[PolicySpec | None, ...] = ()
# The ingress-nginx annotations behind each section (for the messages of `overridden`).
ANNOTATION_NAMES = {"load_balancer": "load-balance, upstream-hash-by", "affinity": "affinity, session-cookie-*",
                    "tls": "backend-protocol", "retry": "proxy-next-upstream*",
                    "timeouts": "proxy-read-timeout, proxy-send-timeout", "connect_timeout": "proxy-connect-timeout"}


class PolicyMemo:
    """Readings kept between builds: a policy's while its object (and, for TLS, the ConfigMaps it named)
    is identical."""

    __slots__ = ("tls", "traffic")

    def __init__(self) -> None:
        self.traffic: dict[Key, TrafficPolicy] = {}
        self.tls: dict[Key, TlsPolicy] = {}


class PolicyIndex:
    """The accepted layers by target, and the routes they make (see the module docstring)."""

    __slots__ = ("traffic", "tls", "winners", "conflicts", "layers", "services", "ports", "ports_read", "variants",
                 "_mixed", "_warnings")

    def __init__(self, traffic: Iterable[TrafficPolicy] = (), tls: Iterable[TlsPolicy] = (),
                 service_objects: Mapping[Key, KubeObject] | None = None) -> None:
        """`service_objects`: the snapshot's Services, where a Service target's sectionName (a port name) is
        looked up."""
        self.traffic = tuple(sorted(traffic, key=lambda policy: policy.order))
        self.tls = tuple(sorted(tls, key=lambda policy: policy.order))
        # Target -> the BackendTrafficPolicy (or, for tls, BackendTLSPolicy) applied there.
        self.winners: dict[TargetKey, Key] = {}
        # (policy kind, policy key, target key) -> the older policy holding that target.
        self.conflicts: dict[tuple[str, Key, TargetKey], Key] = {}
        self.layers: dict[TargetKey, PolicySpec] = {}
        # (namespace, service, sectionName) -> the layers claimed there, BackendTrafficPolicy's first.
        services: dict[tuple[str, str, str], list[PolicySpec]] = {}
        for policy in self.traffic:
            if policy.problem or policy.spec.empty:
                continue
            for target in policy.targets:
                if self._claim("BackendTrafficPolicy", policy.key, target, self.winners):
                    if target.kind == SERVICE:
                        services.setdefault((target.namespace, target.name, target.section), []).append(policy.spec)
                    else:
                        self.layers[target.key] = policy.spec
        tls_winners: dict[TargetKey, Key] = {}
        for tls_policy in self.tls:
            if tls_policy.problem or tls_policy.spec is None:
                continue
            for target in tls_policy.targets:
                if self._claim("BackendTLSPolicy", tls_policy.key, target, tls_winners):
                    services.setdefault((target.namespace, target.name, target.section), []).append(tls_policy.spec)
        # A Service's layer: its BackendTrafficPolicy's sections with its BackendTLSPolicy's tls.
        self.services: dict[Key, PolicySpec] = {(namespace, name): fold(found)
                                                for (namespace, name, section), found in services.items()
                                                if not section}
        # (namespace, service, backend port as a route writes it: number or name) -> the layer of a port
        # section; the Services read to find the ports.
        self.ports: dict[tuple[str, str, str], PolicySpec] = {}
        read: set[Key] = set()
        for (namespace, name, section), found in services.items():
            if section:
                read.add((namespace, name))
                obj = service_objects.get((namespace, name)) if service_objects is not None else None
                for port in port_spellings(obj, section):
                    self.ports[(namespace, name, port)] = fold(found)
        self.ports_read = frozenset(read)
        self.variants: dict[str, ClusterPolicy] = {}
        self._mixed: set[tuple[str, str, str]] = set()  # routes split over Services with different route sections
        self._warnings: list[Warning] | None = None

    def _claim(self, kind: str, key: Key, target: TargetRef, winners: dict[TargetKey, Key]) -> bool:
        if target.problem:
            return False
        holder = winners.get(target.key)
        if holder is not None:
            self.conflicts[(kind, key, target.key)] = holder
            return False
        winners[target.key] = key
        return True

    @property
    def active(self) -> bool:
        """Whether any accepted policy has a layer to apply (else routes are left as they are)."""
        return bool(self.layers or self.services or self.ports)

    def same_layers(self, other: PolicyIndex) -> bool:
        """Whether both would change every route the same way."""
        return self.layers == other.layers and self.services == other.services and self.ports == other.ports

    def backend_layer(self, key: str) -> PolicySpec | None:
        """The Service layer of a backend: its port's policy over its whole Service's, section by section."""
        namespace, service, port = split_cluster_key(key)
        whole = self.services.get((namespace, service)) if self.services else None
        section = self.ports.get((namespace, service, port)) if self.ports else None
        if section is None:
            return whole
        return section if whole is None else fold((section, whole))

    def adopt(self, other: PolicyIndex) -> None:
        """Take over what `other` (with the same layers) handed out to routes made under it, so this index
        stands for them: the variants, and the routes split over Services that disagree."""
        self.variants = other.variants
        self._mixed = other._mixed

    def reset_mixed(self) -> frozenset[tuple[str, str, str]]:
        """Forget the split routes seen (before the routes are made again); returns what was seen."""
        seen = frozenset(self._mixed)
        self._mixed.clear()
        return seen

    def mixed(self) -> frozenset[tuple[str, str, str]]:
        return frozenset(self._mixed)

    # ------------------------------------------------------------------ routes

    def ingress_route(self, route: Route, annotations: PolicySpec | None = None) -> Route:
        """An Ingress path under its policies (layers 2 and 3). `annotations`: the layer its Ingress's
        ingress-nginx annotations make (routing.ingress.nginx_traffic), just below a BackendTrafficPolicy
        attached to that Ingress (which wins section by section) and above the Service's."""
        own = self.layers.get((INGRESS, route.namespace, route.ingress, "")) if self.layers else None
        if annotations is not None:
            return self._apply(route, (own, annotations), _NO_LAYERS)
        return self._apply(route, (own,) if own is not None else _NO_LAYERS, _NO_LAYERS)

    def overridden(self, ingress: Key, annotations: PolicySpec) -> list[str]:
        """Messages for the sections an Ingress's annotations set that a BackendTrafficPolicy attached to the
        same Ingress sets too (the policy's win)."""
        own = self.layers.get((INGRESS, ingress[0], ingress[1], "")) if self.layers else None
        if own is None:
            return []
        holder = self.winners.get((INGRESS, ingress[0], ingress[1], ""))
        who = f"BackendTrafficPolicy {holder[0]}/{holder[1]}" if holder is not None else "a BackendTrafficPolicy"
        return [f"{who} attached to this Ingress sets spec.{SPEC_NAMES[name]}: it wins over the ingress-nginx "
                f"annotations setting the same ({ANNOTATION_NAMES.get(name, name)})"
                for name in overlap(own, annotations)]

    def http_route(self, route: Route, *, gateway: Key, listener: str, native: PolicySpec | None = None) -> Route:
        """An HTTPRoute rule match served through one Gateway listener, under every layer."""
        layers = self.layers
        own: tuple[PolicySpec | None, ...] = (native,) if native is not None else _NO_LAYERS
        through: tuple[PolicySpec | None, ...] = _NO_LAYERS
        if layers and route.kind == HTTP_ROUTE:  # a policy's targetRef names an HTTPRoute, never a GRPCRoute
            namespace, name = route.namespace, route.ingress
            section = layers.get((HTTP_ROUTE, namespace, name, route.rule_name)) if route.rule_name else None
            own = (*own, section, layers.get((HTTP_ROUTE, namespace, name, "")))
        if layers:
            through = (layers.get((GATEWAY, gateway[0], gateway[1], listener)) if listener else None,
                       layers.get((GATEWAY, gateway[0], gateway[1], "")))
        return self._apply(route, own, through)

    def _apply(self, route: Route, own: tuple[PolicySpec | None, ...], through: tuple[PolicySpec | None, ...]) -> Route:
        keys = _served_keys(route)
        services = self.services or self.ports
        found = [self.backend_layer(key) for key in keys] if services else [None] * len(keys)
        if not any(own) and not any(through) and not any(found):
            return route
        variants: dict[str, str] = {}
        for key, layer in zip(keys, found):
            if key not in variants:
                variants[key] = self._variant(key, fold((*own, layer, *through)))
        shared: PolicySpec | None = None
        parts = {layer.route_part() if layer is not None else EMPTY for layer in found} if services else set()
        if len(parts) == 1:
            shared = parts.pop()
        elif parts:
            self._mixed.add((route.kind, route.namespace, route.ingress))
        settings = fold((*own, shared, *through))
        policy = settings.route_policy()
        timeouts = settings.timeouts if route.timeouts is None else None
        if (policy is None and timeouts is None and route.policy is None
                and all(variants.get(key, key) == key for key in keys)):
            return route
        own_policy = route.policy  # the rule's own (an ingress-nginx limit): its fields win, the rest is the policy's
        if own_policy is not None and policy is not None:
            policy = replace(policy, **{name: value for name in ("retry", "fault", "rate_limit", "client_limit", "auth")
                                        if (value := getattr(own_policy, name)) is not None},
                             http10=own_policy.http10)
        changes: dict[str, Any] = {"policy": policy if own_policy is None or policy is not None else own_policy}
        if timeouts is not None:
            changes["timeouts"] = timeouts
        if route.cluster:
            changes["cluster"] = variants.get(route.cluster, route.cluster)
        if route.backends is not None:
            changes["backends"] = Backends(tuple(
                replace(backend, cluster=variants.get(backend.cluster, backend.cluster)) if backend.cluster in variants
                else backend for backend in route.backends.backends))
        return replace(route, **changes)

    def _variant(self, key: str, spec: PolicySpec) -> str:
        policy = spec.cluster_policy()
        if policy is None:
            return key
        variant = policy_key(key, policy)
        self.variants[variant] = policy
        return variant

    # ------------------------------------------------------------------ warnings

    def warnings(self) -> list[Warning]:
        """The policies' own warnings, conflicts, and splits whose Services disagree on route sections."""
        if self._warnings is None:
            found = [warning for policy in self.traffic for warning in policy.warnings]
            found.extend(warning for policy in self.tls for warning in policy.warnings)
            for (kind, (namespace, name), target), holder in sorted(self.conflicts.items()):
                found.append(Warning(kind, namespace, name, f"{_target_text(target)} is already targeted by "
                                                            f"{kind} {holder[0]}/{holder[1]} (older); not applied "
                                                            "there"))
            self._warnings = found
        mixed = [Warning(kind, namespace, name, "backends of different Services whose policies set different "
                                                "retry, faultInjection, rateLimit or timeout: none of those applies "
                                                "to the "
                                                "split rules")
                 for kind, namespace, name in sorted(self._mixed)]
        return [*self._warnings, *mixed]


def _served_keys(route: Route) -> list[str]:
    """The clusters a route answers from (mirrors aside: their copies' answers are dropped), without those
    another front end already put under a policy (a "~digest" key). A protocol key ("~h2c": a GRPCRoute's
    backends, see clusters.protocol_key) is a Service port like a plain one: its Service's policies apply."""
    keys = [route.cluster] if _unpolicied(route.cluster) else []
    if route.backends is not None:
        keys.extend(backend.cluster for backend in route.backends.backends if _unpolicied(backend.cluster))
    return keys


def _unpolicied(key: str) -> bool:
    return bool(key) and key.partition("~")[2] in ("", PROTOCOL_H2C)


def port_spellings(service: Any, section: str) -> list[str]:
    """How routes may name the Service port called `section`: by its name and by its number."""
    spec = service.get("spec") if isinstance(service, dict) else None
    ports = spec.get("ports") if isinstance(spec, dict) else None
    for entry in ports if isinstance(ports, list) else ():
        if isinstance(entry, dict) and entry.get("name") == section:
            number = entry.get("port")
            return [section, str(number)] if type(number) is int else [section]
    return []


def _target_text(target: TargetKey) -> str:
    kind, namespace, name, section = target
    return f"{kind} {namespace}/{name}" + (f" (sectionName {section})" if section else "")


def index_policies(snapshot: Snapshot, memo: PolicyMemo | None = None) -> PolicyIndex:
    """The PolicyIndex of a snapshot; `memo` keeps the readings of unchanged policies."""
    memo = memo if memo is not None else PolicyMemo()
    traffic = _read_all(snapshot.backend_traffic_policies, memo.traffic,
                        lambda key, obj, _: read_traffic_policy(key, obj), snapshot.config_maps)
    tls = _read_all(snapshot.backend_tls_policies, memo.tls, read_tls_policy, snapshot.config_maps)
    return PolicyIndex(traffic, tls, snapshot.services)


def _read_all(objects: Mapping[Key, KubeObject], kept: dict[Key, Any], read: Any,
              config_maps: Mapping[Key, KubeObject]) -> list[Any]:
    for key in [key for key in kept if key not in objects]:
        del kept[key]
    found = []
    for key, obj in objects.items():
        reading = kept.get(key)
        if reading is None or reading.obj is not obj or not _same_config_maps(reading, config_maps):
            try:
                reading = kept[key] = read(key, obj, config_maps)
            except Exception as error:  # noqa: BLE001  (a bug must cost one policy, never the build)
                kind = "BackendTLSPolicy" if read is read_tls_policy else "BackendTrafficPolicy"
                reading = kept[key] = (TlsPolicy if kind == "BackendTLSPolicy" else TrafficPolicy)(key, obj, 0, 0.0)
                reading.problem = f"skipped: {type(error).__name__}: {error}"
                reading.warn(reading.problem)
        found.append(reading)
    return found


def _same_config_maps(reading: Any, config_maps: Mapping[Key, KubeObject]) -> bool:
    seen: dict[Key, Any] | None = getattr(reading, "seen", None)
    return not seen or all(config_maps.get(key) is obj for key, obj in seen.items())

