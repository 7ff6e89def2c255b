"""Two replicas of the real process: both serve, exactly one leads (holds the Lease, writes
Ingress status); when the leader is killed without a chance to release, the other takes over
within the lease duration and keeps status current."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from e2e_harness import INGRESS_CLASS, eventually, ingress, scrape, service

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the emulator package

from kubeapi import KubeApiServer

HOST = "ha.example.test"
TTL = 2.0  # seconds; the default (30 s) would make this test slow
ADDRESS = "192.0.2.10"


def load_balancer(api: KubeApiServer, name: str) -> list | None:
    return ((api.get("Ingress", "default", name).get("status") or {}).get("loadBalancer") or {}).get("ingress")


def holder(api: KubeApiServer) -> str:
    try:
        return api.get("Lease", "pyngress", "pyngress-leader")["spec"].get("holderIdentity") or ""
    except Exception:  # noqa: BLE001  not created yet
        return ""


async def test_one_leader_writes_status_and_a_survivor_takes_over(kube_api, cluster, echo_pods) -> None:
    api = kube_api
    pod = await echo_pods.start("web-1", "127.0.0.51")
    api.create(INGRESS_CLASS)
    for obj in service("web", pods=[pod]):
        api.create(obj)
    api.create(ingress("web", host=HOST, paths=[("/", "Prefix", "web", 80)]))
    flags = ("--publish-status-address", ADDRESS)
    env = {"PYNGRESS_ELECTION_TTL": str(TTL), "POD_NAMESPACE": "pyngress"}
    replicas = {name: await cluster.start(*flags, env={**env, "POD_NAME": name}) for name in ("replica-a", "replica-b")}
    for proc in replicas.values():
        status, body = await proc.request("/", host=HOST)
        assert status == 200 and body["pod"] == "web-1"  # every replica serves, leader or not

    leader_name = await eventually(lambda: holder(api))
    assert leader_name in replicas
    await eventually(lambda: load_balancer(api, "web") == [{"ip": ADDRESS}])
    leader = replicas[leader_name]
    (follower_name,) = set(replicas) - {leader_name}
    follower = replicas[follower_name]

    async def leader_gauges() -> tuple[float | None, float | None]:
        return await scrape(leader, "pyngress_leader"), await scrape(follower, "pyngress_leader")

    await eventually(lambda: _equals(leader_gauges(), (1, 0)))
    assert await scrape(leader, "pyngress_status_writes_total") >= 1
    assert await scrape(follower, "pyngress_status_writes_total") == 0
    # A few renewals later the follower has still not written anything: one writer only.
    renewed = api.get("Lease", "pyngress", "pyngress-leader")["spec"]["renewTime"]
    await eventually(lambda: api.get("Lease", "pyngress", "pyngress-leader")["spec"]["renewTime"] != renewed)
    assert holder(api) == leader_name
    assert await scrape(follower, "pyngress_status_writes_total") == 0
    patchers = {r.verb for r in api.requests if r.resource == "ingresses/status"}
    assert patchers == {"patch"}

    # The leader dies without releasing the Lease; the follower takes over once it has run out.
    killed_at = time.monotonic()
    leader.signal(signal.SIGKILL)
    assert await leader.wait() == -signal.SIGKILL
    await eventually(lambda: holder(api) == follower_name, timeout=TTL * 5 + 10)
    took_over = time.monotonic() - killed_at
    # Not before the lease ran out: the last renewal was at most one retry period (TTL/4) before the kill.
    assert took_over >= TTL - TTL / 4 - 0.2, took_over
    await eventually(lambda: _equals(scrape(follower, "pyngress_leader"), 1))
    assert api.get("Lease", "pyngress", "pyngress-leader")["spec"]["leaseTransitions"] >= 1

    # The new leader keeps status current: a new Ingress gets the address.
    api.create(ingress("late", host="late.example.test", paths=[("/", "Prefix", "web", 80)]))
    await eventually(lambda: load_balancer(api, "late") == [{"ip": ADDRESS}])
    assert await scrape(follower, "pyngress_status_writes_total") >= 1


async def _equals(value, expected) -> bool:
    return await value == expected
