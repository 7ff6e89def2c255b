"""Cluster mode's health as the operator sees it: metrics read at scrape time, one log line per
outage edge, election timing, and Events still posted when leadership comes after the build."""

from __future__ import annotations

import asyncio
import logging

import pytest
from kubernetes_asyncio.client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

from kubeapi import KubeApiServer
from proxy.cli import ELECTION_TTL_ENV, election_ttl
from proxy.kube.events import EventRecorder
from proxy.kube.leader import ELECTION_TTL, LeaderElector, election_timing
from proxy.kube.watch_status import WatchStatus
from proxy.metrics import Metrics
from proxy.runtime import RuntimeHolder
from proxy.settings import Settings

from .objects import endpoint_slice, ingress, ingress_class, service
from .pipeline import start_pipeline
from .test_watch import eventually

KINDS = ("Ingress", "IngressClass", "Service", "EndpointSlice", "Endpoints", "Secret")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


class _Counters:
    def __init__(self, **values: int) -> None:
        self.__dict__.update(values)


class _Leadership:
    is_leader = False


def test_metrics_read_the_live_objects_at_scrape_time() -> None:
    watch = WatchStatus.for_kinds(KINDS)
    elector = _Leadership()
    writer = _Counters(writes_total=0, errors_total=0)
    gateway_writer = _Counters(writes_total=0, errors_total=0)
    policy_writer = _Counters(writes_total=0, errors_total=0)
    recorder = _Counters(posted_total=0, errors_total=0, dropped_total=0)
    metrics = Metrics(holder=RuntimeHolder())
    metrics.add_cluster(watch=watch, elector=elector, status_writer=writer, events=recorder,  # type: ignore[arg-type]
                        gateway_status_writer=gateway_writer,  # type: ignore[arg-type]
                        policy_status_writer=policy_writer)  # type: ignore[arg-type]
    assert sample(metrics, "pyngress_watch_failing", kind="Secret") == 0
    assert sample(metrics, "pyngress_watch_synced", kind="Secret") == 0
    assert sample(metrics, "pyngress_leader") == 0

    watch.record_failure("Secret", "HTTP 403 Forbidden")
    watch.record_failure("Secret", "HTTP 403 Forbidden")
    watch.mark_synced("Ingress")
    watch.kinds["Ingress"].relists_total = 2
    elector.is_leader = True
    writer.writes_total, writer.errors_total = 7, 1
    gateway_writer.writes_total, gateway_writer.errors_total = 4, 2
    policy_writer.writes_total, policy_writer.errors_total = 5, 3
    recorder.posted_total, recorder.errors_total, recorder.dropped_total = 3, 2, 1
    assert sample(metrics, "pyngress_watch_failing", kind="Secret") == 1
    assert sample(metrics, "pyngress_watch_failing", kind="Ingress") == 0
    assert sample(metrics, "pyngress_watch_errors_total", kind="Secret") == 2
    assert sample(metrics, "pyngress_watch_relists_total", kind="Ingress") == 2
    assert sample(metrics, "pyngress_watch_synced", kind="Ingress") == 1
    assert sample(metrics, "pyngress_leader") == 1
    assert sample(metrics, "pyngress_status_writes_total", kind="Ingress") == 7
    assert sample(metrics, "pyngress_status_errors_total", kind="Ingress") == 1
    assert sample(metrics, "pyngress_status_writes_total", kind="Gateway") == 4
    assert sample(metrics, "pyngress_status_errors_total", kind="Gateway") == 2
    assert sample(metrics, "pyngress_status_writes_total", kind="Policy") == 5
    assert sample(metrics, "pyngress_status_errors_total", kind="Policy") == 3
    assert (sample(metrics, "pyngress_events_posted_total"), sample(metrics, "pyngress_events_errors_total"),
            sample(metrics, "pyngress_events_dropped_total")) == (3, 2, 1)

    watch.record_success("Secret")
    assert sample(metrics, "pyngress_watch_failing", kind="Secret") == 0
    assert sample(metrics, "pyngress_watch_errors_total", kind="Secret") == 2  # a counter never goes back


