"""Several serving processes behind one control plane (`--workers N`).

Python runs one request at a time per process, so more cores need more processes. The
`pyngress` process becomes the *control process*: it keeps the admin port, the object source
(manifest files, or the cluster watch with leader election, status and Events: one watcher per
pod) and its own cache and controller (whose warnings and runtime feed Events, the status
writer and /debug/routes), and serves no traffic. It starts N *worker processes* (fresh
interpreters, `python -m proxy.workers`; never a fork of a running event loop), each with its
own cache, controller and proxy listeners bound with SO_REUSEPORT to the same ports, so the
kernel spreads connections among them.

The control process talks to each worker over a Unix socket pair, in length-prefixed pickles
(both ends are this program; the socket is private to the two processes)::

    control -> worker   ("init", {...})            settings (with the concrete ports), worker index
                        cache operations             the whole cache at (re)start, then every write,
                                                     in order (ObjectCache.observe / perform)
                        ("ping", seq, None)          each second: a worker that stops answering
                                                     (stopped, hung, not reading) is killed
                        ("traffic", id, None)        asks for the worker's traffic snapshot
    worker -> control   ("listening", http, https)   listeners bound, serving its first configuration
                        ("generation", n, None)      each configuration it publishes
                        ("pong", seq, None)
                        ("traffic", id, snapshot)

Writes to a worker never wait: they are buffered by the transport, and a worker that has not
answered a ping for `stall_timeout` is killed. A worker that exits is started again with
backoff (and gets the whole cache again). Workers exit when the control process goes away
(EOF on the socket, and the parent-death signal on Linux).

Ephemeral ports (0) are made concrete once: the control process binds a SO_REUSEPORT socket
without listening on it (it holds the port and receives no connections) and hands the port to
every worker, also to restarted ones.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from proxy.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ClusterMode,
    Signals,
    configure_logging,
    drain,
    listening_line,
    loop_factory,
    new_cache,
    report_failure,
    start_control,
    start_https,
    wait_until,
)
from proxy.kube.cache import APPLY, REPLACE, SYNCED, ObjectCache, Operation
from proxy.settings import Settings
from proxy.stats import Snapshot, merge

# The control process's admin and metrics modules (aiohttp's server, prometheus_client) are imported
# where used: a worker never needs them, and they would cost it start-up time and memory.
if TYPE_CHECKING:
    from proxy.admin import AdminServer
    from proxy.metrics import Metric
    from proxy.runtime import RuntimeHolder
    from proxy.tls import Certificate

log = logging.getLogger("pyngress.workers")

# A worker that has not answered a ping for this long is killed and started again. Generous:
# it covers the interpreter start (imports take about a second, more on a loaded box).
STALL_TIMEOUT = 20.0
PING_INTERVAL = 1.0
# Bytes queued for one worker beyond which it is killed at once (it gets the whole cache when
# restarted, so nothing is lost; without a bound a stopped worker would grow the control process).
MAX_BUFFERED = 256 * 1024 * 1024
# Restart delays after a worker exits: doubling from the first to the last; reset once a
# worker has lived STABLE_AFTER seconds.
RESTART_BACKOFF = (0.1, 5.0)
STABLE_AFTER = 30.0
# A scrape waits this long for each worker's traffic snapshot; a worker that does not answer is skipped.
GATHER_TIMEOUT = 2.0
# On SIGTERM the workers get the grace period to drain, plus this for their own exit.
EXIT_MARGIN = 5.0

_HEADER = struct.Struct("!I")
_CACHE_OPERATIONS = frozenset({REPLACE, APPLY, SYNCED})
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


# ---------------------------------------------------------------------------------------------- wire

def frame(message: tuple[Any, ...]) -> bytes:
    """One message as written to the socket: a 4-byte length, then the pickle."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def receive(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next message; raises asyncio.IncompleteReadError at the end of the stream."""
    header = await reader.readexactly(_HEADER.size)
    (size,) = _HEADER.unpack(header)
    return pickle.loads(await reader.readexactly(size))


