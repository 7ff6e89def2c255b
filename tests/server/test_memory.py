"""Large bodies stream through a proxy process without its memory growing with the body size."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import uvloop

HARNESS = Path(__file__).with_name("proxy_process.py")
MIB = 1024 * 1024
SIZE = 256 * MIB
PIECE = memoryview(b"m" * MIB)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing")


async def _backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Upload: count the body and answer its size. Download: send SIZE bytes."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            fields = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)
            }
            if head.startswith(b"PUT"):
                left = int(fields[b"content-length"])
                while left:
                    data = await reader.read(min(left, MIB))
                    if not data:
                        return
                    left -= len(data)
                body = str(int(fields[b"content-length"])).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                size = int(head.split(b" ")[1].split(b"=")[1]) if b"=" in head.split(b" ")[1] else 0
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                left = size
                while left:
                    writer.write(PIECE[: min(left, MIB)])
                    left -= min(left, MIB)
                    await writer.drain()
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _read_response_size(reader: asyncio.StreamReader) -> tuple[bytes, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    total = 0
    while total < length:
        data = await reader.read(4 * MIB)
        assert data, "closed early"
        total += len(data)
    return head, total


@pytest.mark.timeout(120)
async def test_256_mib_up_and_down_with_bounded_memory():
    backend = await asyncio.start_server(_backend, "127.0.0.2", 0)
    port = backend.sockets[0].getsockname()[1]
    # The proxy process runs the same loop as this test: uvloop in one variant, asyncio in the other.
    loop_flag = [] if isinstance(asyncio.get_running_loop(), uvloop.Loop) else ["--asyncio"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HARNESS), f"127.0.0.2:{port}", *loop_flag,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        async with asyncio.timeout(20):
            line = await process.stdout.readline()
        assert line.startswith(b"PORT "), line
        proxy_port = int(line.split()[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        # Warm up (imports, first connection, parser objects) before taking the baseline.
        writer.write(b"GET /d?size=1000 HTTP/1.1\r\nHost: a\r\n\r\n")
        await _read_response_size(reader)
        baseline = rss_kib(process.pid)

        async with asyncio.timeout(90):
            writer.write(b"PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % SIZE)
            for _ in range(SIZE // MIB):
                writer.write(PIECE)
                await writer.drain()
            head, _ = await _read_response_size(reader)
            assert head.startswith(b"HTTP/1.1 200 ")
            writer.write(b"GET /d?size=%d HTTP/1.1\r\nHost: a\r\n\r\n" % SIZE)
            head, received = await _read_response_size(reader)
            assert head.startswith(b"HTTP/1.1 200 ") and received == SIZE
        peak = rss_kib(process.pid, "VmHWM")
        writer.close()
        growth_mib = (peak - baseline) / 1024
        print(f"proxy RSS baseline {baseline / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, growth {growth_mib:.1f} MiB")
        assert growth_mib < 32, f"proxy RSS grew by {growth_mib:.1f} MiB for 2 x 256 MiB"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        backend.close()
