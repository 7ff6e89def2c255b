"""The controller: turns cache changes into a running configuration.

Route changes are debounced (a burst of events costs one build), built off the event loop,
and published as one new `Runtime` unless the build equals the running one. Endpoint-only
changes never rebuild routes: the affected clusters are resolved again and their live
`Upstream`s updated in place, as Envoy separates EDS from RDS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from proxy.objects import Key, Snapshot, Warning
from proxy.routing.clusters import resolve_cluster
from proxy.routing.fields import Malformed
from proxy.routing.incremental import Builder
from proxy.routing.ingress.classes import select_classes
from proxy.routing.ingress.client_auth import client_auth_hosts
from proxy.routing.model import Cluster, Config
from proxy.routing.policies import BackendTLS
from proxy.runtime import Runtime, RuntimeHolder
from proxy.settings import Settings
from proxy.tls import (
    Certificate,
    CertStore,
    CertStoreHolder,
    default_certificate,
    generate_default_certificate,
    tls_hosts,
)
from proxy.tls.client_auth import ClientAuthContext
from proxy.tls.listeners import port_stores
from proxy.upstream.cluster import Upstream
from proxy.upstream.health import HealthChecker, HealthVerdicts
from proxy.upstream.tls import ClientContexts

if TYPE_CHECKING:
    from proxy.kube.cache import CacheChange, ObjectCache

log = logging.getLogger("pyngress.controller")

# Key of the Ingress HTTPS listener's store among the per-port stores (no real port is negative).
INGRESS_TLS = -1

# Upper bounds (seconds) of the rebuild-duration histogram: builds take from well under a
# millisecond (a few Ingresses) to seconds (tens of thousands).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DurationHistogram:
    """Cumulative-bucket histogram kept as plain numbers; metrics.py exposes it at scrape time."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Iterable[float] = DURATION_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)  # non-cumulative per bucket; +Inf is `count`
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
                break

    def cumulative(self) -> list[tuple[float, int]]:
        total = 0
        out = []
        for bound, count in zip(self.bounds, self.counts):
            total += count
            out.append((bound, total))
        return out


class ControllerStats:
    """Counters the metrics collector reads; updated only when something is built, never per request."""

    __slots__ = ("published", "unchanged", "errors", "endpoint_updates", "last_success", "durations",
                 "routes", "clusters", "warnings")

    def __init__(self) -> None:
        self.published = 0  # builds that became the running configuration
        self.unchanged = 0  # builds equal to the running one (not swapped)
        self.errors = 0  # builds that raised
        self.endpoint_updates = 0  # clusters whose endpoints were replaced without a rebuild
        self.last_success = 0.0  # wall-clock time of the last build that did not fail
        self.durations = DurationHistogram()
        self.routes = 0
        self.clusters = 0
        self.warnings = 0


