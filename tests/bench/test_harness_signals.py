"""A harness stopped by a signal stops what it started: `python -m bench` killed by a timeout wrapper (SIGTERM) or
told to stop (SIGINT, even when started in the background, where SIGINT is inherited ignored) leaves no nginx,
pyngress or wrk behind. The children run in sessions of their own, so only the harness can stop them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: the bench package

from bench.processes import Interrupted, ProcessGroup, children, which

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _identity(pid: int) -> tuple[str, str] | None:
    """(name, start time) of a live process; None when it is gone or a zombie (exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            text = stat.read()
    except OSError:
        return None
    name = text[text.find("(") + 1 : text.rfind(")")]
    fields = text[text.rfind(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else (name, fields[19])


def _descendants(pid: int) -> dict[int, tuple[str, str]]:
    found: dict[int, tuple[str, str]] = {}
    todo = children(pid)
    while todo:
        child = todo.pop()
        identity = _identity(child)
        if identity is not None:
            found[child] = identity
            todo += children(child)
    return found


def _poll(condition: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def test_a_group_takes_the_stop_signals_while_open_and_gives_them_back(tmp_path: Path) -> None:
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    with ProcessGroup(str(tmp_path)) as group:
        sleeper = group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
        with pytest.raises(Interrupted) as stopped:
            signal.raise_signal(signal.SIGTERM)
        assert stopped.value.signum == signal.SIGTERM
        with ProcessGroup(str(tmp_path)):  # a nested group shares the handler
            pass
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert sleeper.popen.poll() is not None  # stopped by close()
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before


@pytest.mark.skipif(which("wrk") is None or which("nginx") is None, reason="needs wrk and nginx")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_harness_stopped_by_a_signal_leaves_no_process_behind(tmp_path: Path, signum: int) -> None:
    output = tmp_path / "harness.out"
    with open(output, "w", encoding="utf-8") as out:
        harness = subprocess.Popen(
            [sys.executable, "-m", "bench", "--scenarios", "small", "--rounds", "1", "--duration", "60",
             "--connections", "4", "--json", str(tmp_path / "result.json")],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    started: dict[int, tuple[str, str]] = {}
    try:
        # Backend and reference nginx, pyngress, then wrk's first run: everything the scenario starts is up.
        def loaded() -> bool:
            started.update(_descendants(harness.pid))
            return any(name == "wrk" for name, _ in started.values()) or harness.poll() is not None

        assert _poll(loaded, timeout=90), output.read_text()
        assert harness.poll() is None, output.read_text()
        names = sorted({name for name, _ in started.values()})
        assert "nginx" in names and "wrk" in names and any(name.startswith("python") for name in names), names

        harness.send_signal(signum)
        harness.wait(timeout=60)
        survivors = lambda: {pid: who for pid, who in started.items() if _identity(pid) == who}  # noqa: E731
        assert _poll(lambda: not survivors(), timeout=30), (survivors(), output.read_text())
        assert "stopping every process started" in output.read_text()
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(timeout=10)
        for pid, who in started.items():  # (only after a failure: what the harness left, by pid)
            if _identity(pid) == who:
                os.kill(pid, signal.SIGKILL)