# ---------------------------------------------------------------------------------------------- /proc

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/<pid>/stat (0 when gone or not Linux)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14 and 15


def resident_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/statm (0 when gone or not Linux)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


# ---------------------------------------------------------------------------------------------- control side

class Worker:
    """One running worker process as the control process sees it."""

    __slots__ = ("generation", "index", "last_pong", "listening", "pings", "process", "replies", "snapshot",
                 "writer")

    def __init__(self, index: int, writer: asyncio.StreamWriter, now: float) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.writer = writer
        self.listening = False
        self.generation = 0
        self.last_pong = now  # the spawn time until the first answer
        self.pings = itertools.count(1)
        self.replies: dict[int, asyncio.Future[Snapshot]] = {}
        self.snapshot: Snapshot | None = None  # the last traffic snapshot it sent

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def kill(self) -> None:
        if self.alive:
            assert self.process is not None
            try:
                self.process.kill()
            except ProcessLookupError:
                pass


class WorkerPool:
    """Starts and supervises the workers, relays the cache to them, and answers for them
    (readiness, traffic snapshots, CPU and memory)."""

    def __init__(self, *, settings: Settings, cache: ObjectCache, stall_timeout: float = STALL_TIMEOUT,
                 generated: Certificate | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.generated = generated
        self.count = settings.workers
        self.stall_timeout = stall_timeout
        self.workers: dict[int, Worker] = {}
        self.restarts = 0
        self.http_port = settings.http_port
        self.https_port = settings.https_port
        self.stopping = False
        self.startup_error = ""
        self._reserved: list[socket.socket] = []
        self._supervisors: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Exit status of each worker's last process, once stopping.
        self._final: dict[int, int | None] = {}
        self._changed = asyncio.Event()  # set whenever a worker starts listening or one fails to start
        self._stop = asyncio.Event()
        self._started = False  # every worker has listened once: from now on failures restart
        self._retired: Snapshot | None = None
        self._requests = itertools.count(1)
        self._unobserve = cache.observe(self._relay)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Make the ports concrete and start one supervisor per worker."""
        self.http_port = self._reserve(self.settings.http_port)
        self.https_port = self._reserve(self.settings.https_port)
        self._supervisors = [asyncio.create_task(self._supervise(index), name=f"worker {index}")
                             for index in range(self.count)]
        self._background(self._ping(), name="worker pings")

    async def wait_listening(self) -> None:
        """Until every worker listens; raises RuntimeError when one exits before it could."""
        while True:
            if self.startup_error:
                raise RuntimeError(self.startup_error)
            if len(self.workers) == self.count and all(w.listening for w in self.workers.values()):
                self._started = True
                return
            self._changed.clear()
            await self._changed.wait()

    @property
    def ready(self) -> int:
        """Workers alive and serving a configuration."""
        return sum(1 for w in self.workers.values() if w.listening and w.alive)

    def live(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive]

    async def stop(self, *, grace: float, force: asyncio.Event) -> int:
        """SIGTERM every worker (each drains for `grace`), wait for them; `force` (a second signal) kills them.

        Returns EXIT_OK when every worker exited on its own in time, else EXIT_FAILED.
        """
        self.stopping = True
        self._stop.set()
        self._unobserve()
        for worker in self.live():
            self._terminate(worker)
        status = EXIT_OK
        supervisors = [task for task in self._supervisors if not task.done()]
        if supervisors:
            finished = asyncio.ensure_future(asyncio.wait(supervisors))
            forced = asyncio.ensure_future(force.wait())
            done, _ = await asyncio.wait([finished, forced], timeout=grace + EXIT_MARGIN,
                                         return_when=asyncio.FIRST_COMPLETED)
            forced.cancel()
            if finished not in done:
                left = self.live()
                if not force.is_set():
                    log.warning("%d workers still running %.1f s after SIGTERM: killed", len(left),
                                grace + EXIT_MARGIN)
                for worker in left:
                    worker.kill()
                await asyncio.wait([finished], timeout=EXIT_MARGIN)
                finished.cancel()
                status = EXIT_FAILED
        # A worker stopped before its signal handlers were up dies of the SIGTERM itself: not a failure.
        failed = {index: code for index, code in self._final.items() if code not in (0, -signal.SIGTERM)}
        if failed:
            log.warning("workers exited with a failure status: %s", failed)
            status = EXIT_FAILED
        for task in (*self._supervisors, *self._tasks):
            task.cancel()
        await asyncio.gather(*self._supervisors, *self._tasks, return_exceptions=True)
        for worker in self.workers.values():
            worker.kill()  # only one still starting when the supervisors were cancelled
            worker.writer.close()
        for sock in self._reserved:
            sock.close()
        return status

    def _terminate(self, worker: Worker) -> None:
        """Ask a worker to drain and exit: SIGTERM, and the same over the socket (heard even before
        its signal handlers are installed, as it ignores SIGTERM until then)."""
        assert worker.process is not None
        try:
            worker.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        worker.send(frame(("stop", None, None)))

    # ---------------------------------------------------------------- relay

    def _relay(self, operation: Operation) -> None:
        """Cache observer: every write goes to every worker, pickled once."""
        if not self.workers:
            return
        data = frame(operation)
        for worker in self.workers.values():
            worker.send(data)

    # ---------------------------------------------------------------- metrics

    async def gather(self) -> list[Snapshot]:
        """Each live worker's traffic snapshot (workers that do not answer in time are skipped), plus the
        last counts of workers that exited, so the sums over workers never go down."""
        live = self.live()
        answers = await asyncio.gather(*(self._ask_traffic(w) for w in live))
        snapshots = [a for a in answers if a is not None]
        retired = self._retired
        if retired is not None and snapshots:
            # Series of routes that no longer exist go with the route, as in a single process.
            present = {tuple(labels) for s in snapshots for labels, _ in s["routes"]}
            retired["routes"] = [entry for entry in retired["routes"] if tuple(entry[0]) in present]
        return snapshots + ([retired] if retired is not None else [])

    async def _ask_traffic(self, worker: Worker) -> Snapshot | None:
        request = next(self._requests)
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        worker.replies[request] = future
        worker.send(frame(("traffic", request, None)))
        try:
            async with asyncio.timeout(GATHER_TIMEOUT):
                snapshot = await future
        except (TimeoutError, ConnectionError):
            log.debug("worker %d sent no traffic snapshot in time", worker.index)
            return None
        finally:
            worker.replies.pop(request, None)
        worker.snapshot = snapshot
        return snapshot

    def connections(self) -> dict[int, int]:
        """Connections accepted by each live worker (all listeners), as of the last gather."""
        counts = {}
        for worker in self.live():
            if worker.snapshot is not None:
                counts[worker.index] = sum(c[1] for c in worker.snapshot.get("listeners", {}).values())
        return counts

    def pids(self) -> list[int]:
        return [w.pid for w in self.live() if w.pid is not None]

    # ---------------------------------------------------------------- internals

    def _reserve(self, port: int) -> int:
        """Port 0: bind one now (SO_REUSEPORT, never listening) and keep it for every worker."""
        if port != 0:
            return port
        family, kind, proto, _, address = socket.getaddrinfo(
            self.settings.bind, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        self._reserved.append(sock)
        return sock.getsockname()[1]

    async def _supervise(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        delay = RESTART_BACKOFF[0]
        while not self.stopping:
            started = loop.time()
            try:
                worker = await self._spawn(index)
                assert worker.process is not None
                if self.stopping:  # stop() came while the process was being created
                    self._terminate(worker)
                code = await worker.process.wait()
            except OSError as error:  # could not even start the interpreter
                code, worker = None, None
                log.error("cannot start worker %d: %s", index, error)
            if worker is not None:
                self._retire(worker)
            if self.stopping:
                self._final[index] = code
                return
            if not self._started:
                self.startup_error = (f"worker {index} exited with status {code} before listening"
                                      if worker is not None and not worker.listening
                                      else f"worker {index} exited with status {code} during start-up")
                self._changed.set()
                return
            if loop.time() - started > STABLE_AFTER:
                delay = RESTART_BACKOFF[0]
            log.warning("worker %d (pid %s) exited with status %s; starting it again in %.1f s", index,
                        worker.pid if worker is not None else "-", code, delay)
            try:
                async with asyncio.timeout(delay):
                    await self._stop.wait()
                return
            except TimeoutError:
                pass
            delay = min(delay * 2, RESTART_BACKOFF[1])
            self.restarts += 1

    async def _spawn(self, index: int) -> Worker:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            worker = Worker(index, writer, loop.time())
            # The whole cache, then (being in `workers`) every write after it: nothing between the two.
            settings = replace(self.settings, http_port=self.http_port, https_port=self.https_port)
            writer.write(frame(("init", {"settings": settings, "index": index, "generated": self.generated}, None)))
            for operation in self.cache.operations():
                writer.write(frame(operation))
            self.workers[index] = worker
            root = str(Path(__file__).resolve().parent.parent)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
            try:
                worker.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "proxy.workers", "--fd", str(theirs.fileno()), "--parent", str(os.getpid()),
                    pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL, env=env,
                    # Its own session: a terminal's Ctrl-C reaches only the control process, which
                    # stops the workers once (a second SIGINT of their own would cut their drain).
                    start_new_session=True)
            except BaseException:
                del self.workers[index]
                writer.close()
                raise
        finally:
            theirs.close()
        log.info("worker %d started (pid %d)", index, worker.process.pid)
        self._background(self._read(worker, reader), name=f"worker {index} channel")
        return worker

    def _background(self, coroutine: Any, *, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, worker: Worker, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                tag, first, second = await receive(reader)
                if tag == "pong":
                    worker.last_pong = loop.time()
                elif tag == "traffic":
                    future = worker.replies.get(first)
                    if future is not None and not future.done():
                        future.set_result(second)
                elif tag == "generation":
                    worker.generation = first
                elif tag == "listening":
                    worker.listening = True
                    log.info("worker %d (pid %s) listening", worker.index, worker.pid)
                    self._changed.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker exited; its supervisor sees the exit status
        except Exception:
            log.exception("unreadable message from worker %d: killing it", worker.index)
            worker.kill()
        finally:
            for future in worker.replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("worker gone"))

    async def _ping(self) -> None:
        """Each second: ping every worker; kill one that stopped answering or reading."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(PING_INTERVAL)
            now = loop.time()
            for worker in self.live():
                transport = worker.writer.transport
                buffered = transport.get_write_buffer_size() if not transport.is_closing() else 0
                if now - worker.last_pong > self.stall_timeout or buffered > MAX_BUFFERED:
                    log.warning("worker %d (pid %s) stopped answering (%.1f s, %d bytes queued): killing it",
                                worker.index, worker.pid, now - worker.last_pong, buffered)
                    worker.kill()
                    continue
                worker.send(frame(("ping", next(worker.pings), None)))

    def _retire(self, worker: Worker) -> None:
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        worker.writer.close()
        snapshot = worker.snapshot
        if snapshot is not None:  # keep its counts; it has no open connections any more
            closed = {"routes": snapshot["routes"], "handshakes": snapshot.get("handshakes"),
                      "listeners": {scheme: [0, c[1]] for scheme, c in snapshot["listeners"].items()}}
            self._retired = merge([s for s in (self._retired, closed) if s is not None])
        self._changed.set()


class WorkersCollector:
    """CPU and memory summed over the control process and its live workers, and how the workers share
    the connections (read at scrape time, after WorkerPool.gather)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        from proxy.metrics import CounterMetricFamily, GaugeMetricFamily

        pids = [os.getpid(), *self.pool.pids()]
        yield CounterMetricFamily("process_cpu_seconds", "User and system CPU time of the control process and "
                                  "its workers, in seconds.", value=round(sum(cpu_seconds(pid) for pid in pids), 2))
        yield GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of the control process and its "
                                "workers, in bytes.", value=sum(resident_bytes(pid) for pid in pids))
        yield GaugeMetricFamily("pyngress_workers", "Worker processes alive.", value=len(pids) - 1)
        yield GaugeMetricFamily("pyngress_workers_ready", "Worker processes alive and serving a configuration.",
                                value=self.pool.ready)
        yield CounterMetricFamily("pyngress_worker_restarts", "Worker processes started again after exiting.",
                                  value=self.pool.restarts)
        accepted = CounterMetricFamily("pyngress_worker_connections", "Client connections accepted per worker "
                                       "(all listeners; counts restart with the worker).", labels=["worker"])
        for index, count in sorted(self.pool.connections().items()):
            accepted.add_metric([str(index)], count)
        yield accepted
        generation = GaugeMetricFamily("pyngress_worker_config_generation", "Generation of the configuration "
                                       "each worker serves (each counts its own builds).", labels=["worker"])
        for worker in sorted(self.pool.live(), key=lambda w: w.index):
            generation.add_metric([str(worker.index)], worker.generation)
        yield generation


def control_admin(pool: WorkerPool, **kwargs: Any) -> AdminServer:
    """The admin server of the control process: /readyz is 200 only when every worker serves a configuration."""
    from proxy.admin import AdminServer

    def not_ready() -> str | None:
        ready = pool.ready
        return f"{ready} of {pool.count} workers serving" if ready < pool.count else None

    return AdminServer(not_ready=not_ready, **kwargs)


async def serve_workers(settings: Settings) -> int:
    """Run the control process and its workers until a signal; returns the exit status."""
    from proxy.controller import Controller
    from proxy.kube.client import ClusterConfigError
    from proxy.kube.files import ManifestError
    from proxy.metrics import Metrics
    from proxy.runtime import RuntimeHolder

    signals = Signals()
    signals.install(asyncio.get_running_loop())
    holder = RuntimeHolder()
    cache = new_cache(settings)
    from proxy.tls import generate_default_certificate

    # One self-signed default certificate for the pod: every worker serves the same one.
    generated = await asyncio.to_thread(generate_default_certificate)
    controller = Controller(cache=cache, settings=settings, holder=holder, generated=generated)
    pool = WorkerPool(settings=settings, cache=cache, generated=generated)
    metrics = Metrics(holder=holder, controller=controller, process=False)
    metrics.gather = pool.gather
    metrics.registry.register(WorkersCollector(pool))
    admin = control_admin(pool, settings=settings, holder=holder, metrics=metrics, controller=controller)
    tasks: list[asyncio.Task[None]] = []
    cluster: ClusterMode | None = None

    async def run() -> int:
        nonlocal cluster
        try:
            cluster = await start_control(admin, cache, settings, holder, controller=controller, metrics=metrics,
                                          tasks=tasks)
        except (ManifestError, ClusterConfigError) as error:
            log.error("%s", error)
            return EXIT_USAGE
        pool.start()
        listening = asyncio.ensure_future(pool.wait_listening())
        if not await wait_until(asyncio.shield(listening), signals.stop, tasks):
            listening.cancel()
            return report_failure(tasks)
        if signals.stop.is_set():
            listening.cancel()
            return EXIT_OK
        if listening.exception() is not None:
            log.error("%s", listening.exception())
            return EXIT_FAILED
        print(listening_line(settings, http_port=pool.http_port, https_port=pool.https_port, admin_port=admin.port),
              flush=True)
        log.info("ready: %d workers serving", pool.count)
        if not await wait_until(signals.stop.wait(), signals.stop, tasks):
            return report_failure(tasks)
        return EXIT_OK

    try:
        status = await run()
    except OSError as error:  # the admin port in use, an address not available
        log.error("cannot start: %s", error)
        status = EXIT_FAILED
    finally:
        admin.shutting_down = True
    try:
        status = max(status, await pool.stop(grace=settings.shutdown_grace_period, force=signals.force))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        controller.close()
        if cluster is not None:
            await cluster.close()
        await admin.stop()
    log.info("stopped")
    return status


# ---------------------------------------------------------------------------------------------- worker side

class _Reporter:
    """The worker's end of the socket: writes never wait (the control process reads all the time)."""

    __slots__ = ("writer",)

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def send(self, tag: str, first: Any = None, second: Any = None) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame((tag, first, second)))