class Controller:
    """Watches the cache, builds configurations, keeps one live Upstream per cluster key."""

    def __init__(self, *, cache: ObjectCache, settings: Settings, holder: RuntimeHolder,
                 generated: Certificate | None = None, probe: bool = True,
                 ticket_keys: bytes | None = None) -> None:
        self.cache = cache
        self.settings = settings
        # The settings upstreams get: the flags', with the global configuration's pool settings (see _retune).
        self.upstream_settings = settings
        self.holder = holder
        self.stats = ControllerStats()
        # The last build's warnings (also when that build was not swapped in because it was equal).
        self.warnings: tuple[Warning, ...] = ()
        # The HTTPS listener's certificates: made by the first build, republished by every build after
        # (a reference swap; certificates whose digest did not change are not reloaded).
        self.tls: CertStoreHolder | None = None
        # The same for each other HTTPS port a Gateway listener asks for (local port -> holder).
        self.tls_ports: dict[int, CertStoreHolder] = {}
        # The self-signed default certificate (made at the first build unless given: worker processes
        # get the control process's, so every worker serves the same one).
        self._generated: Certificate | None = generated
        # The session-ticket keys of every HTTPS listener (worker processes get the control process's, so a
        # ticket issued by one worker resumes on another; None: OpenSSL's random keys, this process only).
        self.ticket_keys = ticket_keys
        # TLS host pattern -> (namespace, Secret name) of the published store ("" name: the default).
        self.tls_sources: Mapping[str, Key] = {}
        self._upstreams: dict[str, Upstream] = {}
        # Client contexts of the clusters' TLS policies, built in the build thread.
        self.tls_contexts = ClientContexts()
        # Active health: the verdicts applied to this process's pools, and the prober that makes them (a worker
        # of `--workers N` has none: the control process probes and relays its verdicts, see proxy.workers).
        self.health = HealthVerdicts(self._upstreams)
        self.checker: HealthChecker | None = HealthChecker(self.health) if probe else None
        # What each upstream was last given, to update only clusters that changed.
        self._clusters: dict[str, Cluster] = {}
        # The last clusters mapping applied (skipped when a build returns the very same one).
        self._given: Mapping[str, Cluster] | None = None
        self._keys_by_service: dict[Key, tuple[str, ...]] = {}
        self._logged: set[Warning] = set()
        self._pending_routes = False
        self._pending_endpoints: set[Key] = set()
        self._wake = asyncio.Event()
        # Remembers per-object work between builds (a change costs what changed, not the whole table);
        # used by one build at a time: rebuild() awaits each build before the next can start.
        self._builder = Builder()
        self._unsubscribe = cache.subscribe(self._on_change)

    def _on_change(self, change: CacheChange) -> None:
        if change.routes:
            self._pending_routes = True
        self._pending_endpoints |= change.endpoints
        self._wake.set()

    async def run(self) -> None:
        """Build and publish until cancelled; nothing is built before the cache is synced."""
        if self.cache.synced:
            self._pending_routes = True
            self._wake.set()
        while True:
            await self._wake.wait()
            await self._settle()
            self._wake.clear()
            if not self.cache.synced:
                continue  # pending changes wait; the cache becoming synced wakes us again
            routes, services = self._pending_routes, self._pending_endpoints
            self._pending_routes = False
            self._pending_endpoints = set()
            try:
                if routes or self.holder.current is None:
                    await self.rebuild()  # the snapshot it takes already holds every endpoint change
                elif services:
                    self.move_endpoints(services)
            except Exception:  # keep serving the running configuration; the next change tries again
                self.stats.errors += 1
                log.exception("applying a configuration change failed")

    async def _settle(self) -> None:
        """Wait until changes pause for `debounce`, but no longer than `debounce_max` after the first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.debounce_max
        while True:
            self._wake.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(min(self.settings.debounce, remaining)):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def rebuild(self) -> bool:
        """Build from the current cache and publish it unless equal to the running configuration."""
        snapshot = self.cache.snapshot()
        started = time.perf_counter()
        try:
            # Always in a thread: the hop costs ~40 us, a build ~0.6 ms for 10 Ingresses but ~40 ms
            # for 1000 and ~200 ms for 5000 (measured), which would stall every connection on the loop.
            if self._generated is None:
                self._generated = await asyncio.to_thread(generate_default_certificate)
            config, tls_build, tls_warnings = await asyncio.to_thread(self._build, snapshot)
        except Exception:
            self.stats.errors += 1
            log.exception("building the configuration failed; keeping the running one")
            return False
        elapsed = time.perf_counter() - started
        self._retune(config)
        self.stats.durations.observe(elapsed)
        self.stats.last_success = time.time()
        self.warnings = config.warnings + tuple(tls_warnings)
        self._log_warnings(self.warnings, replace=True)
        # Certificates are published whether or not the routes changed: a rotated Secret changes
        # no route. New handshakes see the new store at once; open connections keep theirs.
        if tls_build is not None:
            stores, self.tls_sources = tls_build
            self._publish_certificates(stores)

        current = self.holder.current
        if (current is not None and config.checksum and current.config.checksum == config.checksum
                and current.upstreams.keys() == config.clusters.keys()):
            self._update_upstreams(config.clusters)  # routing is equal; endpoints may still have moved
            self.stats.unchanged += 1
            self.stats.warnings = len(self.warnings)
            log.debug("configuration unchanged (checksum %s), built in %.1f ms", config.checksum, elapsed * 1000)
            return False
        self._publish(config, elapsed)
        return True

    def _retune(self, config: Config) -> None:
        """The upstream side of the global configuration: pool sizes, idle and connect timeouts."""
        found = config.global_config
        if found is None:
            return
        wanted = dataclasses.replace(self.upstream_settings, upstream_connect_timeout=found.proxy_connect_timeout,
                                     upstream_keepalive=found.upstream_keepalive_connections,
                                     upstream_keepalive_timeout=found.upstream_keepalive_timeout)
        if wanted != self.upstream_settings:
            self.upstream_settings = wanted
            for upstream in self._upstreams.values():
                upstream.retune(wanted)

    def _build(
        self, snapshot: Snapshot
    ) -> tuple[Config, tuple[dict[int, CertStore], Mapping[str, Key]] | None, list[Warning]]:
        """Routes and certificates from one snapshot (in a worker thread: parsing certificates is CPU work)."""
        config = self._builder.build(snapshot, self.settings)
        self.tls_contexts.prepare(_tls_policies(config.clusters))
        try:
            stores, hosts, warnings = self._build_tls(snapshot, config)
        except Exception:  # a bug in the TLS code must not stop routing; the running certificates stay
            log.exception("building the TLS certificate store failed; keeping the running one")
            return config, None, []
        return config, (stores, hosts), warnings

    def _build_tls(self, snapshot: Snapshot,
                   config: Config) -> tuple[dict[int, CertStore], Mapping[str, Key], list[Warning]]:
        """The certificate store of every HTTPS port (the Ingress one is keyed by INGRESS_TLS)."""
        assert self._generated is not None
        selection, _ = select_classes(snapshot, self.settings)  # its warnings are build()'s
        served = []
        for ingress in snapshot.ingresses.values():
            try:
                if selection.serves(ingress):
                    served.append(ingress)
            except Malformed:  # build() reports it
                continue
        default, warnings = default_certificate(snapshot, self.settings.default_ssl_certificate,
                                                generated=self._generated)
        hosts, host_warnings = tls_hosts(snapshot, served)
        https = self.settings.https_port
        listeners = {port: listener.certificates for port, listener in config.listeners.items()
                     if listener.protocol == "HTTPS"}
        current = {port: holder.current for port, holder in self.tls_ports.items()}
        if self.tls is not None:
            current[INGRESS_TLS] = self.tls.current
        if https in listeners:
            listeners[INGRESS_TLS] = listeners.pop(https)
        client_auth, auth_warnings = client_auth_hosts(served)
        warnings += auth_warnings
        stores, store_warnings = port_stores(snapshot, ingress_port=INGRESS_TLS, ingress_hosts=hosts,
                                             listeners=listeners, default=default, reuse=current,
                                             client_auth=client_auth)
        for port, store in stores.items():
            known = current.get(port)
            if known is not None and _same_certificates(known, store):
                stores[port] = known  # nothing changed: keep the published one
        return stores, hosts, [*warnings, *host_warnings, *store_warnings]

    def _publish_certificates(self, stores: dict[int, CertStore]) -> None:
        """Swap in the new stores (new handshakes see them at once; open connections keep theirs)."""
        ingress = stores.pop(INGRESS_TLS)
        if self.tls is None:
            self.tls = CertStoreHolder(ingress, ticket_keys=self.ticket_keys)
        elif ingress is not self.tls.current:
            self.tls.publish(ingress)
        for port in self.tls_ports.keys() - stores.keys():
            del self.tls_ports[port]
        for port, store in stores.items():
            holder = self.tls_ports.get(port)
            if holder is None:
                self.tls_ports[port] = CertStoreHolder(store, ticket_keys=self.ticket_keys)
            elif store is not holder.current:
                holder.publish(store)

    def move_endpoints(self, services: Iterable[Key]) -> int:
        """Re-resolve the clusters of `services` and update their upstreams; returns how many changed."""
        snapshot = self.cache.snapshot()
        moved = 0
        for service in services:
            for key in self._keys_by_service.get(service, ()):
                old = self._clusters[key]
                cluster, warnings = resolve_cluster(
                    snapshot, namespace=old.namespace, service=old.service, port=old.port, policy=old.policy)
                self._log_warnings(warnings, replace=False)
                if old.policy is not None:
                    # The Service port under a traffic policy: its own key (with the policy's digest) and policy
                    # stay; only the endpoints move (the Upstream keeps its balancer and health state).
                    cluster = dataclasses.replace(cluster, key=old.key, policy=old.policy)
                if cluster != old:
                    self._upstreams[key].update(cluster)
                    self._clusters[key] = cluster
                    moved += 1
        self.stats.endpoint_updates += moved
        if moved:
            log.debug("endpoints of %d clusters updated", moved)
        return moved

    @property
    def generated(self) -> Certificate | None:
        return self._generated

    @property
    def upstreams(self) -> MappingProxyType[str, Upstream]:
        return MappingProxyType(self._upstreams)

    def close(self) -> None:
        """Stop listening to the cache and close every upstream's idle connections."""
        self._unsubscribe()
        if self.checker is not None:
            self.checker.close()
        for upstream in self._upstreams.values():
            upstream.close()

    # ------------------------------------------------------------------ internals

    def _publish(self, config: Config, elapsed: float) -> None:
        removed = [up for key, up in self._upstreams.items() if key not in config.clusters]
        for key in self._upstreams.keys() - config.clusters.keys():
            del self._upstreams[key]
            del self._clusters[key]
        keys_changed = bool(removed) or len(self._upstreams) != len(config.clusters)
        self._update_upstreams(config.clusters)
        if keys_changed or not self._keys_by_service:
            by_service: dict[Key, list[str]] = {}
            for key, cluster in config.clusters.items():
                by_service.setdefault((cluster.namespace, cluster.service), []).append(key)
            self._keys_by_service = {service: tuple(keys) for service, keys in by_service.items()}

        generation = self.holder.generation + 1
        # A fresh mapping per generation: a request keeps the upstreams of the runtime it started on.
        self.holder.publish(Runtime(config, MappingProxyType(dict(self._upstreams)), generation,
                                    certificates=MappingProxyType(dict(self.tls_ports))))
        for upstream in removed:
            upstream.close()  # idle connections only; requests in flight finish

        stats = self.stats
        stats.published += 1
        stats.routes = sum(1 for _ in config.routes())
        stats.clusters = len(config.clusters)
        stats.warnings = len(config.warnings)
        log.info("configuration generation %d: %d routes, %d clusters, %d warnings, built in %.1f ms",
                 generation, stats.routes, stats.clusters, stats.warnings, elapsed * 1000)

    def _update_upstreams(self, clusters: Mapping[str, Cluster]) -> None:
        if clusters is self._given:
            return  # the builder hands back the same mapping when no cluster changed
        self._given = clusters
        known = self._clusters
        for key, cluster in clusters.items():
            old = known.get(key)
            if old is cluster:
                continue  # unchanged clusters are the same objects from build to build
            upstream = self._upstreams.get(key)
            if upstream is None:
                self._upstreams[key] = Upstream(cluster, settings=self.upstream_settings, contexts=self.tls_contexts,
                                                health=self.health)
                known[key] = cluster
            elif old != cluster:
                upstream.update(cluster)
                known[key] = cluster
        self.tls_contexts.retain(_tls_policies(clusters))
        if self.checker is not None:
            self.checker.track(self._upstreams)

    def _log_warnings(self, warnings: Iterable[Warning], *, replace: bool) -> None:
        """Log each warning once while it persists, not on every rebuild."""
        current = dict.fromkeys(warnings)
        for warning in current:
            if warning not in self._logged:
                log.warning("%s", warning)
        if replace:
            self._logged = set(current)
        else:
            self._logged.update(current)


def _tls_policies(clusters: Mapping[str, Cluster]) -> set[BackendTLS]:
    return {cluster.policy.tls for cluster in clusters.values()
            if cluster.policy is not None and cluster.policy.tls is not None}


def _auth_key(auth: ClientAuthContext) -> tuple[str, str, int, bytes]:
    return (auth.secret, auth.verify, auth.depth, auth.session_context)


def _same_certificates(old: CertStore, new: CertStore) -> bool:
    """Equal host patterns with equal certificate digests (the default included)."""
    if old.default.digest != new.default.digest or len(old) != len(new):
        return False
    if (old.authenticating or new.authenticating) and (  # client CAs: what each host's context verifies against
            {host: _auth_key(auth) for host, auth in old.authenticating.items()}
            != {host: _auth_key(auth) for host, auth in new.authenticating.items()}):
        return False
    previous = old.certificates
    for pattern, cert in new.certificates.items():
        known = previous.get(pattern)
        if known is None or known.digest != cert.digest:
            return False
    return True
