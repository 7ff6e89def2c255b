"""How access log lines reach stdout: from the loop into a pipe (non-blocking, no thread), else from a thread."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import tempfile
import threading
import time

from proxy.accesslog import PIPE_BUF, PIPE_SIZE, AccessLog, address_text, route_fields

LABELS = ("shop", "web", "*.example.com", "/api", "api", "Ingress")
ROUTE = route_fields(LABELS)
UPSTREAM = address_text("10.0.0.1", 8080)


def add(log: AccessLog, request_id: bytes, user_agent: bytes = b"curl/8") -> None:
    log.add(1763866559.417, request_id, b"127.0.0.1", b"GET", b"a.example.com", b"/api/items?x=1", b"HTTP/1.1", 200,
            80, 512, 0.0012, 0.0009, UPSTREAM, ROUTE, user_agent, 0)


class Reader:
    """Reads a pipe in a thread, ``size`` bytes a read, until its write end is closed everywhere."""

    def __init__(self, fd: int, size: int = 65536) -> None:
        self.chunks: list[bytes] = []
        self.go = threading.Event()
        self._fd = fd
        self._size = size
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.go.wait(timeout=30)
        while chunk := os.read(self._fd, self._size):
            self.chunks.append(chunk)

    def lines(self) -> list[bytes]:
        self.go.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        os.close(self._fd)
        return b"".join(self.chunks).splitlines(keepends=True)


async def until(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def writer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "pyngress-access-log"]


async def test_into_a_pipe_the_loop_writes_every_line_whole_and_in_order():
    read_end, write_end = os.pipe()
    reader = Reader(read_end)
    reader.go.set()
    before = len(writer_threads())
    log = AccessLog(write_end, interval=0.01, loop=asyncio.get_running_loop())
    assert len(writer_threads()) == before  # no thread of its own
    for batch in range(20):
        for index in range(100):
            add(log, b"id-%d" % (batch * 100 + index))
        await asyncio.sleep(0)
    await until(lambda: log.written == 2000)  # by its timer, before close()
    log.close()
    os.close(write_end)
    entries = [json.loads(line) for line in reader.lines()]
    assert [entry["request_id"] for entry in entries] == [f"id-{index}" for index in range(2000)]
    assert log.dropped == 0


async def test_a_full_pipe_never_blocks_the_loop_and_the_rest_follows_when_it_drains():
    read_end, write_end = os.pipe()
    reader = Reader(read_end)  # reads nothing until go
    log = AccessLog(write_end, limit=1000, interval=0.01, loop=asyncio.get_running_loop())
    total = 0
    while log.dropped == 0:  # far more than the pipe (64 KiB) and the queue hold: add() returns, the loop runs
        for _ in range(500):
            add(log, b"id-%d" % total)
            total += 1
        await asyncio.sleep(0.002)
        assert total < 200_000
    assert len(log.pending) <= 1000
    reader.go.set()  # the pipe drains: the batch's rest goes on when it can, then what is queued
    await until(lambda: log.written + log.dropped == total)
    log.close()
    os.close(write_end)
    lines = reader.lines()
    ids = [int(json.loads(line)["request_id"][3:]) for line in lines]
    assert len(ids) == log.written and ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_workers_on_one_pipe_never_interleave_their_lines():
    """Several writers (worker processes; here loops in threads, each with its own description of the pipe) write
    lines of many lengths into one pipe that a slow reader drains: every line must come out whole."""
    read_end, write_end = os.pipe()
    reader = Reader(read_end, size=1000)
    reader.go.set()

    def worker(name: bytes) -> None:
        async def run() -> None:
            log = AccessLog(write_end, interval=0.005, loop=asyncio.get_running_loop())
            for index in range(3000):
                add(log, b"%s-%d" % (name, index), user_agent=b"x" * (index * 37 % 1500))
                if index % 100 == 0:
                    await asyncio.sleep(0.001)
            await until(lambda: log.written + log.dropped == 3000)
            log.close()
            assert log.dropped == 0

        asyncio.run(run())

    workers = [threading.Thread(target=worker, args=(name,)) for name in (b"a", b"b", b"c")]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
        assert not thread.is_alive()
    os.close(write_end)
    entries = [json.loads(line) for line in reader.lines()]
    for name in "abc":
        ids = [entry["request_id"] for entry in entries if entry["request_id"].startswith(name + "-")]
        assert ids == [f"{name}-{index}" for index in range(3000)]


async def test_a_line_longer_than_pipe_buf_goes_through_the_loop_whole():
    read_end, write_end = os.pipe()
    reader = Reader(read_end, size=512)
    reader.go.set()
    log = AccessLog(write_end, interval=0.01, loop=asyncio.get_running_loop())
    for index in range(200):
        add(log, b"id-%d" % index, user_agent=b"y" * (3 * PIPE_BUF if index % 50 == 7 else 20))
    await until(lambda: log.written == 200)
    log.close()
    os.close(write_end)
    entries = [json.loads(line) for line in reader.lines()]
    assert [entry["request_id"] for entry in entries] == [f"id-{index}" for index in range(200)]
    assert [len(entry["user_agent"]) for entry in entries[7::50]] == [3 * PIPE_BUF] * 4


async def test_close_writes_what_the_pipe_had_not_taken():
    read_end, write_end = os.pipe()
    reader = Reader(read_end)  # reads only after close() began
    log = AccessLog(write_end, interval=0.005, loop=asyncio.get_running_loop())
    count = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) // 400 + 1000  # lines of ~450 bytes: more than the pipe
    for index in range(count):  # holds (the log grew it), less than the queue's limit
        add(log, b"id-%d" % index)
    await until(lambda: not log.pending)  # the batch is out of the queue, partly written, the rest waiting
    assert log.written == 0
    reader.go.set()
    log.close()  # (blocking, through the original descriptor)
    os.close(write_end)
    entries = [json.loads(line) for line in reader.lines()]
    assert [entry["request_id"] for entry in entries] == [f"id-{index}" for index in range(count)]
    assert log.written == count


async def test_the_pipe_is_grown_to_hold_a_batch():
    read_end, write_end = os.pipe()
    assert fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) < PIPE_SIZE  # (Linux's default: 64 KiB)
    log = AccessLog(write_end, interval=3600, loop=asyncio.get_running_loop())
    try:
        assert fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) == PIPE_SIZE
    finally:
        log.close()
        os.close(write_end)
        os.close(read_end)


def write_calls() -> int:
    """This process's write system calls so far (every thread)."""
    with open("/proc/self/io", encoding="ascii") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("syscw:"))


