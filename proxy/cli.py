"""The `pyngress` command: flags, logging, and the process lifecycle.

Start-up order: admin port (so /healthz answers at once), the object source, the first
routing table, then the proxy listener(s). Two lines go to stdout, with the real ports when
0 (ephemeral) was asked for, for tests and scripts to read:
`pyngress admin=127.0.0.1:10254` as soon as the admin port is bound (before the first
configuration: /readyz answers 503 until then), and, once every listener is bound,
`pyngress listening http=127.0.0.1:8080 admin=127.0.0.1:10254`.

SIGTERM or SIGINT: /readyz turns 503, listeners stop accepting, requests in flight get
`--shutdown-grace-period` seconds to finish, then the process exits 0. A second signal
exits at once with status 1.

With `--workers N` (N > 1) this process becomes the control process of proxy/workers.py:
same admin port, source and stdout lines, but the listeners are served by N worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Mapping, Sequence

from proxy import __version__
from proxy.settings import CONTROLLER_NAME, GATEWAY_CONTROLLER_NAME, Settings

if TYPE_CHECKING:
    from proxy.admin import AdminServer
    from proxy.controller import Controller
    from proxy.kube.cache import ObjectCache
    from proxy.kube.events import EventRecorder
    from proxy.kube.leader import LeaderElector
    from proxy.kube.status import StatusWriter
    from proxy.kube.watch import WatchStatus
    from proxy.metrics import Metrics
    from proxy.runtime import RuntimeHolder
    from proxy.server import ProxyServer

log = logging.getLogger("pyngress")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_DEFAULTS = Settings()


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default ("none"/"off" rather than an empty string)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is argparse.SUPPRESS or not action.option_strings or action.nargs == 0 and not isinstance(
                action.default, bool):
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
                     help="port put into HTTP->HTTPS redirects when clients reach HTTPS on another port than "
                          "--https-port (e.g. a NodePort or a load balancer's 443; 443 is left out of the URL; "
                          "0: --https-port)")
    tls.add_argument("--hsts", action=argparse.BooleanOptionalAction, default=d.hsts,
                     help="Strict-Transport-Security on HTTPS answers (one the upstream sends wins)")
    tls.add_argument("--hsts-max-age", type=_count, default=d.hsts_max_age, metavar="SECONDS",
                     help="its max-age")
    tls.add_argument("--hsts-include-subdomains", action=argparse.BooleanOptionalAction,
                     default=d.hsts_include_subdomains, help="its includeSubDomains")
    tls.add_argument("--hsts-preload", action=argparse.BooleanOptionalAction, default=d.hsts_preload,
                     help="its preload")

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
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse flags into Settings; exits with usage (status 2) on a bad flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    addresses = tuple(a.strip() for value in args.publish_status_address for a in value.split(",") if a.strip())
    for flag, value in (("--publish-service", args.publish_service),
                        ("--default-ssl-certificate", args.default_ssl_certificate),
                        *(("--gateway", gateway) for gateway in args.gateway)):
        if value and (value.count("/") != 1 or value.startswith("/") or value.endswith("/")):
            parser.error(f"{flag} must be NAMESPACE/NAME, got {value!r}")
    return Settings(
        manifests=tuple(args.manifests),
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


def configure_logging(level: str, *, process: str = "") -> None:
    """Plain lines on stderr: time, level, [process,] logger, message (`process` names a worker)."""
    handler = logging.StreamHandler(sys.stderr)
    tag = f"{process} " if process else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class ClusterMode:
    """Cluster mode's parts on one API client: the watch feeding the cache, leader election, and
    the leader-only writers (Ingress status when an address is published, Warning Events)."""

    def __init__(self, client: Any, coroutines: list[tuple[str, Coroutine[Any, Any, None]]], *,
                 watch: WatchStatus | None = None, elector: LeaderElector | None = None,
                 status_writer: StatusWriter | None = None, events: EventRecorder | None = None) -> None:
        self.client = client
        self.coroutines = coroutines
        self.watch = watch
        self.elector = elector
        self.status_writer = status_writer
        self.events = events

    async def close(self) -> None:
        await self.client.close()


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


async def cluster_mode(cache: ObjectCache, settings: Settings, holder: RuntimeHolder, *,
                       controller: Controller | None = None, metrics: Metrics | None = None) -> ClusterMode:
    """Build the cluster-mode tasks; raises ClusterConfigError when no cluster can be reached.

    The elector always campaigns: Ingress status and Warning Events are both written by the
    leader only. With `controller`, its build warnings become Events; with `metrics`, watch
    health, leadership, status writes and Events are exported (read at scrape time).
    """
    from proxy.kube.client import ClusterConfigError, create_api_client
    from proxy.kube.events import EventRecorder
    from proxy.kube.leader import LeaderElector, election_timing
    from proxy.kube.status import StatusWriter
    from proxy.kube.watch import WATCHED_KINDS, WatchStatus, run_cluster_source

    try:
        timing = election_timing(settings.election_ttl)
    except ValueError as error:
        raise ClusterConfigError(str(error)) from None
    client = await create_api_client(settings)
    watch = WatchStatus.for_kinds(spec.kind for spec in WATCHED_KINDS)
    elector = LeaderElector(client, settings, lease_duration=timing.lease_duration,
                            renew_deadline=timing.renew_deadline, retry_period=timing.retry_period)
    coroutines: list[tuple[str, Coroutine[Any, Any, None]]] = [
        ("cluster watch", run_cluster_source(cache, settings, api_client=client, status=watch)),
        ("leader election", elector.run()),
    ]
    writer = None
    if settings.publish_service or settings.publish_status_address:
        writer = StatusWriter(cache, settings, api_client=client, holder=holder, elector=elector)
        coroutines.append(("status writer", writer.run()))
    else:
        log.info("no --publish-service or --publish-status-address: Ingress status is not written")
    warnings = (lambda: controller.warnings) if controller is not None else None
    recorder = EventRecorder(client, settings, cache=cache, elector=elector, warnings=warnings)
    coroutines.append(("event recorder", recorder.run()))
    if metrics is not None:
        metrics.add_cluster(watch=watch, elector=elector, status_writer=writer, events=recorder)
    return ClusterMode(client, coroutines, watch=watch, elector=elector, status_writer=writer, events=recorder)


class Signals:
    """First SIGTERM/SIGINT asks for a graceful stop, a second one for an immediate exit."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.signalled = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._received, sig)

    def request_stop(self) -> None:
        """A graceful stop asked for otherwise than by a signal (a worker's control process); a
        signal after it is still the first one, not a reason to cut the drain."""
        self.stop.set()

    def _received(self, sig: signal.Signals) -> None:
        if self.signalled:
            log.warning("second %s: exiting now", sig.name)
            self.force.set()
        else:
            log.info("%s received: shutting down", sig.name)
            self.signalled = True
            self.stop.set()


