"""The harness's reader of a child's stdout: every byte into the child's log, the lines that are not access log
lines (ports, messages) queued in order, whether they come alone or among thousands of access log lines."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: the bench package

from bench.processes import ProcessGroup

pytestmark = pytest.mark.timeout(60)

# The child: a message, a burst of access log lines written in one go with messages among them (one in the middle of
# the burst, one at its end), and a last line without a newline.
CHILD = r"""
import os
os.write(1, b"first message\n")
log = b"".join(b'{"time":"t","n":%d}\n' % n for n in range(5000))
os.write(1, log + b"between\n" + log + b"after the burst\n" + log[:40])
os.write(1, log[40:] + b"last, no newline")
"""


def test_the_pump_queues_the_lines_that_are_not_log_lines_and_logs_every_byte() -> None:
    with tempfile.TemporaryDirectory() as workdir, ProcessGroup(workdir) as group:
        process = group.start("child", [sys.executable, "-c", CHILD])
        assert process.popen.wait(timeout=30) == 0
        seen = [process.stdout_lines.get(timeout=10) for _ in range(4)]
        assert seen == ["first message\n", "between\n", "after the burst\n", "last, no newline"]
        assert process.stdout_lines.empty()
        log = Path(process.log_path).read_bytes()
    lines = log.split(b"\n")
    assert sum(1 for line in lines if line.startswith(b"{")) == 15000
    assert lines[-1] == b"last, no newline"


# The child: a ready line, then (once the test has turned queueing off and made the file `go`) more lines.
LATER = r"""
import os, sys, time
os.write(1, b"ready\n")
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]):
    assert time.monotonic() < deadline
    time.sleep(0.01)
os.write(1, b"later\n" + b'{"time":"t"}\n' * 1000)
"""


def test_once_queueing_is_off_stdout_only_goes_to_the_log() -> None:
    with tempfile.TemporaryDirectory() as workdir, ProcessGroup(workdir) as group:
        go = Path(workdir) / "go"
        process = group.start("child", [sys.executable, "-c", LATER, str(go)])
        assert process.wait_line(re.compile("ready"), timeout=30)
        process.queue_lines = False
        go.touch()
        assert process.popen.wait(timeout=30) == 0
        deadline = time.monotonic() + 10  # the pump's last copy into the log
        while b"later\n" + b'{"time":"t"}\n' * 1000 not in Path(process.log_path).read_bytes():
            assert time.monotonic() < deadline, "the log lacks what came after queueing was turned off"
            time.sleep(0.01)
        assert process.stdout_lines.empty()
