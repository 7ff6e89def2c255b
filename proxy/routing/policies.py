"""Traffic policies as the data plane reads them: what happens between a chosen backend and its pods.

Front ends compile into these: our `BackendTrafficPolicy` CRD (pyngress.dev/v1alpha1, Envoy
Gateway's field names), the Gateway API's `BackendTLSPolicy` and HTTPRoute `retry` /
`sessionPersistence`, and ingress-nginx's annotations (`load-balance`, `upstream-hash-by`,
`affinity`, `proxy-next-upstream*`, `proxy-ssl-*`...). Everything is frozen and compiled: durations
in seconds, percentages as fractions of 1, header and cookie names as ready bytes.

Where a policy acts:
- `ClusterPolicy` on `Cluster.policy`: the Upstream's balancer, passive ejection, active health
  checks, circuit breaker and TLS to the pods. Clusters with different policies for the same
  Service port are different clusters (the key carries the policy's digest, see `policy_key`).
- `RoutePolicy` on `Route.policy`: retries, fault injection and local rate limits of the requests
  the route matches (a route with a policy is not `plain`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.routing.access import AddressSet
    from proxy.routing.external_auth import ExternalAuth

# LoadBalancer.kind
ROUND_ROBIN = "RoundRobin"
LEAST_REQUEST = "LeastRequest"
RANDOM = "Random"
CONSISTENT_HASH = "ConsistentHash"

# LoadBalancer.hash_on
HASH_SOURCE_IP = "SourceIP"
HASH_HEADER = "Header"
HASH_COOKIE = "Cookie"
HASH_URI = "URI"

# RetryPolicy.retry_on
RETRY_CONNECT_FAILURE = "connect-failure"
RETRY_RESET = "reset"
RETRY_5XX = "5xx"
RETRY_GATEWAY_ERROR = "gateway-error"  # 502, 503, 504
# nginx's proxy_next_upstream words (ingress-nginx's annotations): `error` is a connect failure or a reset
# (not a timeout), `timeout` an upstream timeout after the connection was made.
RETRY_ERROR = "error"
RETRY_TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """How a cluster picks an endpoint: round robin, least request (two random choices, fewer in-flight
    requests weighted by a latency EWMA), random, or a consistent hash of the request (a ring: when an
    endpoint joins or leaves, about 1/N of the keys move)."""

    kind: str = ROUND_ROBIN
    hash_on: str = ""  # ConsistentHash: SourceIP, Header, Cookie or URI
    hash_key: bytes = b""  # the header or cookie name (lower-case header name)


@dataclass(frozen=True, slots=True)
class SessionAffinity:
    """Cookie affinity: the proxy sets the cookie; while its pod is ready the same cookie reaches it,
    otherwise a new pod is chosen and the cookie rewritten."""

    cookie: bytes
    path: bytes = b"/"
    max_age: int | None = None  # seconds; None: a session cookie
    same_site: bytes = b""  # Strict, Lax or None
    secure: bool = False
    domain: bytes = b""


@dataclass(frozen=True, slots=True)
class Ejection:
    """Passive health (outlier ejection): after `consecutive_5xx` 5xx answers or `consecutive_gateway_errors`
    gateway errors (connect failure, reset, timeout) an endpoint is ejected for base_time x (number of
    ejections so far), at most `max_time`; never more than `max_percent` of a cluster's endpoints at once."""

    consecutive_5xx: int = 5
    consecutive_gateway_errors: int = 5
    base_time: float = 30.0
    max_time: float = 300.0
    max_percent: float = 0.1


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Active health: an HTTP GET on `path` every `interval`, off the request path, one prober per pod."""

    path: bytes = b"/"
    interval: float = 3.0
    timeout: float = 1.0
    healthy_threshold: int = 1
    unhealthy_threshold: int = 3
    expected_statuses: tuple[int, ...] = (200,)


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Limits per cluster; over one, the request gets 503 at once with `x-pyngress-overloaded` naming it.
    0 means no limit."""

    max_connections: int = 0
    max_pending_requests: int = 0
    max_parallel_requests: int = 0
    max_parallel_retries: int = 0


# ClusterPolicy.protocol and Cluster.protocol of pods spoken to in HTTP/2 (proxy/upstream/h2_pool.py).
HTTP2 = "h2"


