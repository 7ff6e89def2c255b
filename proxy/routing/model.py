"""The rule model: what every front end (Ingress, the Gateway API, policies) compiles into.

```
RouteTable (per listener port) ─▶ VirtualHost (host) ─▶ slots by path ─▶ Route | Choice
Route: conditions (method, headers, query) ─▶ backends (weighted clusters) + filters + timeouts
```

Everything here is immutable and compiled: regexes are compiled, header edits are bytes, weights
are a cumulative table, filters are small objects with one method per phase. A new build produces
new objects and the running configuration is swapped as one reference, so a request never sees
half a change. A `Route` without conditions, filters or weights (a plain Ingress path) costs the
request path one attribute read per feature it does not use.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from proxy.objects import Key, Warning
from proxy.routing.filters import Filters, HttpsRedirect

if TYPE_CHECKING:
    from proxy.routing.gateway.status import GatewayApiStatus
    from proxy.routing.global_config import GlobalConfig
    from proxy.routing.matches import Conditions
    from proxy.routing.passthrough import SniTable
    from proxy.routing.policies import ClusterPolicy, RoutePolicy
    from proxy.routing.policy.status import TrafficPolicyStatus
    from proxy.routing.policy.tls_status import TlsPolicyStatus
    from proxy.routing.table import RouteTable

__all__ = [
    "BODY_LIMIT_DEFAULT", "KIND_HTTP_ROUTE", "KIND_INGRESS", "PATH_DEFAULT_BACKEND", "PATH_EXACT",
    "PATH_IMPLEMENTATION_SPECIFIC", "PATH_PREFIX", "PATH_REGEX", "Backend", "Backends", "Cluster", "Config", "Endpoint",
    "ErrorPages", "ListenerConfig", "Route", "Timeouts", "host_pattern_for",
]

PATH_EXACT = "Exact"
PATH_PREFIX = "Prefix"
PATH_IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"
PATH_REGEX = "RegularExpression"
# Path type of a route made from `spec.defaultBackend`.
PATH_DEFAULT_BACKEND = ""

# Route.body_limit of a route under the process's default limit (Settings.proxy_body_size).
BODY_LIMIT_DEFAULT = -1
# Route.body_limit of a Gateway API route: the ConfigMap's proxy-body-size when it sets one (nginx's
# client_max_body_size is controller-wide), else no limit (the Gateway API has no such field).
BODY_LIMIT_GLOBAL = -2

# Route.kind: which front end wrote the rule.
KIND_INGRESS = "Ingress"
KIND_HTTP_ROUTE = "HTTPRoute"
KIND_GRPC_ROUTE = "GRPCRoute"
# The cluster-key suffix of a GRPCRoute's backends, spoken to in HTTP/2 without TLS (routing.clusters.protocol_key);
# their Cluster.protocol is routing.policies.HTTP2.
PROTOCOL_H2C = "h2c"


class Endpoint(NamedTuple):
    """One ready pod address (or an ExternalName DNS name) and the port to dial."""

    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Cluster:
    """An upstream: one Service port, with the endpoints to reach it.

    Routes point to clusters by `key` ("namespace/service:port") so endpoint churn
    replaces a cluster's endpoints without rebuilding any route.
    """

    key: str
    namespace: str
    service: str
    # The backend's port as written: a number ("80") or a Service port name ("http").
    port: str
    endpoints: tuple[Endpoint, ...] = ()
    # Set for `type: ExternalName` Services: dial this DNS name at `external_port`.
    external_name: str | None = None
    external_port: int = 0
    # Balancer, ejection, health checks, circuit breaker, TLS to the pods; None: round robin, plain HTTP.
    policy: ClusterPolicy | None = None
    # How requests are spoken to the pods: "" HTTP/1.1, routing.policies.HTTP2 ("h2") HTTP/2: h2c, or h2 with ALPN
    # when the cluster's policy has TLS. Set by a Service port's appProtocol kubernetes.io/h2c, ingress-nginx's
    # backend-protocol GRPC/GRPCS/H2C, and for a GRPCRoute's backends (whose cluster keys end in "~h2c", see
    # routing.clusters.cluster_protocol).
    protocol: str = ""


@dataclass(frozen=True, slots=True)
class Backend:
    """One weighted backend of a rule (a Gateway API backendRef, an ingress-nginx canary).

    `cluster` "" marks a reference that cannot be served (missing Service, unknown kind, not
    permitted across namespaces): the requests it is picked for get 500, as the Gateway API asks.
    `filters` run only for the requests sent to this backend, after the rule's own request filters
    (and its response filters before the rule's): a Gateway API backendRef's `filters`.
    """

    cluster: str
    weight: int
    namespace: str = ""
    service: str = ""
    filters: Filters | None = None


class Backends:
    """The weighted backends of one rule, as a cumulative table: a pick is one random draw and a bisect.

    Backends of weight 0 are kept for display but never picked; when every weight is 0 the
    rule has no backend to pick (the proxy answers 500, as for an invalid reference).
    """

    __slots__ = ("backends", "_bounds", "total")

    def __init__(self, backends: tuple[Backend, ...]) -> None:
        self.backends = backends
        bounds = []
        total = 0
        for backend in backends:
            total += max(0, backend.weight)
            bounds.append(total)
        self._bounds = tuple(bounds)
        self.total = total

    def pick(self, draw: float | None = None) -> Backend | None:
        """A backend with probability weight/total; `draw` in [0, 1) replaces the random one (tests)."""
        total = self.total
        if not total:
            return None
        point = (random.random() if draw is None else draw) * total
        return self.backends[bisect.bisect_right(self._bounds, point)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Backends) and other.backends == self.backends

    def __hash__(self) -> int:
        return hash(self.backends)

    def __repr__(self) -> str:
        return f"Backends({self.backends!r})"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Gateway API `timeouts`: the whole request, and each attempt upstream, in seconds.

    None: the proxy's default applies. 0: no limit at all (the Gateway API's "0s" disables the timeout).
    A request past `request` gets 504, an attempt past `backend_request` too. `read` and `send` replace
    --upstream-read-timeout for the route (ingress-nginx's proxy-read-timeout and proxy-send-timeout): the
    longest wait for the pod's answer or its next bytes, and for the pod to take more of the request body.
    """

    request: float | None = None
    backend_request: float | None = None
    read: float | None = None
    send: float | None = None


@dataclass(frozen=True, slots=True)
class ErrorPages:
    """ingress-nginx's `default-backend` with `custom-http-errors`: which answers another Service gives instead.

    A request whose cluster has no ready endpoints (503), and an answer whose status is in `codes` (the pod's,
    or the proxy's own 502/504), is sent again to `cluster` as ingress-nginx's custom error location sends it:
    path "/", X-Code, X-Format (the Accept header), X-Original-URI, X-Request-ID and `fields` (X-Namespace,
    X-Ingress-Name, X-Service-Name, X-Service-Port of the route, ready bytes); the client gets its answer.
    `unset`: the lower-case names of the fields the route's own location sets (the ConfigMap's proxy-set-headers),
    which that error location, with proxy_set_header directives of its own, does not inherit.
    """

    cluster: str
    codes: frozenset[int] = frozenset()
    fields: bytes = b""
    unset: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class Route:
    """One rule of one host: its path, the conditions it adds, and what it does.

    The first fields are an Ingress path's (the plain route); the rest default to "not used".
    `ingress` names the object that wrote the rule (an Ingress or, with `kind`, an HTTPRoute).
    """

    namespace: str
    ingress: str
    # Lower-case host as written in the rule ("" for a rule without host, "*.example.com" for a wildcard).
    host: str
    # The path pattern as written ("" for a defaultBackend route).
    path: str
    path_type: str
    # Cluster.key of the single backend; "" when `backends` decides, or (with `backends` None) when the
    # rule's request filters always answer (a redirect without backendRefs).
    cluster: str
    kind: str = KIND_INGRESS
    # Index of the rule in its object (HTTPRoute rules; 0 for Ingress paths) and its name, if any.
    rule: int = 0
    rule_name: str = ""
    # Method, header and query conditions; None: the path alone decides.
    conditions: Conditions | None = None
    # Weighted backends; None: every request goes to `cluster`. A pick of None (every weight 0, or no
    # backend at all) or of a Backend with cluster "" is answered with 500.
    backends: Backends | None = None
    # Compiled filters of the rule (request phase, response phase); None: none.
    filters: Filters | None = None
    timeouts: Timeouts | None = None
    # Retries, fault injection, rate limits; None: connect failures retried, nothing else.
    policy: RoutePolicy | None = None
    # Spans for this rule's requests (an Ingress's enable-opentelemetry, an HTTPRoute's pyngress.dev/tracing
    # annotation); None: the process's default (--trace-by-default). Without --otlp-endpoint nothing is traced.
    tracing: bool | None = None
    # Largest request body in bytes (over it: 413), 0 none; BODY_LIMIT_DEFAULT: the process's default
    # (Settings.proxy_body_size, ingress-nginx's 1m), which Ingress routes get unless proxy-body-size says.
    body_limit: int = 0
    # Another Service's answers for errors (ingress-nginx's default-backend, custom-http-errors); None: none.
    errors: ErrorPages | None = None
    # False: no access log line for the rule's requests (ingress-nginx's enable-access-log "false").
    access_log: bool = True
    # TLS connections whose SNI selects this rule's host go to its backend undecrypted (an Ingress's
    # ssl-passthrough on its host's "/" rule, a TLSRoute's rule), with --enable-ssl-passthrough.
    passthrough: bool = False
    # No filters, no weights, no timeouts, no policy: the request path checks this one flag instead of
    # four (derived in __post_init__; not an argument).
    plain: bool = field(init=False, repr=False, compare=False)
    # A request header modifier of the rule (or of one of its backends) sets, adds or removes `traceparent`: the
    # upstream gets what the filter left, not the proxy's own traceparent as well (derived; not an argument).
    own_traceparent: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", self.filters is None and self.backends is None and self.timeouts is None
                           and self.policy is None and self.errors is None)
        every = [self.filters]
        if self.backends is not None:
            every += (backend.filters for backend in self.backends.backends)
        object.__setattr__(self, "own_traceparent",
                           any(f is not None and f.edits_request_header(b"traceparent") for f in every))

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.ingress}"

    @property
    def ssl_redirect(self) -> bool:
        """Plain-HTTP requests get a 308 to HTTPS (a host with TLS unless ssl-redirect "false", or
        force-ssl-redirect): the rule runs the HttpsRedirect filter."""
        filters = self.filters
        return filters is not None and any(isinstance(f, HttpsRedirect) for f in filters.request)

    def cluster_keys(self) -> Iterator[str]:
        """Every cluster this rule can send requests to (mirrors included)."""
        if self.cluster:
            yield self.cluster
        if self.backends is not None:
            for backend in self.backends.backends:
                if backend.cluster:
                    yield backend.cluster
                if backend.filters is not None:
                    for mirror in backend.filters.mirrors:
                        if mirror.cluster:
                            yield mirror.cluster
        filters = self.filters
        if filters is not None:
            for mirror in filters.mirrors:
                if mirror.cluster:
                    yield mirror.cluster
        if self.errors is not None:
            yield self.errors.cluster