async def test_a_process_alone_writes_a_batch_at_once_shared_in_pieces():
    """Worker processes share stdout: their batches go in whole-line pieces of at most PIPE_BUF (atomic); a process
    alone on the pipe writes a batch in one write (one wake-up of the reader instead of one per piece)."""
    for shared, fewest, most in ((True, 100 * 450 // PIPE_BUF, 100), (False, 1, 3)):
        read_end, write_end = os.pipe()
        reader = Reader(read_end)
        reader.go.set()
        log = AccessLog(write_end, interval=3600, loop=asyncio.get_running_loop(), shared=shared)
        for index in range(100):  # ~45 KB, one batch
            add(log, b"id-%d" % index)
        before = write_calls()
        log._tick()  # the timer's work, now
        writes = write_calls() - before
        assert log.written == 100
        log.close()
        os.close(write_end)
        entries = [json.loads(line) for line in reader.lines()]
        assert [entry["request_id"] for entry in entries] == [f"id-{index}" for index in range(100)]
        assert fewest <= writes <= most, (shared, writes)


async def test_into_a_regular_file_a_thread_writes():
    """A file is no pipe: the loop is not used (a write into a file may wait for the disk), a thread writes."""
    with tempfile.TemporaryFile() as file:
        log = AccessLog(file.fileno(), interval=0.01, loop=asyncio.get_running_loop())
        assert [thread for thread in writer_threads() if thread.is_alive()]
        for index in range(500):
            add(log, b"id-%d" % index)
        log.close()
        file.seek(0)
        entries = [json.loads(line) for line in file.read().splitlines()]
    assert [entry["request_id"] for entry in entries] == [f"id-{index}" for index in range(500)]
