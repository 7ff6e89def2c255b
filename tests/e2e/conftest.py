"""Fixtures for end-to-end tests: echo pods, a manifests folder, and the real pyngress process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_harness import ManifestDir, Pods, Pyngress, start_pyngress  # noqa: E402


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

    async def start(manifests: Path | None, *args: str, admin_only: bool = False) -> Pyngress:
        proc = await start_pyngress(manifests, *args, log_path=tmp_path / f"pyngress-{len(started)}.log",
                                    admin_only=admin_only)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        await proc.close()
