"""The pool of worker processes: started and supervised by the control process, fed its cache.

Each worker has a supervisor task that spawns it (`python -m proxy.workers`, handed one end of
a socket pair), waits for its exit and starts it again with backoff; a ping task kills workers
that stop answering. The pool is the control process's `Serving` part: ready once every
worker listens, stopped by SIGTERM to each (they drain on their own).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.kube.cache import ObjectCache, Operation
from proxy.lifecycle.process import EXIT_FAILED, EXIT_OK
from proxy.settings import Settings
from proxy.stats import Snapshot, merge
from proxy.tls.tickets import new_ticket_keys
from proxy.workers.channel import frame, receive

if TYPE_CHECKING:
    from proxy.routing.model import Endpoint
    from proxy.tls import Certificate
    from proxy.upstream.health import HealthVerdicts

log = logging.getLogger("pyngress.workers")

# A worker that has not answered a ping for this long is killed and started again. Generous:
# it covers the interpreter start (imports take about a second, more on a loaded box).
STALL_TIMEOUT = 20.0
# A worker not listening yet may be silent this long (imports, the first table: slow on a busy or CPU-limited node)
# before it is taken for stalled; once listening, STALL_TIMEOUT.
START_TIMEOUT = 120.0
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


class Worker:
    """One running worker process as the control process sees it."""

    __slots__ = ("generation", "index", "last_pong", "listening", "pings", "process", "replies", "snapshot",
                 "unbound", "writer")

    def __init__(self, index: int, writer: asyncio.StreamWriter, now: float) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.writer = writer
        self.listening = False
        self.generation = 0
        self.unbound = 0  # Gateway listener ports it reported not accepting (at its last pong)
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
                 start_timeout: float = START_TIMEOUT, generated: Certificate | None = None,
                 health: HealthVerdicts | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.generated = generated
        # Drawn once: every worker, restarted ones too, encrypts session tickets with the same keys, so a
        # client resumes on whichever worker the kernel gives its next connection (tls.tickets).
        self.ticket_keys = new_ticket_keys()
        self.count = settings.workers
        self.stall_timeout = stall_timeout
        self.start_timeout = max(start_timeout, stall_timeout)
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
        # The control process's active health verdicts: the workers apply them (they do not probe).
        self.health = health
        self._unobserve_health = health.observe(self._relay_health) if health is not None else None

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

    async def until_ready(self) -> str | None:
        """Start the workers and wait until every one listens; the reason when one exits before."""
        self.start()
        try:
            await self.wait_listening()
        except RuntimeError as error:
            return str(error)
        return None

    async def listen(self) -> None:
        """Nothing to bind here: the workers listen (this process holds ephemeral ports only)."""

    def readiness(self) -> str:
        return f"{self.count} workers serving"

    @property
    def ready(self) -> int:
        """Workers alive and serving a configuration on every port it asks for."""
        return sum(1 for w in self.workers.values() if w.listening and w.alive and not w.unbound)

    def live(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive]

    async def stop(self, *, grace: float, force: asyncio.Event) -> int:
        """SIGTERM every worker (each drains for `grace`), wait for them; `force` (a second signal) kills them.

        Returns EXIT_OK when every worker exited on its own in time, else EXIT_FAILED.
        """
        self.stopping = True
        self._stop.set()
        self._unobserve()
        if self._unobserve_health is not None:
            self._unobserve_health()
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

    def _relay_health(self, key: str, changes: Mapping[Endpoint, bool] | None) -> None:
        """Health verdict observer: each change goes to every worker."""
        if not self.workers:
            return
        data = frame(("health", key, dict(changes) if changes is not None else None))
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
        reserved: int = sock.getsockname()[1]
        return reserved

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
            writer.write(frame(("init", {"settings": settings, "index": index, "generated": self.generated,
                                         "ticket_keys": self.ticket_keys}, None)))
            for operation in self.cache.operations():
                writer.write(frame(operation))
            if self.health is not None:
                for key, changes in self.health.operations():
                    writer.write(frame(("health", key, changes)))
            self.workers[index] = worker
            root = str(Path(__file__).resolve().parents[2])
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
                    worker.unbound = second or 0
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
                limit = self.stall_timeout if worker.listening else self.start_timeout
                if now - worker.last_pong > limit or buffered > MAX_BUFFERED:
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
                      "upstream_tls": snapshot.get("upstream_tls"), "tracing": snapshot.get("tracing"),
                      "listeners": {scheme: [0, c[1]] for scheme, c in snapshot["listeners"].items()}}
            self._retired = merge([s for s in (self._retired, closed) if s is not None])
        self._changed.set()