async def run_worker(fd: int) -> int:
    """One worker: cache fed by the control process, controller, HTTP and HTTPS listeners; until a signal
    or the end of the socket. Returns the exit status."""
    from proxy.controller import Controller
    from proxy.runtime import RuntimeHolder
    from proxy.server import ProxyServer

    signals = Signals()
    signals.install(asyncio.get_running_loop())
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
    try:
        tag, init, _ = await receive(reader)
    except asyncio.IncompleteReadError:
        return EXIT_FAILED  # the control process went away before saying anything
    if tag != "init":
        raise RuntimeError(f"worker: expected init, got {tag!r}")
    settings: Settings = init["settings"]
    index: int = init["index"]
    configure_logging(settings.log_level, process=f"worker-{index}")
    reporter = _Reporter(writer)
    holder = RuntimeHolder()
    cache = new_cache(settings)
    controller = Controller(cache=cache, settings=settings, holder=holder, generated=init.get("generated"))
    server = ProxyServer(settings=settings, holder=holder, freeze_gc=True)
    tasks = [
        asyncio.create_task(controller.run(), name="controller"),
        asyncio.create_task(_follow(reader, cache=cache, server=server, reporter=reporter, signals=signals),
                            name="control channel"),
        asyncio.create_task(_report_generations(holder, reporter), name="generations"),
    ]
    listening = False

    async def run() -> int:
        nonlocal listening
        if not await wait_until(holder.wait_for(1, timeout=float("inf")), signals.stop, tasks):
            return report_failure(tasks)
        if signals.stop.is_set():
            return EXIT_OK
        await server.start()
        listening = True
        await start_https(server, controller)
        reporter.send("listening", server.http_port, server.https_port)
        if not await wait_until(signals.stop.wait(), signals.stop, tasks):
            return report_failure(tasks)
        return EXIT_OK

    try:
        status = await run()
    except OSError as error:
        log.error("cannot start: %s", error)
        status = EXIT_FAILED
    try:
        if listening:
            status = max(status, await drain(server, settings, signals))
            await server.close()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        controller.close()
        writer.close()
    return status


