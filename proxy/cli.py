"""The `pyngress` command: flags into Settings, and `main`, which runs the process.

One process serves by itself (proxy/lifecycle/single.py); with `--workers N` (N > 1) it
becomes the control process of proxy/workers/: same admin port, source and stdout lines, but
the listeners are served by N worker processes. proxy/lifecycle/ says how either starts and
stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from proxy import __version__, extensions
from proxy.lifecycle.process import configure_logging, loop_factory
from proxy.routing.access import parse_networks
from proxy.settings import CONTROLLER_NAME, GATEWAY_CONTROLLER_NAME, Settings

_DEFAULTS = Settings()


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default ("none"/"off" rather than an empty string)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is argparse.SUPPRESS or not action.option_strings or (action.nargs == 0 and not isinstance(
                action.default, bool)):
            return text
        default = action.default
        if isinstance(default, bool):
            shown = "on" if default else "off"
        elif default in ("", None) or default == []:
            shown = "none"
        else:
            shown = str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def build_parser() -> argparse.ArgumentParser:
    d = _DEFAULTS
    parser = argparse.ArgumentParser(
        prog="pyngress",
        description="A pure-Python Kubernetes ingress data plane. With --manifests it serves the Ingresses found "
                    "in YAML/JSON files (file mode); without, it watches a cluster (cluster mode).",
        formatter_class=_HelpFormatter,
    )
    add = parser.add_argument
    add("--version", action="version", version=f"pyngress {__version__}")
    src = parser.add_argument_group("sources")
    src.add_argument("--manifests", action="append", default=[], metavar="PATH",
                     help="file mode: a manifest file, or a folder whose *.yaml/*.yml/*.json files are read "
                          "(one level); repeatable; edits are picked up live")
    src.add_argument("--configmap", default=d.configmap, metavar="NAMESPACE/NAME",
                     help="ingress-nginx's ConfigMap of global settings (its --configmap): read from the "
                          "manifests in file mode, watched in cluster mode; changes apply live")
    src.add_argument("--default-backend-service", default=d.default_backend_service, metavar="NAMESPACE/NAME",
                     help="ingress-nginx's default backend Service (its flag of the same name): answers the "
                          "ConfigMap's custom-http-errors, and an Ingress's custom-http-errors without default-backend")
    src.add_argument("--kubeconfig", default=d.kubeconfig, metavar="FILE",
                     help="cluster mode: kubeconfig file (empty: in-cluster service account, then ~/.kube/config)")
    src.add_argument("--context", default=d.kube_context, help="cluster mode: kubeconfig context (empty: current)")
    src.add_argument("--watch-namespace", default=d.watch_namespace, metavar="NAMESPACE",
                     help="cluster mode: watch only this namespace (empty: all namespaces)")
    src.add_argument("--publish-service", default=d.publish_service, metavar="NAMESPACE/NAME",
                     help="cluster mode: Service whose address is written into Ingress status")
    src.add_argument("--publish-status-address", action="append", default=[], metavar="ADDRESS",
                     help="cluster mode: address(es) written into Ingress status instead (repeatable or "
                          "comma-separated)")
    src.add_argument("--election-id", default=d.election_id, metavar="NAME",
                     help="cluster mode: name of the Lease used to elect the replica that writes status")
    src.add_argument("--election-ttl", type=_positive_seconds, default=None, metavar="SECONDS",
                     help=f"cluster mode: leader Lease duration (default: ${ELECTION_TTL_ENV} or {d.election_ttl:g})")

    net = parser.add_argument_group("listeners")
    net.add_argument("--bind", default=d.bind, metavar="ADDRESS", help="address every listener binds")
    net.add_argument("--http-port", type=_port, default=d.http_port, metavar="PORT", help="HTTP port (0: ephemeral)")
    net.add_argument("--https-port", type=_port, default=d.https_port, metavar="PORT", help="HTTPS port (0: ephemeral)")
    net.add_argument("--admin-port", type=_port, default=d.admin_port, metavar="PORT",
                     help="port of /healthz, /readyz, /metrics, /debug/routes (0: ephemeral)")

    real = parser.add_argument_group("client addresses behind a load balancer (ingress-nginx ConfigMap keys)")
    real.add_argument("--proxy-protocol", action=argparse.BooleanOptionalAction, default=d.proxy_protocol,
                      help="every connection starts with a PROXY protocol (v1 or v2) header whose address is the "
                           "client's; one without a valid header is closed (use-proxy-protocol)")
    real.add_argument("--use-forwarded-headers", action=argparse.BooleanOptionalAction,
                      default=d.use_forwarded_headers,
                      help="requests from --proxy-real-ip-cidr: pass on their X-Forwarded-Proto/-Host/-Port, and take "
                           "the client address from --forwarded-for-header (use-forwarded-headers)")
    real.add_argument("--enable-real-ip", action=argparse.BooleanOptionalAction, default=d.enable_real_ip,
                      help="only the client address from --forwarded-for-header, for requests from "
                           "--proxy-real-ip-cidr (enable-real-ip)")
    real.add_argument("--proxy-real-ip-cidr", action="append", default=[], metavar="CIDR[,CIDR...]",
                      help="networks of the trusted proxies in front (repeatable or comma-separated; default "
                           "0.0.0.0/0) (proxy-real-ip-cidr)")
    real.add_argument("--forwarded-for-header", default=d.forwarded_for_header, metavar="NAME",
                      help="header naming the client address (forwarded-for-header)")
    real.add_argument("--compute-full-forwarded-for", action=argparse.BooleanOptionalAction,
                      default=d.compute_full_forwarded_for,
                      help="with --use-forwarded-headers: append the connection's address to the incoming "
                           "X-Forwarded-For instead of sending only the client address (compute-full-forwarded-for)")

    cls = parser.add_argument_group("ingress class")
    cls.add_argument("--ingress-class", default=d.ingress_class, metavar="NAME",
                     help="IngressClass name (and legacy kubernetes.io/ingress.class value) this proxy serves")
    cls.add_argument("--controller-class", default=CONTROLLER_NAME, metavar="NAME",
                     help="spec.controller value of the IngressClasses this proxy serves")
    cls.add_argument("--watch-ingress-without-class", action="store_true",
                     help="also serve Ingresses that name no class (when no default IngressClass claims them)")

    gw = parser.add_argument_group("Gateway API")
    gw.add_argument("--gateway-controller-name", default=GATEWAY_CONTROLLER_NAME, metavar="NAME",
                    help="spec.controllerName of the GatewayClasses this proxy serves")
    gw.add_argument("--gateway", action="append", default=[], metavar="NAMESPACE/NAME",
                    help="serve only these Gateways (repeatable; none: every Gateway of our GatewayClasses)")
    gw.add_argument("--gateway-port-offset", type=_count, default=d.gateway_port_offset, metavar="N",
                    help="a Gateway listener on port P is served on local port P + N (80 -> 8080 with 8000)")

    up = parser.add_argument_group("upstreams and clients")
    up.add_argument("--upstream-connect-timeout", type=_seconds, default=d.upstream_connect_timeout,
                    metavar="SECONDS", help="time to connect to a backend pod")
    up.add_argument("--upstream-read-timeout", type=_seconds, default=d.upstream_read_timeout, metavar="SECONDS",
                    help="time a backend may stay silent while answering")
    up.add_argument("--upstream-retries", type=_count, default=d.upstream_retries, metavar="N",
                    help="attempts on other endpoints when connecting to one fails")
    up.add_argument("--client-header-timeout", type=_seconds, default=d.client_header_timeout, metavar="SECONDS",
                    help="time a client has to send a request's headers")
    up.add_argument("--client-keepalive-timeout", type=_seconds, default=d.client_keepalive_timeout,
                    metavar="SECONDS", help="how long an idle client keep-alive connection stays open")
    up.add_argument("--max-header-bytes", type=_count, default=d.max_header_bytes, metavar="BYTES",
                    help="largest request header block accepted (larger: 431)")

    tls = parser.add_argument_group("TLS")
    tls.add_argument("--default-ssl-certificate", default=d.default_ssl_certificate, metavar="NAMESPACE/NAME",
                     help="kubernetes.io/tls Secret served when no Ingress certificate matches (empty: self-signed)")
    tls.add_argument("--publish-https-port", type=_port, default=d.publish_https_port, metavar="PORT",
                     help="port put into HTTP->HTTPS redirects, for clients that reach HTTPS on another port than "
                          "443 (e.g. a NodePort; 443 is left out of the URL; 0: no port, as ingress-nginx); with "
                          "use-port-in-redirects (annotation or ConfigMap key) the port those write")
    tls.add_argument("--hsts", action=argparse.BooleanOptionalAction, default=d.hsts,
                     help="Strict-Transport-Security on HTTPS answers (one the upstream sends wins)")
    tls.add_argument("--hsts-max-age", type=_count, default=d.hsts_max_age, metavar="SECONDS",
                     help="its max-age")
    tls.add_argument("--hsts-include-subdomains", action=argparse.BooleanOptionalAction,
                     default=d.hsts_include_subdomains, help="its includeSubDomains")
    tls.add_argument("--hsts-preload", action=argparse.BooleanOptionalAction, default=d.hsts_preload,
                     help="its preload")
    tls.add_argument("--http2", action=argparse.BooleanOptionalAction, default=d.http2,
                     help="HTTP/2 to clients: h2 offered by ALPN on TLS listeners, h2c with prior knowledge on plain "
                          "ones (--no-http2: HTTP/1.1 only)")
    tls.add_argument("--enable-ssl-passthrough", action="store_true", default=d.ssl_passthrough,
                     help="read the server name of TLS connections first: hosts of Ingresses annotated "
                          "ssl-passthrough and of TLSRoutes get the TLS stream undecrypted (off: every "
                          "connection is terminated here)")

    tls.add_argument("--tls-transport", choices=("auto", "asyncio", "native"), default=d.tls_transport,
                     help="how HTTPS listeners terminate TLS: native (OpenSSL reads and writes the socket, compiled "
                          "builds only; falls back to asyncio with a warning), asyncio (uvloop's SSL protocol), or "
                          "auto: native wherever it can serve, asyncio otherwise (pure-Python mode, PROXY protocol, "
                          "SSL passthrough; an INFO line at startup says which and why)")

    life = parser.add_argument_group("process")
    life.add_argument("--shutdown-grace-period", type=_seconds, default=d.shutdown_grace_period, metavar="SECONDS",
                      help="on SIGTERM, time requests in flight get to finish")
    life.add_argument("--log-level", default=d.log_level, choices=("debug", "info", "warning", "error"),
                      help="lowest level logged to stderr")
    life.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=d.access_log,
                      help="one JSON line per request on stdout (--no-access-log: off)")
    life.add_argument("--route-metrics", action=argparse.BooleanOptionalAction, default=d.route_metrics,
                      help="per-route request series on /metrics (--no-route-metrics: off; process and "
                           "connection metrics stay)")
    life.add_argument("--workers", type=_workers, default=d.workers, metavar="N|auto",
                      help="serving processes sharing the listeners (auto: one per core); one control plane "
                           "feeds them all")
    trace = parser.add_argument_group("tracing (OpenTelemetry)")
    trace.add_argument("--otlp-endpoint", default=d.otlp_endpoint, metavar="URL",
                       help="send spans to this OTLP/HTTP collector (protobuf; a URL without a path gets "
                            "/v1/traces); empty: no tracing, trace context headers pass through untouched")
    trace.add_argument("--trace-sample-ratio", type=_ratio, default=d.trace_sample_ratio, metavar="RATIO",
                       help="share of new traces sampled (0 to 1); a continued trace follows its parent's flag")
    trace.add_argument("--trace-trust-incoming", action=argparse.BooleanOptionalAction,
                       default=d.trace_trust_incoming,
                       help="continue the trace of a valid incoming traceparent (--no-trace-trust-incoming: "
                            "every request starts a new trace)")
    trace.add_argument("--trace-by-default", action=argparse.BooleanOptionalAction, default=d.trace_by_default,
                       help="trace routes without an enable-opentelemetry (Ingress) or pyngress.dev/tracing "
                            "(HTTPRoute) annotation (--no-trace-by-default: only routes annotated \"true\")")
    trace.add_argument("--otlp-export-interval", type=_positive_seconds, default=d.otlp_export_interval,
                       metavar="SECONDS", help="how often queued spans are exported (sooner when 512 are waiting)")
    trace.add_argument("--otlp-timeout", type=_positive_seconds, default=d.otlp_timeout, metavar="SECONDS",
                       help="longest one export request may take")
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse flags into Settings; exits with usage (status 2) on a bad flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.otlp_endpoint:
        from proxy.tracing.exporter import traces_url

        try:
            traces_url(args.otlp_endpoint)
        except ValueError as error:
            parser.error(f"--otlp-endpoint: {error}")
    addresses = tuple(a.strip() for value in args.publish_status_address for a in value.split(",") if a.strip())
    real_ip_cidr = _DEFAULTS.proxy_real_ip_cidr
    if args.proxy_real_ip_cidr:
        try:
            real_ip_cidr = parse_networks(",".join(args.proxy_real_ip_cidr))
        except ValueError as error:
            parser.error(f"--proxy-real-ip-cidr: {error}")
    for flag, value in (("--publish-service", args.publish_service),
                        ("--default-ssl-certificate", args.default_ssl_certificate),
                        ("--configmap", args.configmap),
                        ("--default-backend-service", args.default_backend_service),
                        *(("--gateway", gateway) for gateway in args.gateway)):
        if value and (value.count("/") != 1 or value.startswith("/") or value.endswith("/")):
            parser.error(f"{flag} must be NAMESPACE/NAME, got {value!r}")
    return Settings(
        manifests=tuple(args.manifests),
        configmap=args.configmap,
        default_backend_service=args.default_backend_service,
        bind=args.bind,
        http_port=args.http_port,
        https_port=args.https_port,
        admin_port=args.admin_port,
        ingress_class=args.ingress_class,
        controller_name=args.controller_class,
        watch_ingress_without_class=args.watch_ingress_without_class,
        gateway_controller_name=args.gateway_controller_name,
        gateways=tuple(args.gateway),
        gateway_port_offset=args.gateway_port_offset,
        upstream_connect_timeout=args.upstream_connect_timeout,
        upstream_read_timeout=args.upstream_read_timeout,
        upstream_retries=args.upstream_retries,
        client_header_timeout=args.client_header_timeout,
        client_keepalive_timeout=args.client_keepalive_timeout,
        max_header_bytes=args.max_header_bytes,
        proxy_protocol=args.proxy_protocol,
        use_forwarded_headers=args.use_forwarded_headers,
        enable_real_ip=args.enable_real_ip,
        proxy_real_ip_cidr=real_ip_cidr,
        forwarded_for_header=args.forwarded_for_header,
        compute_full_forwarded_for=args.compute_full_forwarded_for,
        shutdown_grace_period=args.shutdown_grace_period,
        access_log=args.access_log,
        route_metrics=args.route_metrics,
        log_level=args.log_level,
        kubeconfig=args.kubeconfig,
        kube_context=args.context,
        watch_namespace=args.watch_namespace,
        publish_service=args.publish_service,
        publish_status_address=addresses,
        election_id=args.election_id,
        election_ttl=args.election_ttl if args.election_ttl is not None else _election_ttl_or_exit(parser),
        workers=args.workers,
        pod_namespace=os.environ.get("POD_NAMESPACE") or _DEFAULTS.pod_namespace,
        pod_name=os.environ.get("POD_NAME") or _DEFAULTS.pod_name,
        default_ssl_certificate=args.default_ssl_certificate,
        publish_https_port=args.publish_https_port,
        hsts=args.hsts,
        hsts_max_age=args.hsts_max_age,
        hsts_include_subdomains=args.hsts_include_subdomains,
        hsts_preload=args.hsts_preload,
        ssl_passthrough=args.enable_ssl_passthrough,
        tls_transport=args.tls_transport,
        http2=args.http2,
        otlp_endpoint=args.otlp_endpoint,
        trace_sample_ratio=args.trace_sample_ratio,
        trace_trust_incoming=args.trace_trust_incoming,
        trace_by_default=args.trace_by_default,
        otlp_export_interval=args.otlp_export_interval,
        otlp_timeout=args.otlp_timeout,
    )


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535)")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a duration in seconds")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 seconds")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a ratio between 0 and 1")
    return value


def _workers(text: str) -> int:
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1 worker")
    return value


def _election_ttl_or_exit(parser: argparse.ArgumentParser) -> float:
    try:
        return election_ttl()
    except ValueError as error:
        parser.error(str(error))


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


# Leader election TTL in seconds, when --election-ttl is not given (kept for deployments that set it).
ELECTION_TTL_ENV = "PYNGRESS_ELECTION_TTL"


def election_ttl(environ: Mapping[str, str] | None = None) -> float:
    """The election TTL from $PYNGRESS_ELECTION_TTL, else ingress-nginx's 30 s; ValueError when invalid."""
    from proxy.kube.leader import ELECTION_TTL

    text = (os.environ if environ is None else environ).get(ELECTION_TTL_ENV, "").strip()
    if not text:
        return ELECTION_TTL
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ValueError(f"${ELECTION_TTL_ENV} must be a positive number of seconds, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (`pyngress`, `python -m proxy`); `pyngress migrate ...` runs the migration report."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["migrate"]:
        from proxy.migrate.cli import main as migrate

        return migrate(args[1:])
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    logging.getLogger("pyngress").info("hot path: %s", extensions.describe())
    if settings.workers > 1:
        from proxy.workers.control import serve_workers

        entry = serve_workers(settings)
    else:
        from proxy.lifecycle.single import serve

        entry = serve(settings)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(entry)


if __name__ == "__main__":
    sys.exit(main())
