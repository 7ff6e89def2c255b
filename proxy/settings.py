"""One frozen dataclass holding every setting; built once by the CLI, read everywhere."""

from __future__ import annotations

from dataclasses import dataclass

CONTROLLER_NAME = "pyngress.dev/ingress-controller"
GATEWAY_CONTROLLER_NAME = "pyngress.dev/gateway-controller"


@dataclass(frozen=True, slots=True)
class Settings:
    # Sources. Empty `manifests` means cluster mode.
    manifests: tuple[str, ...] = ()
    # "namespace/name" of ingress-nginx's ConfigMap (its --configmap): the global configuration
    # (routing.global_config), watched live; "" reads none.
    configmap: str = ""
    # "namespace/name" of ingress-nginx's default backend Service (its --default-backend-service): answers the
    # ConfigMap's custom-http-errors (and an Ingress's custom-http-errors without its own default-backend).
    default_backend_service: str = ""

    # Listeners. Defaults follow ingress-nginx's chart (8080/8443 inside the pod, admin 10254).
    bind: str = "0.0.0.0"
    http_port: int = 8080
    https_port: int = 8443
    admin_port: int = 10254

    # Ingress class selection.
    ingress_class: str = "pyngress"
    controller_name: str = CONTROLLER_NAME
    watch_ingress_without_class: bool = False

    # Gateway API: GatewayClasses whose spec.controllerName is this are ours, with their Gateways
    # (only those named in `gateways`, "namespace/name", when it is not empty). A listener on port P
    # is served locally on P + gateway_port_offset (80 -> 8080, 443 -> 8443: the Ingress listeners).
    gateway_controller_name: str = GATEWAY_CONTROLLER_NAME
    gateways: tuple[str, ...] = ()
    gateway_port_offset: int = 8000

    # Upstream behaviour (nginx: proxy_connect_timeout 5s, proxy_read_timeout 60s, proxy_next_upstream_tries 3).
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 60.0
    upstream_retries: int = 3
    # Idle keep-alive connections kept per endpoint; more are closed after use.
    upstream_keepalive: int = 64
    upstream_keepalive_timeout: float = 60.0

    # Client side limits (nginx: client_header_timeout 60s, keepalive_timeout 75s, 4x8k header buffers).
    client_header_timeout: float = 60.0
    client_keepalive_timeout: float = 75.0
    # A request body that stalls this long gets 408; a client that stops reading a response is cut.
    client_body_timeout: float = 60.0
    client_send_timeout: float = 60.0
    # Requests one client connection may carry (nginx keepalive_requests); 0: no limit.
    keepalive_requests: int = 0
    # HAProxy's PROXY protocol (v1 and v2) on every listener: each connection starts with a header naming the
    # client address, which is then the client address everywhere (ingress-nginx's use-proxy-protocol).
    proxy_protocol: bool = False
    # ingress-nginx's ConfigMap keys of the same names (proxy/http/forwarded.py): trust the X-Forwarded-* fields
    # of requests from `proxy_real_ip_cidr`, and take the client address from `forwarded_for_header`
    # (`enable_real_ip`: only the address); `compute_full_forwarded_for` appends to X-Forwarded-For.
    use_forwarded_headers: bool = False
    enable_real_ip: bool = False
    proxy_real_ip_cidr: tuple[str, ...] = ("0.0.0.0/0",)
    forwarded_for_header: str = "X-Forwarded-For"
    compute_full_forwarded_for: bool = False
    max_request_line: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    # Largest request body of an Ingress route, in bytes (0: no limit); over it, 413. ingress-nginx's
    # `proxy-body-size` default (1m): Ingresses written for it expect it; the annotation overrides it per
    # Ingress. Gateway API routes have no limit.
    proxy_body_size: int = 1024 * 1024

    # Lifecycle.
    shutdown_grace_period: float = 30.0
    # Coalescing of configuration changes: wait `debounce` after the last change, never more than `debounce_max`.
    debounce: float = 0.02
    debounce_max: float = 0.2

    # One JSON line per request on stdout (ingress-nginx logs every request by default too).
    access_log: bool = True
    # Per-route request series on /metrics (ingress-nginx: --enable-metrics); process metrics stay.
    route_metrics: bool = True
    log_level: str = "info"
    # Serving processes sharing the listeners with SO_REUSEPORT; 1 = everything in one process.
    workers: int = 1

    # Tracing (proxy/tracing/): spans go to this OTLP/HTTP endpoint ("" = no tracing at all: trace context
    # headers pass through untouched). New traces are sampled at `trace_sample_ratio`; a valid incoming
    # traceparent is continued (and its sampled flag followed) when `trace_trust_incoming`. Routes are traced
    # unless their annotation says "false" (with `trace_by_default` off: only those annotated "true").
    otlp_endpoint: str = ""
    trace_sample_ratio: float = 0.01
    trace_trust_incoming: bool = True
    trace_by_default: bool = True
    # Seconds between exports (sooner when a batch of spans fills up), and the longest one export may take.
    otlp_export_interval: float = 5.0
    otlp_timeout: float = 10.0

    # Cluster mode (used when `manifests` is empty).
    kubeconfig: str = ""
    kube_context: str = ""
    watch_namespace: str = ""  # "" = all namespaces
    publish_service: str = ""  # "namespace/name" of the Service whose address goes into Ingress status
    publish_status_address: tuple[str, ...] = ()
    election_id: str = "pyngress-leader"
    # Lease duration in seconds; renew deadline and retry period follow (ingress-nginx's --election-ttl).
    election_ttl: float = 30.0
    # Namespace of this pod (for the leader Lease and Events about ourselves); from $POD_NAMESPACE.
    pod_namespace: str = "default"
    pod_name: str = ""

    # TLS.
    default_ssl_certificate: str = ""  # "namespace/name" of a kubernetes.io/tls Secret
    # Port put into HTTP->HTTPS redirects when it is not 443 (0: none, as ingress-nginx without use-port-in-redirects).
    publish_https_port: int = 0
    hsts: bool = True
    hsts_max_age: int = 31536000
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    # SSL passthrough (ingress-nginx's --enable-ssl-passthrough): the HTTPS listeners read each
    # ClientHello's server name first; hosts of ssl-passthrough Ingresses and of TLSRoutes get the raw
    # TLS stream spliced to a pod. Off: the HTTPS listeners terminate every connection, as always.
    ssl_passthrough: bool = False
    # HTTP/2 to clients (ingress-nginx's use-http2): TLS listeners offer h2 by ALPN, plain ones accept h2c with
    # prior knowledge (the connection preface). Off: HTTP/1.1 only.
    http2: bool = True
    # How HTTPS listeners terminate TLS: "native" (OpenSSL on the socket, compiled: proxy/tls/native.py; falls back
    # to asyncio with a warning when unavailable), "asyncio" (uvloop's SSL protocol, proxy/tls/handshake.py), or
    # "auto": native wherever it can serve the listener, asyncio otherwise (one INFO line says which and why).
    tls_transport: str = "auto"