_NO_CERTIFICATES: Mapping[str, Key] = MappingProxyType({})
_NO_LISTENERS: Mapping[int, ListenerConfig] = MappingProxyType({})
_NO_TLS_ROUTES: Mapping[int, SniTable] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """What one local port serves for Gateway listeners (every listener of every Gateway on that port).

    A Gateway listener on port P is served on local port P + --gateway-port-offset; `Config.listeners`
    is keyed by that local port. When it is an Ingress port (--http-port with HTTP, --https-port with
    HTTPS), `ingress` is True and `table` is the Ingress table with the Gateway routes of that port
    merged in host by host; otherwise `table` holds Gateway routes only.
    """

    # The listener port as clients see it (the Gateway's `port`): redirects, X-Forwarded-Port, Request.port.
    port: int
    protocol: str  # "HTTP" or "HTTPS"
    table: RouteTable
    # HTTPS: listener hostname pattern ("x", "*.x"; "" for a listener without hostname) -> the
    # (namespace, name) of its kubernetes.io/tls Secret, for SNI. The longest matching pattern wins a
    # handshake, and a request whose Host selects another pattern than its SNI did gets 421
    # (see `host_pattern_for`).
    certificates: Mapping[str, Key] = field(default_factory=lambda: _NO_CERTIFICATES)
    # True when `table` also holds the Ingress rules (the port is an Ingress listener's).
    ingress: bool = False

    def host_pattern_for(self, name: str) -> str | None:
        """The listener hostname pattern (a `certificates` key) that serves `name`; None when none does."""
        return host_pattern_for(self.certificates, name)