async def serve(settings: Settings) -> int:
    """Run the proxy until a signal; returns the exit status."""
    from proxy.admin import AdminServer
    from proxy.controller import Controller
    from proxy.kube.client import ClusterConfigError
    from proxy.kube.files import ManifestError
    from proxy.metrics import Metrics
    from proxy.runtime import RuntimeHolder
    from proxy.server import ProxyServer

    signals = Signals()
    signals.install(asyncio.get_running_loop())

    holder = RuntimeHolder()
    cache = new_cache(settings)
    controller = Controller(cache=cache, settings=settings, holder=holder)
    server = ProxyServer(settings=settings, holder=holder, freeze_gc=True)
    metrics = Metrics(holder=holder, controller=controller, server=server)
    admin = AdminServer(settings=settings, holder=holder, metrics=metrics, controller=controller)
    tasks: list[asyncio.Task[None]] = []
    listening = False
    cluster: ClusterMode | None = None

    async def run() -> int:
        nonlocal listening, cluster
        try:
            cluster = await start_control(admin, cache, settings, holder, controller=controller, metrics=metrics,
                                          tasks=tasks)
        except (ManifestError, ClusterConfigError) as error:
            log.error("%s", error)
            return EXIT_USAGE

        if not await wait_until(holder.wait_for(1, timeout=float("inf")), signals.stop, tasks):
            return report_failure(tasks)
        if signals.stop.is_set():
            return EXIT_OK  # stopped before the first configuration: nothing to drain
        await server.start()
        listening = True
        await start_https(server, controller)
        print(listening_line(settings, http_port=server.http_port, https_port=server.https_port,
                             admin_port=admin.port), flush=True)
        log.info("ready: serving generation %d", holder.generation)
        if not await wait_until(signals.stop.wait(), signals.stop, tasks):
            return report_failure(tasks)
        return EXIT_OK

    try:
        status = await run()
    except OSError as error:  # a port in use, an address not available
        log.error("cannot start: %s", error)
        status = EXIT_FAILED
    finally:
        admin.shutting_down = True
    try:
        if listening:
            status = max(status, await drain(server, settings, signals))
            await server.close()  # whatever the grace period could not finish is cut now
    finally:
        for task in tasks:
            task.cancel()  # the elector releases its Lease on the way out
        await asyncio.gather(*tasks, return_exceptions=True)
        controller.close()
        if cluster is not None:
            await cluster.close()
        await admin.stop()
    log.info("stopped")
    return status


