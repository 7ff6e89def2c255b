"""Cluster mode's source: the watch feeding the cache, leader election, and the leader-only
writers (Ingress status, Gateway API status, BackendTrafficPolicy status, Warning Events), all on one
API client."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.controller import Controller
    from proxy.kube.cache import ObjectCache
    from proxy.kube.events import EventRecorder
    from proxy.kube.gateway_status import GatewayStatusWriter
    from proxy.kube.leader import LeaderElector
    from proxy.kube.policy_status import PolicyStatusWriter
    from proxy.kube.status import StatusWriter
    from proxy.kube.watch_status import WatchStatus
    from proxy.metrics import Metrics
    from proxy.runtime import RuntimeHolder
    from proxy.settings import Settings

log = logging.getLogger("pyngress")


class ClusterMode:
    """Cluster mode's parts on one API client: the watch feeding the cache, leader election, and
    the leader-only writers (Ingress status when an address is published, Gateway API status,
    Warning Events)."""

    def __init__(self, client: Any, coroutines: list[tuple[str, Coroutine[Any, Any, None]]], *,
                 watch: WatchStatus | None = None, elector: LeaderElector | None = None,
                 status_writer: StatusWriter | None = None, events: EventRecorder | None = None,
                 gateway_status_writer: GatewayStatusWriter | None = None,
                 policy_status_writer: PolicyStatusWriter | None = None) -> None:
        self.client = client
        self.coroutines = coroutines
        self.watch = watch
        self.elector = elector
        self.status_writer = status_writer
        self.gateway_status_writer = gateway_status_writer
        self.policy_status_writer = policy_status_writer
        self.events = events

    async def close(self) -> None:
        await self.client.close()


async def cluster_mode(cache: ObjectCache, settings: Settings, holder: RuntimeHolder, *,
                       controller: Controller | None = None, metrics: Metrics | None = None) -> ClusterMode:
    """Build the cluster-mode tasks; raises ClusterConfigError when no cluster can be reached.

    The elector always campaigns: Ingress status, Gateway API status and Warning Events are
    written by the leader only. With `controller`, its build warnings become Events; with `metrics`, watch
    health, leadership, status writes and Events are exported (read at scrape time).
    """
    from proxy.kube.client import ClusterConfigError, create_api_client
    from proxy.kube.events import EventRecorder
    from proxy.kube.gateway_status import GatewayStatusWriter
    from proxy.kube.leader import LeaderElector, election_timing
    from proxy.kube.policy_status import PolicyStatusWriter
    from proxy.kube.status import StatusWriter
    from proxy.kube.watch import WATCHED_KINDS, run_cluster_source
    from proxy.kube.watch_status import WatchStatus

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
    gateway_writer = GatewayStatusWriter(cache, settings, api_client=client, holder=holder, elector=elector)
    coroutines.append(("gateway status writer", gateway_writer.run()))
    policy_writer = PolicyStatusWriter(cache, settings, api_client=client, holder=holder, elector=elector)
    coroutines.append(("policy status writer", policy_writer.run()))
    warnings = (lambda: controller.warnings) if controller is not None else None
    recorder = EventRecorder(client, settings, cache=cache, elector=elector, warnings=warnings)
    coroutines.append(("event recorder", recorder.run()))
    if metrics is not None:
        metrics.add_cluster(watch=watch, elector=elector, status_writer=writer, events=recorder,
                            gateway_status_writer=gateway_writer, policy_status_writer=policy_writer)
    return ClusterMode(client, coroutines, watch=watch, elector=elector, status_writer=writer, events=recorder,
                       gateway_status_writer=gateway_writer, policy_status_writer=policy_writer)
