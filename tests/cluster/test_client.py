"""Building the process's API client: kubeconfig (path, $KUBECONFIG, context) and in-cluster service account."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio.client import NetworkingV1Api

from kubeapi import KubeApiServer
from kubeapi.certs import make_server_certificate
from proxy.kube.client import ClusterConfigError, create_api_client
from proxy.settings import Settings


def write_kubeconfig(path: Path, servers: dict[str, str], *, current: str, token: str = "kubeconfig-token") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": name, "cluster": {"server": url}} for name, url in servers.items()],
        "users": [{"name": "me", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "me"}} for name in servers],
    }))
    return path


async def ingress_class_names(settings: Settings, **kwargs: object) -> list[str]:
    client = await create_api_client(settings, **kwargs)  # type: ignore[arg-type]
    try:
        classes = await NetworkingV1Api(client).list_ingress_class()
        return [c.metadata.name for c in classes.items]
    finally:
        await client.close()


def ingress_class(name: str) -> dict:
    return {"kind": "IngressClass", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": name},
            "spec": {"controller": "pyngress.dev/ingress-controller"}}


async def test_kubeconfig_flag_and_context(kube_api: KubeApiServer, tmp_path: Path) -> None:
    kube_api.create(ingress_class("from-emulator"))
    kube_api.token = "kubeconfig-token"
    path = write_kubeconfig(tmp_path / "config", {"dead": "http://127.0.0.1:9", "emulator": kube_api.url},
                            current="dead")
    names = await ingress_class_names(Settings(kubeconfig=str(path), kube_context="emulator"), environ={})
    assert names == ["from-emulator"]
    assert kube_api.authorizations == ["Bearer kubeconfig-token"]


async def test_kubeconfig_from_environment_path_list(kube_api: KubeApiServer, tmp_path: Path) -> None:
    kube_api.create(ingress_class("x"))
    path = write_kubeconfig(tmp_path / "config", {"emulator": kube_api.url}, current="emulator")
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{path}", "HOME": str(tmp_path)}
    assert await ingress_class_names(Settings(), environ=environ) == ["x"]


async def test_explicit_kubeconfig_wins_over_in_cluster(kube_api: KubeApiServer, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"emulator": kube_api.url}, current="emulator")
    environ = {"KUBERNETES_SERVICE_HOST": "192.0.2.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert await ingress_class_names(Settings(kubeconfig=str(path)), environ=environ) == []


async def test_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="no kubeconfig"):
        await create_api_client(Settings(kubeconfig=str(tmp_path / "nope")), environ={})


async def test_unknown_context_is_a_clear_error(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"a": "http://127.0.0.1:9"}, current="a")
    with pytest.raises(ClusterConfigError, match="missing"):
        await create_api_client(Settings(kubeconfig=str(path), kube_context="missing"), environ={})


async def test_in_cluster_uses_service_account_over_tls(tmp_path: Path) -> None:
    certificate = make_server_certificate()
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "ca.crt").write_bytes(certificate.ca_pem)
    server = KubeApiServer(token="pod-token", ssl_context=certificate.server_context(tmp_path))
    async with server:
        server.create(ingress_class("in-cluster"))
        environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)}
        names = await ingress_class_names(Settings(), environ=environ, service_account_dir=str(account))
    assert names == ["in-cluster"]
    assert server.authorizations == ["Bearer pod-token"]


async def test_in_cluster_without_token_file_is_a_clear_error(tmp_path: Path) -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(ClusterConfigError, match="token"):
        await create_api_client(Settings(), environ=environ, service_account_dir=str(tmp_path))
