"""`pyngress migrate --kubeconfig`: the report read from a live API server (the emulator, spoken to by the real
kubernetes-asyncio client), list and get only."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from e2e_harness import DEADLINE, kubeconfig

NGINX = "nginx.ingress.kubernetes.io/"


def ingress(name: str, namespace: str, annotations: dict[str, str]) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": f"{name}.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}}


async def migrate(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "proxy", "migrate", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_report_from_a_cluster(kube_api, tmp_path: Path):
    kube_api.create(ingress("shop", "web", {NGINX + "limit-rps": "10", NGINX + "ssl-redirect": "false"}))
    kube_api.create(ingress("blog", "news", {NGINX + "use-regex": "true"}))
    kube_api.create({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
                     "data": {"keep-alive": "75"}})
    config = str(kubeconfig(tmp_path / "kubeconfig", kube_api.url))

    status, out, err = await migrate("--kubeconfig", config, "--configmap", "ingress-nginx/ingress-nginx-controller",
                                     "--output", "json")
    assert status == 1, err
    body = json.loads(out)
    assert [(i["namespace"], i["name"]) for i in body["ingresses"]] == [("news", "blog"), ("web", "shop")]
    fates = {a["key"]: a["fate"] for i in body["ingresses"] for a in i["annotations"]}
    assert fates[NGINX + "ssl-redirect"] == "supported"
    assert fates[NGINX + "use-regex"] == "supported with a difference"
    assert body["configmap"]["keys"] == [{"key": "keep-alive", "value": "75", "fate": "supported", "note": ""}]

    status, out, _ = await migrate("--kubeconfig", config, "--namespace", "news", "--configmap", "ingress-nginx/gone")
    assert "Ingress news/blog" in out and "web/shop" not in out
    assert "ConfigMap ingress-nginx/gone: not found" in out


async def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path: Path):
    config = str(kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9"))  # discard port: refused
    status, out, err = await migrate("--kubeconfig", config)
    assert status == 2 and out == ""
    assert err.startswith("pyngress migrate: cannot read from the cluster") and len(err.splitlines()) == 1