async def wait_until(awaitable: Awaitable[object], stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> bool:
    """Wait for `awaitable` or `stop`; False if a background task ended first (a failure)."""
    waited = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([waited, stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (waited, stopper):
            future.cancel()
        await asyncio.gather(waited, stopper, return_exceptions=True)
    return not any(task.done() for task in tasks)


def report_failure(tasks: list[asyncio.Task[None]]) -> int:
    for task in tasks:
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                log.error("%s failed: %s", task.get_name(), error)
                log.debug("%s failure", task.get_name(), exc_info=error)
            else:
                log.error("%s stopped unexpectedly", task.get_name())
    return EXIT_FAILED


async def drain(server: ProxyServer, settings: Settings, signals: Signals) -> int:
    """Stop accepting, then give requests in flight the grace period (a second signal cuts it short)."""
    server.stop_accepting()
    draining = asyncio.ensure_future(server.drain(settings.shutdown_grace_period))
    forced = asyncio.ensure_future(signals.force.wait())
    await asyncio.wait([draining, forced], return_when=asyncio.FIRST_COMPLETED)
    forced.cancel()
    if not draining.done():
        draining.cancel()
        await asyncio.gather(draining, return_exceptions=True)
        return EXIT_FAILED
    if not draining.result():
        log.warning("requests still in flight after the %.1f s grace period were cut", settings.shutdown_grace_period)
    return EXIT_OK


def listening_line(settings: Settings, *, http_port: int, https_port: int, admin_port: int) -> str:
    """The stdout line scripts and tests wait for (https left out when that listener is not up)."""
    host = settings.bind
    parts = [f"http={host}:{http_port}"]
    if https_port:
        parts.append(f"https={host}:{https_port}")
    parts.append(f"admin={host}:{admin_port}")
    return "pyngress listening " + " ".join(parts)


def new_cache(settings: Settings) -> ObjectCache:
    """An empty object cache for `settings` (the default certificate's Secret matters unreferenced)."""
    from proxy.kube.cache import ObjectCache

    relevant = set()
    if settings.default_ssl_certificate:
        namespace, name = settings.default_ssl_certificate.split("/", 1)
        relevant.add((namespace, name))
    return ObjectCache(relevant_secrets=relevant)


async def start_control(admin: AdminServer, cache: ObjectCache, settings: Settings, holder: RuntimeHolder, *,
                        controller: Controller, metrics: Metrics,
                        tasks: list[asyncio.Task[None]]) -> ClusterMode | None:
    """The control plane of a single process and of the control process of workers alike: the admin
    port (its line printed at once, so probes can be watched before the first configuration; /readyz
    is 503 until then), the controller, and `cache` fed from the manifests (loaded once before
    returning) or the cluster. Background tasks are appended to `tasks`. Raises ManifestError or
    ClusterConfigError (a usage error)."""
    from proxy.kube.files import ManifestSource

    await admin.start()
    print(f"pyngress admin={settings.bind}:{admin.port}", flush=True)
    tasks.append(asyncio.create_task(controller.run(), name="controller"))
    if settings.manifests:
        source = ManifestSource(cache, settings.manifests)
        await source.load()
        tasks.append(asyncio.create_task(source.run(), name="manifests"))
        return None
    cluster = await cluster_mode(cache, settings, holder, controller=controller, metrics=metrics)
    tasks.extend(asyncio.create_task(coro, name=name) for name, coro in cluster.coroutines)
    return cluster


async def start_https(server: ProxyServer, controller: Controller) -> None:
    """The HTTPS listener on the controller's certificate store (None only if building it failed outright)."""
    if controller.tls is not None:
        await server.start_https(controller.tls.server_context(), certificates=controller.tls)
    else:
        log.error("no TLS certificate store: the HTTPS listener is not started")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (the proxy works without it, slower)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (`pyngress`, `python -m proxy`)."""
    settings = settings_from_args(argv)
    configure_logging(settings.log_level)
    if settings.workers > 1:
        from proxy.workers import serve_workers

        entry = serve_workers(settings)
    else:
        entry = serve(settings)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(entry)


if __name__ == "__main__":
    sys.exit(main())