@dataclass(frozen=True, slots=True)
class BackendTLS:
    """TLS to the pods: SNI, verification against `ca` (PEM) and the SAN names, an optional client
    certificate (mutual TLS). `ca` empty with `verify` False: encryption only. `ca` empty with `verify`
    True verifies against the system's trust store only with `system_ca` (BackendTLSPolicy's
    wellKnownCACertificates: System); without it nothing can verify and connections fail (what the
    Gateway API asks when a policy's CA references cannot be resolved)."""

    sni: str = ""
    ca: bytes = b""
    verify: bool = True
    subject_alt_names: tuple[str, ...] = ()
    client_certificate: bytes = b""  # PEM chain
    client_key: bytes = b""  # PEM
    system_ca: bool = False


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    load_balancer: LoadBalancer = LoadBalancer()
    affinity: SessionAffinity | None = None
    ejection: Ejection | None = None
    health_check: HealthCheck | None = None
    circuit_breaker: CircuitBreaker | None = None
    tls: BackendTLS | None = None
    # Seconds to establish a connection to a pod (TLS handshake included); None: --upstream-connect-timeout.
    connect_timeout: float | None = None
    # ingress-nginx's service-upstream: one endpoint, the Service's ClusterIP and port (kube-proxy balances).
    service_upstream: bool = False
    # How the pods are spoken to: "" HTTP/1.1, HTTP2 (h2c, or h2 with ALPN when `tls` is set).
    protocol: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries after the first attempt, to another endpoint, with backoff and a per-try timeout; a retry
    budget (at most `budget` of the active requests may be retries, but `min_retries` concurrent ones
    always may) keeps retries from multiplying an outage."""

    num_retries: int = 2
    retry_on: frozenset[str] = frozenset({RETRY_CONNECT_FAILURE})
    status_codes: frozenset[int] = frozenset()
    idempotent_only: bool = True
    per_try_timeout: float | None = None
    backoff_base: float = 0.025
    backoff_max: float = 0.25
    budget: float = 0.2
    min_retries: int = 3
    # nginx's proxy_next_upstream_timeout: no retry starts this many seconds after the request's first
    # attempt (0: no limit).
    window: float = 0.0
    # nginx's next upstream: never more attempts than the cluster has endpoints.
    per_endpoint: bool = False


@dataclass(frozen=True, slots=True)
class FaultInjection:
    """Delay and/or abort a fraction of requests (optionally only those carrying a header): for staging."""

    delay: float = 0.0
    delay_fraction: float = 0.0
    abort_status: int = 0
    abort_fraction: float = 0.0
    header: bytes = b""  # lower-case name; empty: every request may be picked


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A local token bucket (per pod: N replicas allow N times the rate), per route or per client IP."""

    requests: int
    per: float  # seconds
    burst: int = 0
    per_client: bool = False
    status: int = 429


@dataclass(frozen=True, slots=True)
class ClientLimit:
    """ingress-nginx's per-client limits (`limit-connections`, `limit-rpm`, `limit-rps`, `limit-whitelist`),
    local to each replica like nginx's zones. `zone` names the Ingress: as ingress-nginx makes one zone per
    Ingress, every route of that Ingress counts against the same buckets and connection counts. Checked in
    ingress-nginx's documented order, connections, then rpm, then rps; addresses in `exempt` are never
    limited; a refused request gets `status`."""

    zone: str
    connections: int = 0  # concurrent requests per client address; 0: no limit
    rpm: RateLimit | None = None
    rps: RateLimit | None = None
    exempt: AddressSet | None = None
    status: int = 503  # over limit-rpm / limit-rps (limit-req-status-code)
    connection_status: int = 503  # over limit-connections (limit-conn-status-code)


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    retry: RetryPolicy | None = None
    fault: FaultInjection | None = None
    rate_limit: RateLimit | None = None
    client_limit: ClientLimit | None = None
    # ingress-nginx's auth-url: asked after the limits, before the request goes upstream (proxy.http.auth_request).
    auth: ExternalAuth | None = None
    # ingress-nginx's proxy-http-version 1.0: HTTP/1.0 to the pods, "Connection: close", chunked bodies refused (411).
    http10: bool = False
    # ingress-nginx's proxy-request-buffering on: the body is read before the pod is dialed (proxy.http.buffering).
    buffer_body: bool = False


def affinity_prefix(namespace: str, service: str, port: str) -> bytes:
    """The start of every affinity cookie value naming a pod of this Service port (proxy.upstream.cluster's
    affinity_token): what an ingress-nginx sticky canary reads to keep a client on the backend it was given."""
    return hashlib.blake2b(f"{namespace}/{service}:{port}".encode(), digest_size=3).hexdigest().encode() + b"."


def policy_key(cluster_key: str, policy: ClusterPolicy | None) -> str:
    """The cluster key of a Service port under a policy: the plain key without one, else the key and the
    policy's digest (equal policies share a cluster; different ones never share balancer state)."""
    if policy is None:
        return cluster_key
    return f"{cluster_key}~{hashlib.sha256(repr(policy).encode()).hexdigest()[:12]}"
