"""Leader election over a Lease in the emulator (PUT with resourceVersion, 409 on conflict)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable

import pytest
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer
from proxy.kube.leader import LeaderElector, micro_time
from proxy.settings import Settings

from .test_watch import eventually

SETTINGS = Settings(pod_namespace="pyngress", election_id="pyngress-leader")
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

Candidate = Callable[..., tuple[LeaderElector, asyncio.Task]]


@pytest.fixture
async def candidate(api_client: ApiClient) -> AsyncIterator[Candidate]:
    tasks: list[asyncio.Task] = []

    def start(identity: str, *, lease_duration: float = 1.0,
              release_on_exit: bool = True) -> tuple[LeaderElector, asyncio.Task]:
        elector = LeaderElector(api_client, SETTINGS, identity=identity, lease_duration=lease_duration,
                                renew_deadline=0.6, retry_period=0.05)
        task = asyncio.create_task(elector.run(release_on_exit=release_on_exit))
        tasks.append(task)
        return elector, task

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def lease(kube_api: KubeApiServer) -> dict:
    return kube_api.get("Lease", "pyngress", "pyngress-leader")


def test_micro_time_always_has_six_fractional_digits() -> None:
    assert micro_time(1700000000.0) == "2023-11-14T22:13:20.000000Z"
    assert micro_time(1700000000.25) == "2023-11-14T22:13:20.250000Z"


async def test_single_candidate_creates_and_renews_the_lease(kube_api: KubeApiServer, candidate: Candidate) -> None:
    changes: list[bool] = []
    elector, _ = candidate("pod-a")
    elector.on_change = changes.append
    async with asyncio.timeout(10):
        await elector.wait_leading()
    assert elector.is_leader and changes == [True]
    first = lease(kube_api)["spec"]
    assert first["holderIdentity"] == "pod-a" and first["leaseDurationSeconds"] == 1
    assert MICRO_TIME.match(first["renewTime"]) and MICRO_TIME.match(first["acquireTime"])
    await eventually(lambda: lease(kube_api)["spec"]["renewTime"] != first["renewTime"], "a renewal")
    renewed = lease(kube_api)["spec"]
    assert renewed["acquireTime"] == first["acquireTime"] and renewed["leaseTransitions"] == 0


async def test_only_one_of_two_candidates_leads(kube_api: KubeApiServer, candidate: Candidate) -> None:
    a, _ = candidate("pod-a", lease_duration=30)
    b, _ = candidate("pod-b", lease_duration=30)
    await eventually(lambda: a.is_leader or b.is_leader, "a leader")
    leader, follower = (a, b) if a.is_leader else (b, a)
    holder_version = None
    # Over many renewal rounds the follower never leads and the holder stays the same.
    for _ in range(20):
        await eventually(lambda: lease(kube_api)["metadata"]["resourceVersion"] != holder_version,  # noqa: B023
                         "a renewal")
        holder_version = lease(kube_api)["metadata"]["resourceVersion"]
        assert leader.is_leader and not follower.is_leader
        assert lease(kube_api)["spec"]["holderIdentity"] == leader.identity


async def test_clean_stop_releases_the_lease_to_the_next_candidate(kube_api: KubeApiServer,
                                                                   candidate: Candidate) -> None:
    # A 30 s lease: the follower can only lead this soon because the leader released it.
    a, task_a = candidate("pod-a", lease_duration=30)
    async with asyncio.timeout(10):
        await a.wait_leading()
    b, _ = candidate("pod-b", lease_duration=30)
    await eventually(lambda: b._observed is not None, "the follower has seen the lease")
    assert not b.is_leader
    task_a.cancel()
    await asyncio.gather(task_a, return_exceptions=True)
    assert not a.is_leader
    async with asyncio.timeout(10):
        await b.wait_leading()
    spec = lease(kube_api)["spec"]
    assert spec["holderIdentity"] == "pod-b" and spec["leaseTransitions"] == 1


async def test_crashed_leader_is_replaced_after_the_lease_runs_out(kube_api: KubeApiServer,
                                                                   candidate: Candidate) -> None:
    a, task_a = candidate("pod-a", release_on_exit=False)
    async with asyncio.timeout(10):
        await a.wait_leading()
    b, _ = candidate("pod-b")
    task_a.cancel()  # no release: the Lease still names pod-a
    await asyncio.gather(task_a, return_exceptions=True)
    assert lease(kube_api)["spec"]["holderIdentity"] == "pod-a"
    async with asyncio.timeout(10):
        await b.wait_leading()
    assert lease(kube_api)["spec"]["holderIdentity"] == "pod-b"
    assert lease(kube_api)["spec"]["leaseTransitions"] == 1


async def test_leader_steps_down_while_the_api_is_unreachable(kube_api: KubeApiServer, candidate: Candidate) -> None:
    changes: list[bool] = []
    a, _ = candidate("pod-a")
    a.on_change = changes.append
    async with asyncio.timeout(10):
        await a.wait_leading()
    await kube_api.stop()
    await eventually(lambda: not a.is_leader, "stepping down after the renew deadline")
    await eventually(lambda: changes == [True, False], "the change callback")
    await kube_api.start()
    async with asyncio.timeout(10):
        await a.wait_leading()
    assert changes == [True, False, True]


async def test_a_conflicting_renewal_loses_the_round(kube_api: KubeApiServer, api_client: ApiClient) -> None:
    a = LeaderElector(api_client, SETTINGS, identity="pod-a", lease_duration=1, renew_deadline=0.6, retry_period=0.05)
    assert await a.try_acquire_or_renew()
    # Someone writes between our read and our write: the API answers 409 and we do not lead this round.
    kube_api.fail_next(1, 409, when=lambda r: r.verb == "update" and r.resource == "leases")
    assert not await a.try_acquire_or_renew()
    assert await a.try_acquire_or_renew()


def test_timing_must_be_ordered(api_client: ApiClient) -> None:
    with pytest.raises(ValueError):
        LeaderElector(api_client, SETTINGS, lease_duration=5, renew_deadline=10, retry_period=2)
