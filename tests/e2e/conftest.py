"""Fixtures for end-to-end tests: echo pods, a manifests folder, and the real pyngress process."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the API emulator package

from e2e_harness import START_TIMEOUT, ClusterProcesses, ManifestDir, Pods, Pyngress, start_pyngress
from kubeapi import KubeApiServer


@pytest.fixture
async def echo_pods():
    """`await echo_pods.start(name, address)`, `await echo_pods.replicas((name, address), ...)`."""
    pods = Pods()
    yield pods
    await pods.stop_all()


@pytest.fixture
def manifests(tmp_path: Path) -> ManifestDir:
    return ManifestDir(tmp_path / "manifests")


@pytest.fixture
async def pyngress(tmp_path: Path):
    """`await pyngress(manifest_path, *flags)` starts the real process; it is stopped (SIGTERM) after the test."""
    started: list[Pyngress] = []

    async def start(manifests: Path | None, *args: str, admin_only: bool = False,
                    timeout: float = START_TIMEOUT) -> Pyngress:
        proc = await start_pyngress(manifests, *args, log_path=tmp_path / f"pyngress-{len(started)}.log",
                                    admin_only=admin_only, timeout=timeout)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        await proc.close()


@pytest.fixture
async def kube_api() -> AsyncIterator[KubeApiServer]:
    """The API emulator; echo pods live on 127.0.0.x, so loopback endpoints are allowed explicitly
    (a real API server rejects them)."""
    async with KubeApiServer(allow_loopback=True, bookmark_interval=3600) as server:
        yield server


@pytest.fixture
async def cluster(kube_api: KubeApiServer, tmp_path: Path) -> AsyncIterator[ClusterProcesses]:
    """Real pyngress processes in cluster mode against `kube_api`, stopped after the test."""
    processes = ClusterProcesses(kube_api.url, tmp_path)
    yield processes
    await processes.close()