def test_an_outage_logs_once_when_it_starts_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    watch = WatchStatus.for_kinds(KINDS)
    caplog.set_level(logging.DEBUG, logger="pyngress.watch")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    for _ in range(5):
        for kind in KINDS:
            watch.record_failure(kind, "ClientConnectorError: refused")
    assert watch.failing and watch.failing_kinds() == list(KINDS)
    (started,) = warnings()
    assert "failing" in started and "refused" in started and "last good configuration" in started
    for kind in KINDS[:-1]:
        watch.record_success(kind)
    assert len(warnings()) == 1 and watch.failing  # one kind still down: not recovered yet
    watch.record_success(KINDS[-1])
    watch.record_success(KINDS[-1])  # already healthy: nothing more
    assert not watch.failing
    assert len(warnings()) == 2 and "recovered" in warnings()[1]
    watch.record_failure("Ingress", "HTTP 500")
    assert len(warnings()) == 3  # the next outage is news again


def test_election_timing_follows_ingress_nginx() -> None:
    assert ELECTION_TTL == 30.0
    assert election_timing(30) == (30, 15, 7.5)
    assert election_timing(30).retry_period == 7.5
    with pytest.raises(ValueError):
        election_timing(0)
    assert election_ttl({}) == 30.0
    assert election_ttl({ELECTION_TTL_ENV: " 2.5 "}) == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        with pytest.raises(ValueError, match=ELECTION_TTL_ENV):
            election_ttl({ELECTION_TTL_ENV: bad})


async def test_a_replica_that_becomes_leader_later_still_reports_current_warnings(
        kube_api: KubeApiServer, api_client: ApiClient) -> None:
    """A takeover or restart comes after the build: the new leader must post what is wrong now,
    without waiting for the next routing change."""
    kube_api.apply(ingress_class())
    kube_api.create(service("web"))
    kube_api.create(endpoint_slice("web", addresses=["127.0.0.2"]))
    kube_api.create(ingress("broken", host="broken.test", service="missing"))
    settings = Settings(pod_name="pyngress-b", pod_namespace="pyngress")
    pipeline = await start_pipeline(api_client, settings)
    # Someone else holds the Lease for a long time: we are a follower.
    kube_api.create({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                     "metadata": {"name": settings.election_id, "namespace": "pyngress"},
                     "spec": {"holderIdentity": "pyngress-a", "leaseDurationSeconds": 3600,
                              "renewTime": "2030-01-01T00:00:00.000000Z", "acquireTime": "2030-01-01T00:00:00.000000Z",
                              "leaseTransitions": 0}})
    elector = LeaderElector(api_client, settings, lease_duration=30, renew_deadline=20, retry_period=0.05)
    recorder = EventRecorder(api_client, settings, cache=pipeline.cache, elector=elector,
                             warnings=lambda: pipeline.controller.warnings, settle=0.02)
    tasks = [asyncio.create_task(elector.run()), asyncio.create_task(recorder.run())]
    try:
        await eventually(lambda: pipeline.controller.warnings and any(
            r.resource == "leases" and r.verb == "get" for r in kube_api.requests))
        await eventually(lambda: sum(r.resource == "leases" for r in kube_api.requests) >= 3)
        assert kube_api.objects("Event", "default") == [] and recorder.posted_total == 0

        lease = kube_api.get("Lease", "pyngress", settings.election_id)
        lease["spec"]["holderIdentity"] = ""  # released by the old leader
        kube_api.apply(lease)
        await eventually(lambda: elector.is_leader)
        # The API server stores the Event before the recorder has read its answer and counted it:
        # wait for the count, not for the object, or a loaded machine sees the Event with the count at 0.
        await eventually(lambda: recorder.posted_total >= 1, "the recorder to count the Event it posted")
        events = [e for e in kube_api.objects("Event", "default") if e["involvedObject"]["name"] == "broken"]
        assert len(events) == 1 and recorder.posted_total == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pipeline.close()

