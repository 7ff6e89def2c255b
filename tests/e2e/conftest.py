"""Fixtures for end-to-end tests: echo pods, a manifests folder, and the real pyngress process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_harness import EchoPod, ManifestDir, Pyngress, start_pyngress  # noqa: E402


@pytest.fixture
async def echo_pods():
    """`await echo_pods(name, address, port=0)` starts an echo pod; all are stopped after the test."""
    pods: list[EchoPod] = []

    async def start(name: str, address: str, port: int = 0) -> EchoPod:
        pod = await EchoPod(name, address).start(port)
        pods.append(pod)
        return pod

    yield start
    for pod in pods:
        await pod.stop()


@pytest.fixture
def manifests(tmp_path: Path) -> ManifestDir:
    return ManifestDir(tmp_path / "manifests")


@pytest.fixture
async def pyngress(tmp_path: Path):
    """`await pyngress(manifest_path, *flags)` starts the real process; it is stopped (SIGTERM) after the test."""
    started: list[Pyngress] = []

    async def start(manifests: Path, *args: str) -> Pyngress:
        proc = await start_pyngress(manifests, *args, log_path=tmp_path / f"pyngress-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        await proc.close()