def host_pattern_for(patterns: Mapping[str, object] | tuple[str, ...], name: str) -> str | None:
    """The most specific Gateway hostname pattern covering a host name: the exact name, then the
    longest "*." suffix (any number of labels), then "" (a listener without hostname); None if none."""
    if name in patterns:
        return name
    rest = name
    while True:
        dot = rest.find(".")
        if dot < 0:
            break
        rest = rest[dot + 1:]
        if "*." + rest in patterns:
            return "*." + rest
    return "" if "" in patterns else None


@dataclass(frozen=True, slots=True)
class Config:
    """The result of one build: what the data plane serves."""

    # The table of the Ingress listeners (HTTP and HTTPS), without Gateway routes: a port listed in
    # `listeners` serves that listener's table instead (which, on the Ingress ports, includes this one).
    table: RouteTable
    clusters: Mapping[str, Cluster]
    warnings: tuple[Warning, ...] = ()
    # Equal checksums mean equal routing; the runtime skips swapping in an equal build.
    checksum: str = ""
    # Gateway listeners by LOCAL port (see ListenerConfig); empty when no Gateway is ours.
    listeners: Mapping[int, ListenerConfig] = field(default_factory=lambda: _NO_LISTENERS)
    # Status of our GatewayClasses, Gateways and HTTPRoutes, for the status writer (None: no GatewayClass
    # is ours). Covered by the checksum: a change of status alone makes a new Config.
    gateway_status: GatewayApiStatus | None = None
    # Status of every BackendTrafficPolicy (None: there are none), for the policy status writer; covered by
    # the checksum like gateway_status.
    policy_status: TrafficPolicyStatus | None = None
    # Status of every BackendTLSPolicy (None: there are none), for the same writer; covered by the checksum.
    tls_policy_status: TlsPolicyStatus | None = None
    # The global configuration (ingress-nginx's ConfigMap, flags where it is silent): what the server and the
    # upstreams read at each swap (timeouts, HSTS, keep-alive, blocks). Covered by the checksum.
    global_config: GlobalConfig | None = None
    # TLSRoutes of Gateway TLS listeners in Passthrough mode, by LOCAL port: server name → rule (served
    # with --enable-ssl-passthrough). Covered by the checksum.
    tls_routes: Mapping[int, SniTable] = field(default_factory=lambda: _NO_TLS_ROUTES)

    def routes(self) -> Iterator[Route]:
        """Every route served on some port, each once (the Ingress ports' Gateway tables share Ingress routes)."""
        if not self.listeners:
            yield from self.table.routes()
            return
        seen: set[int] = set()
        for table in (self.table, *(listener.table for listener in self.listeners.values())):
            for route in table.routes():
                if id(route) not in seen:
                    seen.add(id(route))
                    yield route

    def table_for(self, local_port: int) -> RouteTable:
        """The table a local port serves: its Gateway listener's, or the Ingress table."""
        listener = self.listeners.get(local_port)
        return self.table if listener is None else listener.table

