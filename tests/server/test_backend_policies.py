"""Cluster policies through the real proxy: TLS to HTTPS pods (verification, SANs, mutual TLS, reuse, failures
as 502 counted by reason) and active health checks taking a pod out and back in.

Clusters carry the policy dataclasses directly (the front ends that fill them are tested on their own).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from backend_pods import NOW, HealthPod, Pki, leaf_with, root_pem, server_context
from proxy.debug import describe_table
from proxy.metrics import Metrics
from proxy.routing.policies import BackendTLS, ClusterPolicy, HealthCheck
from proxy.stats import merge
from server_harness import Rule, cluster, connect, encode_request, read_response, request, wait_until

KEY = "default/web:443"
SERVICE_NAME = "web.default.svc"


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path, name="pods")


@pytest.fixture
async def make_health_pods():
    pods: list[HealthPod] = []

    async def start(*names: str, context=None, first: int = 2) -> list[HealthPod]:
        started = []
        for index, name in enumerate(names):
            pod = await HealthPod(name, f"127.0.0.{first + index}", context=context).start()
            pods.append(pod)
            started.append(pod)
        return started

    yield start
    for pod in pods:
        await pod.stop()


def upstream_tls(proxy) -> dict:
    return proxy.server.traffic.snapshot()["upstream_tls"]


async def test_https_pods_are_proxied_over_one_reused_tls_connection(make_proxy, make_health_pods, pki):
    names: list[str] = []
    [pod] = await make_health_pods("secure", context=server_context(pki.leaf(SERVICE_NAME), names=names))
    proxy = await make_proxy()
    policy = ClusterPolicy(tls=BackendTLS(ca=root_pem(pki)))
    proxy.publish([Rule("", "/", KEY)], [cluster(KEY, [pod.endpoint], policy=policy)])
    before = upstream_tls(proxy)["completed"]
    reader, writer = await connect(proxy.port)
    try:
        for index in range(3):
            writer.write(encode_request(f"/page/{index}", host="shop.example"))
            response = await read_response(reader)
            assert response.status == 200 and response.json()["pod"] == "secure"
            assert response.json()["path"] == f"/page/{index}"
    finally:
        writer.close()
    assert len(pod.peers) == 1  # one upstream connection, kept alive across the requests
    assert names == [SERVICE_NAME]
    assert upstream_tls(proxy)["completed"] == before + 1


@pytest.mark.parametrize("case", ["other_ca", "expired", "wrong_san"])
async def test_a_pod_failing_verification_gets_a_502_logged_and_counted(make_proxy, make_health_pods, pki, tmp_path,
                                                                       caplog, case):
    (tmp_path / "other").mkdir()
    other = Pki(tmp_path / "other", name="not trusted")
    leaf, reason = {
        "other_ca": (other.leaf(SERVICE_NAME), "unknown_ca"),
        "expired": (leaf_with(pki, dns=(SERVICE_NAME,), not_before=NOW - timedelta(days=9),
                              not_after=NOW - timedelta(days=2)), "expired"),
        "wrong_san": (leaf_with(pki, dns=(SERVICE_NAME,), uris=("spiffe://td/ns/default/sa/other",)),
                      "name_mismatch"),
    }[case]
    [pod] = await make_health_pods("bad", context=server_context(leaf))
    proxy = await make_proxy(upstream_retries=1)
    wanted = ("spiffe://td/ns/default/sa/web",) if case == "wrong_san" else ()
    policy = ClusterPolicy(tls=BackendTLS(ca=root_pem(pki), subject_alt_names=wanted))
    proxy.publish([Rule("", "/", KEY)], [cluster(KEY, [pod.endpoint], policy=policy)])
    before = upstream_tls(proxy)["failures"].get(reason, 0)
    with caplog.at_level(logging.WARNING):
        response = await request(proxy.port, "/")
    assert response.status == 502
    assert upstream_tls(proxy)["failures"].get(reason, 0) == before + 1
    assert any(reason in record.getMessage() for record in caplog.records)
    assert pod.requests == 0
    text = Metrics(holder=proxy.holder, server=proxy.server).render().decode()
    assert f'pyngress_upstream_tls_handshake_failures_total{{reason="{reason}"}} {before + 1}.0' in text


def test_worker_snapshots_add_up_their_pod_handshakes():
    one = {"routes": [], "listeners": {}, "upstream_tls": {"completed": 3, "failures": {"expired": 1}}}
    two = {"routes": [], "listeners": {}, "upstream_tls": {"completed": 4, "failures": {"expired": 2, "closed": 1}}}
    old = {"routes": [], "listeners": {}}  # a snapshot from before pod handshakes were counted
    assert merge([one, two, old])["upstream_tls"] == {"completed": 7, "failures": {"expired": 3, "closed": 1}}


async def test_a_failed_handshake_moves_on_to_the_next_endpoint(make_proxy, make_health_pods, pki, tmp_path):
    (tmp_path / "other").mkdir()
    other = Pki(tmp_path / "other", name="not trusted")
    [bad] = await make_health_pods("bad", context=server_context(other.leaf(SERVICE_NAME)), first=2)
    [good] = await make_health_pods("good", context=server_context(pki.leaf(SERVICE_NAME)), first=3)
    proxy = await make_proxy(upstream_retries=2)
    policy = ClusterPolicy(tls=BackendTLS(ca=root_pem(pki)))
    proxy.publish([Rule("", "/", KEY)], [cluster(KEY, [bad.endpoint, good.endpoint], policy=policy)])
    for _ in range(4):  # round robin starts some requests on the bad pod: each is retried on the good one
        response = await request(proxy.port, "/")
        assert response.status == 200 and response.json()["pod"] == "good"
    assert bad.requests == 0


async def test_mutual_tls_with_a_pod_that_requires_a_client_certificate(make_proxy, make_health_pods, pki):
    context = server_context(pki.leaf(SERVICE_NAME), client_ca=root_pem(pki))
    [pod] = await make_health_pods("mtls", context=context)
    client = pki.leaf("pyngress-gateway")
    proxy = await make_proxy(upstream_retries=1)
    with_cert = ClusterPolicy(tls=BackendTLS(ca=root_pem(pki), client_certificate=client.chain_pem,
                                             client_key=client.key_pem))
    proxy.publish([Rule("", "/", KEY)], [cluster(KEY, [pod.endpoint], policy=with_cert)])
    response = await request(proxy.port, "/")
    assert response.status == 200 and pod.client_subjects == ["pyngress-gateway"]

    without = ClusterPolicy(tls=BackendTLS(ca=root_pem(pki)))
    proxy.publish([Rule("", "/", KEY)], [cluster(KEY, [pod.endpoint], policy=without)])
    response = await request(proxy.port, "/")
    assert response.status == 502  # refused in the handshake (TLS 1.2) or at the first request (TLS 1.3)
    assert pod.client_subjects == ["pyngress-gateway"]


async def test_plain_clusters_stay_plain(make_proxy, make_pods):
    [pod] = await make_pods("plain")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", "default/plain:80")], [cluster("default/plain:80", [pod.endpoint])])
    before = upstream_tls(proxy)
    assert (await request(proxy.port, "/")).status == 200
    assert upstream_tls(proxy) == before
    (pool,) = proxy.upstreams["default/plain:80"].pools
    assert pool.tls is None and type(pool).__name__ == "EndpointPool"


# ---------------------------------------------------------------------------------------------- health checks


async def served_by(proxy, count: int) -> list[str]:
    return [(await request(proxy.port, "/")).json()["pod"] for _ in range(count)]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_an_unhealthy_pod_is_skipped_until_it_recovers(make_proxy, make_health_pods, pki, tls):
    context = server_context(pki.leaf(SERVICE_NAME)) if tls else None
    a, b = await make_health_pods("a", "b", context=context)
    proxy = await make_proxy()
    check = HealthCheck(path=b"/healthz", interval=0.03, timeout=1.0, healthy_threshold=2, unhealthy_threshold=2)
    policy = ClusterPolicy(health_check=check, tls=BackendTLS(ca=root_pem(pki)) if tls else None)
    proxy.publish([Rule("", "/", KEY)], [cluster(KEY, [a.endpoint, b.endpoint], policy=policy)])
    proxy.check_health()
    assert sorted(await served_by(proxy, 4)) == ["a", "a", "b", "b"]
    pool_a = proxy.upstreams[KEY].pools[0]

    a.health = 503
    await wait_until(lambda: not pool_a.healthy)
    assert a.health_checks[-2:] == [503, 503]
    assert await served_by(proxy, 6) == ["b"] * 6
    routes = describe_table(proxy.holder.current)
    [entry] = routes["anyHost"]
    assert entry["unhealthy"] == [f"{a.host}:{a.port}"]

    a.health = 200
    await wait_until(lambda: pool_a.healthy)
    assert a.health_checks[-2:] == [200, 200]
    assert sorted(await served_by(proxy, 4)) == ["a", "a", "b", "b"]
    assert describe_table(proxy.holder.current)["anyHost"][0]["unhealthy"] == []
    assert proxy.checker is not None and proxy.checker.results["unexpected_status"] >= 2
