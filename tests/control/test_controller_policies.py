"""The controller's part in cluster policies: TLS contexts prepared with the build, health probers started and
stopped with the clusters, endpoint moves keeping the policy, and what /metrics and /debug/routes say.

Real cache, real build, real HTTPS servers. The front end that fills `Cluster.policy` is written apart: a
Builder subclass stands in for it here, adding one policy to the clusters of the Service "web".
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from proxy.controller import Controller
from proxy.debug import describe_table
from proxy.kube.cache import KINDS, ObjectCache
from proxy.metrics import Metrics
from proxy.routing.incremental import Builder
from proxy.routing.model import Config, Endpoint
from proxy.routing.policies import BackendTLS, ClusterPolicy, HealthCheck
from proxy.runtime import RuntimeHolder
from proxy.settings import Settings
from proxy.upstream.pool import TlsEndpointPool

if "backend_servers" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "backend_servers", Path(__file__).resolve().parents[1] / "upstream" / "backend_servers.py")
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["backend_servers"] = _module
    _spec.loader.exec_module(_module)
backend_servers = sys.modules["backend_servers"]

DEADLINE = 10.0
KEY = "default/web:80"


class PolicyBuilder(Builder):
    """The real build, then `policy` on the clusters of the Service "web" (as a policy front end would)."""

    def __init__(self, policy: ClusterPolicy) -> None:
        super().__init__()
        self.policy = policy

    def build(self, snapshot, settings) -> Config:
        config = super().build(snapshot, settings)
        clusters = {key: dataclasses.replace(c, policy=self.policy) if c.service == "web" else c
                    for key, c in config.clusters.items()}
        return dataclasses.replace(config, clusters=clusters)


def service(name: str, port: int) -> dict:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "https", "port": 80, "targetPort": port}]}}


def endpoint_slice(name: str, port: int, *ips: str) -> dict:
    return {"metadata": {"name": f"{name}-x", "namespace": "default", "resourceVersion": str(len(ips)),
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


def ingress(name: str, service_name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "pyngress", "rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service_name, "port": {"number": 80}}}}]}}]}}


async def eventually(predicate, *, timeout: float = DEADLINE):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
async def servers(tmp_path):
    """Two HTTPS pods on the same port number at 127.0.0.2 and 127.0.0.3 (one EndpointSlice port)."""
    pki = backend_servers.Pki(tmp_path, name="pods")
    context = backend_servers.server_context(pki.leaf("web.default.svc"))
    first = await backend_servers.HttpServer("127.0.0.2", context=context).start()
    second = backend_servers.HttpServer("127.0.0.3", context=context, port=first.port)
    second.server = await asyncio.start_server(second._serve, second.host, first.port, ssl=context)
    yield pki, first, second
    await first.stop()
    await second.stop()


async def test_policies_follow_the_clusters(servers):
    pki, first, second = servers
    port = first.port
    check = HealthCheck(path=b"/healthz", interval=0.03, timeout=1.0, healthy_threshold=1, unhealthy_threshold=2)
    policy = ClusterPolicy(tls=BackendTLS(ca=backend_servers.root_pem(pki)), health_check=check)
    cache = ObjectCache()
    cache.replace("Service", [service("web", port)])
    cache.replace("EndpointSlice", [endpoint_slice("web", port, "127.0.0.2")])
    cache.replace("Ingress", [ingress("web", "web")])
    holder = RuntimeHolder()
    controller = Controller(cache=cache, settings=Settings(debounce=0.01, debounce_max=0.05), holder=holder)
    controller._builder = PolicyBuilder(policy)
    task = asyncio.create_task(controller.run())
    try:
        for kind in KINDS:
            cache.mark_synced(kind)
        await holder.wait_for(1, timeout=DEADLINE)
        upstream = controller.upstreams[KEY]
        (pool,) = upstream.pools
        assert isinstance(pool, TlsEndpointPool) and upstream.tls is not None
        assert len(controller.tls_contexts) == 1  # built with the configuration, before the upstream needed it
        assert upstream.tls.context is not None
        assert controller.checker is not None and set(controller.checker.probers) == {KEY}
        await eventually(lambda: len(first.requests) >= 2)
        assert first.requests[0].startswith(b"GET /healthz HTTP/1.1") and first.alpn[0] == "http/1.1"

        first.status = 503
        await eventually(lambda: not pool.healthy)
        metrics = Metrics(holder=holder, controller=controller).render().decode()
        assert 'pyngress_unhealthy_endpoints{namespace="default",port="80",service="web"} 1.0' in metrics
        assert 'pyngress_health_checked_endpoints{namespace="default",port="80",service="web"} 1.0' in metrics
        assert 'pyngress_health_checks_total{result="unexpected_status"}' in metrics
        entry = describe_table(holder.current)["hosts"]["web.example.com"][0]
        assert entry["unhealthy"] == [f"127.0.0.2:{port}"]
        assert entry["tls"] == {"sni": "web.default.svc", "verify": True, "subjectAltNames": [],
                                "clientCertificate": False}

        # Pods move: only the endpoints change (no rebuild), and the cluster keeps its policy.
        cache.apply("EndpointSlice", "MODIFIED", endpoint_slice("web", port, "127.0.0.2", "127.0.0.3"))
        await eventually(lambda: len(upstream.pools) == 2)
        assert holder.generation == 1 and upstream.cluster.policy == policy
        assert upstream.pools[0] is pool and isinstance(upstream.pools[1], TlsEndpointPool)
        await eventually(lambda: len(second.requests) >= 1)  # the new pod is probed (over TLS) too
        assert upstream.pick() is upstream.pools[1]  # and the unhealthy one is still skipped

        first.status = 200
        await eventually(lambda: pool.healthy)

        first.status = 503
        await eventually(lambda: not pool.healthy)
        # The Ingress goes: its cluster, its prober and its verdicts go with it.
        cache.replace("Ingress", [])
        await holder.wait_for(2, timeout=DEADLINE)
        assert not controller.checker.probers and not controller.health.unhealthy
        assert KEY not in controller.upstreams and len(controller.tls_contexts) == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        controller.close()


async def test_a_worker_controller_applies_verdicts_but_never_probes():
    cache = ObjectCache()
    cache.replace("Service", [service("web", 8443)])
    cache.replace("EndpointSlice", [endpoint_slice("web", 8443, "127.0.0.2", "127.0.0.3")])
    cache.replace("Ingress", [ingress("web", "web")])
    holder = RuntimeHolder()
    controller = Controller(cache=cache, settings=Settings(debounce=0.01, debounce_max=0.05), holder=holder,
                            probe=False)
    # A verdict that comes before the cluster exists (a worker hears the relay before it builds).
    controller.health.apply(KEY, {Endpoint("127.0.0.2", 8443): False})
    task = asyncio.create_task(controller.run())
    try:
        for kind in KINDS:
            cache.mark_synced(kind)
        await holder.wait_for(1, timeout=DEADLINE)
        assert controller.checker is None
        upstream = controller.upstreams[KEY]
        assert [pool.healthy for pool in upstream.pools] == [False, True]
        assert {upstream.pick() for _ in range(4)} == {upstream.pools[1]}
        controller.health.apply(KEY, {Endpoint("127.0.0.2", 8443): True})
        assert {upstream.pick() for _ in range(4)} == set(upstream.pools)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        controller.close()
