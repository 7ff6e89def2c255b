"""Child processes of the benchmark: start, wait until ready, read RSS and CPU, always stop.

Every process the harness starts goes through one ProcessGroup, whose `close()` (run from a
`finally`, so also on Ctrl-C or an error) stops them in reverse order: SIGTERM, a bounded wait,
then SIGKILL. Nothing is ever stopped by name. The children run in sessions of their own (a
terminal's Ctrl-C or a `timeout` wrapper's signal does not reach them), so while a group is open
SIGTERM, SIGINT and SIGHUP to the harness raise `Interrupted` (a KeyboardInterrupt) and the same
`finally` stops them: a harness killed by a timeout leaves no nginx or pyngress behind.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Self

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PYNGRESS_READY = re.compile(r"pyngress listening http=(?P<host>[^:\s]+):(?P<http>\d+)\b.*admin=[^:\s]+:(?P<admin>\d+)")


class StartError(RuntimeError):
    """A child process exited or did not become ready in time; the message carries its log tail."""


def read_status_kib(pid: int, field_name: str = "VmRSS") -> int | None:
    """A memory figure from /proc/PID/status in KiB (VmRSS, VmHWM...); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def side_thread_seconds(pid: int) -> float | None:
    """CPU time so far of a process's threads other than its main one (pyngress: the span exporter, the access
    log's writer; those alive now: an ended thread is no longer listed), from each thread's schedstat (nanoseconds,
    not clock ticks); None when the process is gone."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        if task == str(pid):
            continue
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stat:
                total += int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended between the listing and the read
    return total / 1e9


def children(pid: int) -> list[int]:
    """Direct children (nginx workers of a master)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as listing:
                found += [int(p) for p in listing.read().split()]
        return found
    except OSError:
        pass
    for entry in os.listdir("/proc"):  # kernels without CONFIG_PROC_CHILDREN
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    text = stat.read()
            except OSError:
                continue
            if int(text[text.rfind(")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


def open_files_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of another process (from /proc/PID/limits)."""
    try:
        with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
            for line in limits:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        return None
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (for nginx, which cannot report an ephemeral port)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, *, timeout: float, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if process is not None and process.popen.poll() is not None:
                raise StartError(f"{process.name} exited with {process.popen.returncode}:\n"
                                 f"{process.log_tail()}") from None
            if time.monotonic() > deadline:
                raise StartError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


@dataclass
class Process:
    """A started child: its Popen, the file its stderr (and unread stdout) goes to, and its name."""

    name: str
    popen: subprocess.Popen[str]
    log_path: str
    stdout_lines: queue.Queue[str] = field(default_factory=queue.Queue)
    # False: stdout only goes to the log file (see _pump)
    queue_lines: bool = True
    # pids whose memory counts as this process's (nginx: the workers); default: the process itself.
    measured: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_kib(self) -> int | None:
        values = [read_status_kib(pid) for pid in (self.measured or [self.pid])]
        return sum(v for v in values if v is not None) if any(v is not None for v in values) else None

    def cpu_seconds(self) -> float | None:
        values = [cpu_seconds(pid) for pid in (self.measured or [self.pid])]
        return sum(v for v in values if v is not None) if any(v is not None for v in values) else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except OSError:
            return ""

    def wait_line(self, pattern: re.Pattern[str], *, timeout: float) -> re.Match[str]:
        """The first stdout line matching `pattern`; raises StartError on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StartError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")
            try:
                line = self.stdout_lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.popen.poll() is not None and self.stdout_lines.empty():
                    raise StartError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}") from None
                continue
            match = pattern.search(line)
            if match:
                return match

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM, wait, SIGKILL: this process only, by its pid."""
        if self.popen.poll() is not None:
            return
        try:
            self.popen.send_signal(signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)
        except ProcessLookupError:
            pass


def _pump(stream: IO[str], process: Process, log: IO[str]) -> None:
    """The child's stdout into its log file, the lines that are not access log lines queued (ports, messages) until
    ``process.queue_lines`` is turned off (start_pyngress: once it is ready), then copied to the log only.

    Read in raw chunks, appended to the log as they came (O_APPEND, as the child's stderr): a loop per line in Python
    (text decoding, a write and a flush each) cost the harness a good part of a core at the access log's 24k lines a
    second, on the 2 cores that the proxy, wrk and the backend share, and charged it to the proxy's "both on" row.
    Even split into lines and checked for a "{" (or counted with bytes.count: slower, ~1 ns a byte) a line cost the
    reader ~1.2 µs of CPU; copied only, as a container runtime's reader copies a pipe into a file, ~0.5 µs
    (`python -m bench.logcost`'s "pump" column)."""
    fd, log_fd = stream.fileno(), log.fileno()
    lines = process.stdout_lines
    rest = b""
    while chunk := os.read(fd, 1 << 20):
        os.write(log_fd, chunk)
        if not process.queue_lines:
            continue
        if b"\n" not in chunk:
            rest += chunk
            continue
        *complete, tail = (rest + chunk).split(b"\n")
        rest = tail
        for line in complete:
            if not line.startswith(b"{"):  # an access log line: kept in the log file only, not queued
                lines.put(line.decode("utf-8", "replace") + "\n")
    if rest and not rest.startswith(b"{") and process.queue_lines:
        lines.put(rest.decode("utf-8", "replace"))


class Interrupted(KeyboardInterrupt):
    """SIGTERM, SIGINT or SIGHUP reached the harness while it had children: unwinds like Ctrl-C, through the
    `finally` that closes the ProcessGroup."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


# The signals that stop a run, and the handlers they had before the first open group took them over.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Signals:
    """The stop signals' handler, shared by the open ProcessGroups (installed with the first, restored with the
    last). A signal arriving while a group starts a child (between its fork and its registration) or stops them
    is held until that is done, so no child is ever left unregistered or half stopped."""

    def __init__(self) -> None:
        self.groups = 0
        self.previous: dict[int, Any] = {}
        self.held = 0  # depth of start/close sections running
        self.pending: int | None = None

    def acquire(self) -> bool:
        """A group opens: True if it counts (the handler is installed or already was)."""
        if self.groups == 0:
            if threading.current_thread() is not threading.main_thread():
                return False  # (handlers are set from the main thread only: this group's owner handles signals)
            for signum in _STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        self.groups += 1
        return True

    def release(self) -> None:
        """A group that counted closes; the last one puts the previous handlers back."""
        self.groups -= 1
        if self.groups == 0:
            for signum, handler in self.previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            self.previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.held:
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    def hold(self) -> None:
        self.held += 1

    def resume(self) -> None:
        """End of a held section: a signal that came during it is raised now (once the outermost one ends)."""
        self.held -= 1
        if not self.held and self.pending is not None:
            signum, self.pending = self.pending, None
            if self.groups:
                raise Interrupted(signum)
            signal.raise_signal(signum)  # the last group is closed: the handler the process had takes it


_SIGNALS = _Signals()


class ProcessGroup:
    """Owns every child the run starts; `close()` stops them all, newest first (also when the harness is told to
    stop by a signal: see Interrupted)."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.processes: list[Process] = []
        self._counted = _SIGNALS.acquire()

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
              cwd: str | None = None) -> Process:
        log_path = os.path.join(self.workdir, f"{name}.log")
        log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115  (the pump thread writes it while the child lives)
        _SIGNALS.hold()  # a stop signal now would lose the child between its fork and its registration
        try:
            popen = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                     text=True, env=env, cwd=cwd, start_new_session=True)
            process = Process(name=name, popen=popen, log_path=log_path)
            self.processes.append(process)
        finally:
            _SIGNALS.resume()
        assert popen.stdout is not None
        threading.Thread(target=_pump, args=(popen.stdout, process, log), daemon=True,
                         name=f"stdout-{name}").start()
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self.processes:
            self.processes.remove(process)

    def close(self) -> None:
        _SIGNALS.hold()  # a second signal does not cut the stopping short: it is raised once all are stopped
        try:
            while self.processes:
                process = self.processes.pop()
                try:
                    process.stop()
                except Exception as error:  # noqa: BLE001  (keep stopping the others)
                    print(f"bench: could not stop {process.name} (pid {process.pid}): {error}", file=sys.stderr)
            if self._counted:
                self._counted = False
                _SIGNALS.release()
        finally:
            _SIGNALS.resume()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PyngressAddress:
    host: str
    http_port: int
    admin_port: int


def start_pyngress(group: ProcessGroup, *, manifests: str, name: str = "pyngress", extra: Sequence[str] = (),
                   timeout: float = 120.0, tree: str | None = None,
                   environ: dict[str, str] | None = None) -> tuple[Process, PyngressAddress, float]:
    """`python -m proxy` on a manifest folder, ephemeral ports; returns the process, its ports and start-up time.

    `tree`: run the `proxy` package of another source tree (a baseline checkout) instead of this one.
    `environ`: variables to set for it (an empty value removes one, e.g. PYNGRESS_NO_EXTENSIONS).
    """
    argv = [sys.executable, "-m", "proxy", "--manifests", manifests, "--http-port", "0", "--https-port", "0",
            "--admin-port", "0", "--bind", "127.0.0.1", "--no-access-log", *extra]
    env = dict(os.environ)
    repo = tree or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for key, value in (environ or {}).items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    started = time.monotonic()
    process = group.start(name, argv, env=env, cwd=repo)
    match = process.wait_line(_PYNGRESS_READY, timeout=timeout)
    process.queue_lines = False  # from now on its stdout is the access log: copied to the log file, not split
    elapsed = time.monotonic() - started
    # With --workers N the serving happens in child processes: count them with the control process.
    process.measured = [process.pid, *children(process.pid)]
    return process, PyngressAddress(match["host"], int(match["http"]), int(match["admin"])), elapsed


def start_policy_proxy(group: ProcessGroup, *, backends: Sequence[tuple[str, int]], policies: bool,
                       name: str) -> tuple[Process, PyngressAddress]:
    """`python -m bench.policy_proxy`: the proxy server on a one-route table with traffic policies on or off."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, "-m", "bench.policy_proxy", "--policies", "on" if policies else "off",
            *(arg for host, port in backends for arg in ("--backend", f"{host}:{port}"))]
    process = group.start(name, argv, cwd=repo)
    match = process.wait_line(_PYNGRESS_READY, timeout=60)
    process.measured = [process.pid]
    return process, PyngressAddress(match["host"], int(match["http"]), 0)


_BACKEND_READY = re.compile(r"bench-backend listening (.+)")


def start_python_backend(group: ProcessGroup, *, ports: int = 1, name: str = "backend") -> list[int]:
    """`python -m bench.backend` on `ports` free loopback ports; returns them once it listens."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = group.start(name, [sys.executable, "-m", "bench.backend", *(["--port", "0"] * ports)], cwd=repo)
    match = process.wait_line(_BACKEND_READY, timeout=30)
    return [int(address.rsplit(":", 1)[1]) for address in match[1].split()]


def which(program: str) -> str | None:
    found = shutil.which(program)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):  # nginx lives in sbin, often not on a user's PATH
        candidate = os.path.join(folder, program)
        if os.access(candidate, os.X_OK):
            return candidate
    return None
