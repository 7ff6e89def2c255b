"""One layer of traffic settings, and how layers fold: the most specific layer wins, section by section.

Every front end reads its objects into a `PolicySpec` (a BackendTrafficPolicy, a BackendTLSPolicy, an
HTTPRoute rule's own `retry` and `sessionPersistence`); the index stacks the layers that apply to one
route and one backend, most specific first, and `fold` takes each section from the first layer that
sets it. A section is taken whole: a route's `retry` replaces a Gateway's `retry` entirely, it never
borrows `perRetry` from it (Envoy Gateway's default, non-merging precedence, applied per section).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from proxy.routing.model import Timeouts
from proxy.routing.policies import (
    BackendTLS,
    CircuitBreaker,
    ClusterPolicy,
    Ejection,
    FaultInjection,
    HealthCheck,
    LoadBalancer,
    RateLimit,
    RetryPolicy,
    RoutePolicy,
    SessionAffinity,
)


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """The sections one layer sets (None: not set here, a less specific layer may)."""

    load_balancer: LoadBalancer | None = None
    affinity: SessionAffinity | None = None
    ejection: Ejection | None = None
    health_check: HealthCheck | None = None
    circuit_breaker: CircuitBreaker | None = None
    tls: BackendTLS | None = None
    retry: RetryPolicy | None = None
    fault: FaultInjection | None = None
    rate_limit: RateLimit | None = None
    # The whole request's timeout (`timeout.http.requestTimeout`): a route's own `timeouts` win.
    timeouts: Timeouts | None = None
    # Seconds to connect to a pod (ingress-nginx's proxy-connect-timeout), a cluster section.
    connect_timeout: float | None = None
    # Forward to the Service's ClusterIP instead of its pods (ingress-nginx's service-upstream), a cluster section.
    service_upstream: bool | None = None
    # How the pods are spoken to (ingress-nginx's backend-protocol GRPC, GRPCS, H2C: HTTP2), a cluster section.
    protocol: str | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, item.name) is None for item in fields(self))

    def cluster_policy(self) -> ClusterPolicy | None:
        """The cluster sections as a ClusterPolicy; None when none is set (the plain cluster)."""
        if (self.load_balancer is None and self.affinity is None and self.ejection is None
                and self.health_check is None and self.circuit_breaker is None and self.tls is None
                and self.connect_timeout is None and self.service_upstream is None and self.protocol is None):
            return None
        return ClusterPolicy(load_balancer=self.load_balancer or LoadBalancer(), affinity=self.affinity,
                             ejection=self.ejection, health_check=self.health_check,
                             circuit_breaker=self.circuit_breaker, tls=self.tls, connect_timeout=self.connect_timeout,
                             service_upstream=bool(self.service_upstream), protocol=self.protocol or "")

    def route_policy(self) -> RoutePolicy | None:
        """The route sections as a RoutePolicy; None when none is set (the plain route)."""
        if self.retry is None and self.fault is None and self.rate_limit is None:
            return None
        return RoutePolicy(retry=self.retry, fault=self.fault, rate_limit=self.rate_limit)

    def route_part(self) -> PolicySpec:
        """Only the sections that act on the route (retry, fault injection, rate limit, timeout)."""
        return PolicySpec(retry=self.retry, fault=self.fault, rate_limit=self.rate_limit, timeouts=self.timeouts)


EMPTY = PolicySpec()
_NAMES = tuple(item.name for item in fields(PolicySpec))
# How a section is called in a BackendTrafficPolicy's spec (for messages).
SPEC_NAMES = {"load_balancer": "loadBalancer", "affinity": "sessionPersistence", "ejection": "healthCheck.passive",
              "health_check": "healthCheck.active", "circuit_breaker": "circuitBreaker", "tls": "tls",
              "retry": "retry", "fault": "faultInjection", "rate_limit": "rateLimit", "timeouts": "timeout",
              "connect_timeout": "connect timeout", "service_upstream": "service-upstream",
              "protocol": "backend protocol"}


def overlap(first: PolicySpec, second: PolicySpec) -> list[str]:
    """The sections both layers set (the field names, in declaration order)."""
    return [name for name in _NAMES if getattr(first, name) is not None and getattr(second, name) is not None]


def fold(layers: Iterable[PolicySpec | None]) -> PolicySpec:
    """Each section from the first (most specific) layer that sets it."""
    found: dict[str, object] = {}
    for layer in layers:
        if layer is None:
            continue
        for name in _NAMES:
            if name not in found:
                value = getattr(layer, name)
                if value is not None:
                    found[name] = value
        if len(found) == len(_NAMES):
            break
    return PolicySpec(**found) if found else EMPTY  # type: ignore[arg-type]