async def _follow(reader: asyncio.StreamReader, *, cache: ObjectCache, server: Any, reporter: _Reporter,
                  signals: Signals) -> None:
    """Apply the control process's messages until its end of the socket closes, then ask for a stop."""
    try:
        while True:
            message = await receive(reader)
            tag = message[0]
            if tag in _CACHE_OPERATIONS:
                cache.perform(message)
            elif tag == "ping":
                reporter.send("pong", message[1])
            elif tag == "traffic":
                reporter.send("traffic", message[1], server.traffic.snapshot())
            elif tag == "stop":
                signals.request_stop()
    except (asyncio.IncompleteReadError, ConnectionError):
        if not signals.stop.is_set():
            log.info("control process gone: shutting down")
            signals.request_stop()
        await asyncio.Event().wait()  # not a failure: the stop above ends the worker


async def _report_generations(holder: RuntimeHolder, reporter: _Reporter) -> None:
    generation = 0
    while True:
        runtime = await holder.wait_for(generation + 1, timeout=float("inf"))
        generation = runtime.generation
        reporter.send("generation", generation)


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when the control process dies (Linux), and exit if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        sys.exit(EXIT_FAILED)


def worker_main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process (`python -m proxy.workers --fd N --parent PID`)."""
    parser = argparse.ArgumentParser(prog="pyngress-worker", description="A pyngress worker process; started by "
                                     "`pyngress --workers N`, not by hand.")
    parser.add_argument("--fd", type=int, required=True, help="socket to the control process")
    parser.add_argument("--parent", type=int, required=True, help="pid of the control process")
    args = parser.parse_args(argv)
    # Until the event loop's handlers are installed a SIGTERM would kill the process mid-start; the
    # control process also says "stop" over the socket, which is read once the loop runs.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(args.parent)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(run_worker(args.fd))


if __name__ == "__main__":
    sys.exit(worker_main())
