"""The real `pyngress` process in cluster mode, against the Kubernetes API test double over HTTP.

Not ready while a kind's first LIST fails; ready, routing and following endpoint changes once
it succeeds.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import yaml

from e2e_harness import eventually

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the emulator package

from kubeapi import KubeApiServer

HOST = "cluster.example.test"


def kubeconfig(path: Path, url: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}],
    }))
    return path


def objects(pods) -> list[dict]:
    port = pods[0].port
    return [
        {"kind": "IngressClass", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": "pyngress"},
         "spec": {"controller": "pyngress.dev/ingress-controller"}},
        {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}]}},
        slice_for(pods),
        {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"ingressClassName": "pyngress", "rules": [{"host": HOST, "http": {"paths": [
             {"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
    ]


def slice_for(pods) -> dict:
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": "web-abcde", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [p.address], "conditions": {"ready": True}} for p in pods],
            "ports": [{"name": "http", "port": pods[0].port, "protocol": "TCP"}]}


async def test_cluster_mode_waits_for_every_first_list_then_serves(echo_pods, pyngress, tmp_path):
    pods = await echo_pods.replicas(("web-1", "127.0.0.5"), ("web-2", "127.0.0.6"))
    async with KubeApiServer(allow_loopback=True, bookmark_interval=3600) as api:
        for obj in objects(pods):
            api.create(obj)
        # Secrets cannot be listed yet: the cache is not synced, so nothing may be served.
        api.fail_next(10_000, 500, when=lambda r: r.resource == "secrets" and r.verb == "list")
        proc = await pyngress(None, "--kubeconfig", str(kubeconfig(tmp_path / "kubeconfig", api.url)),
                              "--publish-status-address", "192.0.2.10", admin_only=True)

        assert await proc.admin_get("/healthz") == (200, "ok")
        await eventually(lambda: any(r.resource == "secrets" and r.verb == "list" for r in api.requests))
        status, body = await proc.admin_get("/readyz")
        assert status == 503 and "no configuration" in body

        api.clear_failures()
        await proc.read_ports()  # the listeners start once the first table is built
        assert await proc.admin_get("/readyz") == (200, "ok")
        status, body = await proc.request("/", host=HOST)
        assert status == 200 and body["pod"] in ("web-1", "web-2")

        # a scaled-down Deployment: one endpoint left, routes untouched
        api.apply(slice_for(pods[1:]))

        async def only_web_2() -> bool:
            answers = [await proc.request("/", host=HOST) for _ in range(3)]
            return all(status == 200 and body["pod"] == "web-2" for status, body in answers)

        await eventually(only_web_2)
        assert await proc.generation() == 1

        # the elected replica (the only one) writes the published address into the Ingress status
        def load_balancer() -> list:
            return ((api.get("Ingress", "shop", "web").get("status") or {}).get("loadBalancer") or {}).get("ingress")

        await eventually(lambda: load_balancer() == [{"ip": "192.0.2.10"}])

        proc.signal(signal.SIGTERM)
        assert await proc.wait() == 0
        lease = api.get("Lease", "default", "pyngress-leader")
        assert not lease["spec"].get("holderIdentity")  # released on the way out
