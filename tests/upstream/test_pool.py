"""EndpointPool: dialing, idle reuse, limits, idle expiry, dead connections, error mapping."""

from __future__ import annotations

import asyncio
import socket
import socket as socket_module

import pytest

from proxy.routing.model import Endpoint
from proxy.upstream.errors import ConnectError, ConnectTimeout, UpstreamError
from proxy.upstream.pool import EndpointPool
from tcp_listener import wait_until


async def test_dial_release_and_reuse_lifo(make_listener):
    listener = await make_listener()
    pool = EndpointPool(Endpoint(listener.host, listener.port))
    first = await pool.connect()
    second = await pool.connect()
    assert listener.accepted == 0 or listener.accepted <= 2
    await wait_until(lambda: listener.accepted == 2)
    assert pool.acquire() is None
    pool.release(first)
    pool.release(second)
    assert len(pool.idle) == 2
    assert pool.acquire() is second  # the most recently used (warmest) first
    assert pool.acquire() is first
    assert pool.acquire() is None
    first.close()
    second.close()
    await wait_until(lambda: listener.closed == 2)


async def test_release_beyond_limit_closes(make_listener):
    listener = await make_listener()
    pool = EndpointPool(Endpoint(listener.host, listener.port), limit=1)
    conns = [await pool.connect() for _ in range(3)]
    for conn in conns:
        pool.release(conn)
    assert list(pool.idle) == [conns[0]]
    await wait_until(lambda: listener.closed == 2)
    pool.close()
    await wait_until(lambda: listener.closed == 3)


async def test_idle_connections_expire(make_listener):
    listener = await make_listener()
    pool = EndpointPool(Endpoint(listener.host, listener.port), idle_timeout=0.2)
    pool.release(await pool.connect())
    await asyncio.sleep(0.1)
    pool.release(await pool.connect())
    assert len(pool.idle) == 2
    await wait_until(lambda: len(pool.idle) == 1)  # the older one first
    await wait_until(lambda: len(pool.idle) == 0)
    await wait_until(lambda: listener.closed == 2)


async def test_connection_closed_by_upstream_while_idle_is_discarded(make_listener):
    listener = await make_listener()
    pool = EndpointPool(Endpoint(listener.host, listener.port))
    conn = await pool.connect()
    pool.release(conn)
    await wait_until(lambda: listener.accepted == 1)
    listener.writers[0].close()
    await wait_until(lambda: not pool.idle)
    assert conn.closed
    assert pool.acquire() is None


async def test_unsolicited_bytes_on_an_idle_connection_close_it(make_listener):
    listener = await make_listener()
    pool = EndpointPool(Endpoint(listener.host, listener.port))
    conn = await pool.connect()
    pool.release(conn)
    await wait_until(lambda: listener.accepted == 1)
    listener.writers[0].write(b"HTTP/1.1 200 OK\r\n\r\n")
    await wait_until(lambda: not pool.idle and conn.closed)
    await wait_until(lambda: listener.closed == 1)


async def test_refused_is_connect_error_with_cause():
    with socket.socket() as sock:
        sock.bind(("127.0.0.20", 0))
        port = sock.getsockname()[1]
    pool = EndpointPool(Endpoint("127.0.0.20", port))
    with pytest.raises(ConnectError) as info:
        await pool.connect()
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert info.value.status == 502 and f"127.0.0.20:{port}" in str(info.value)


async def test_connect_timeout():
    sock = socket_module.socket()
    sock.bind(("127.0.0.30", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket_module.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.30", port))
            except BlockingIOError:
                pass
            fillers.append(filler)
        pool = EndpointPool(Endpoint("127.0.0.30", port), connect_timeout=0.2)
        with pytest.raises(ConnectTimeout) as info:
            await pool.connect()
        assert isinstance(info.value, ConnectError) and info.value.status == 502
        assert isinstance(info.value.__cause__, TimeoutError)
    finally:
        for filler in fillers:
            filler.close()
        sock.close()


async def test_external_name_is_resolved_when_dialing(make_listener):
    listener = await make_listener("127.0.0.1")
    pool = EndpointPool(Endpoint("localhost", listener.port), resolve=True)
    conn = await pool.connect()
    assert conn.transport.get_extra_info("peername")[1] == listener.port
    conn.close()
    missing = EndpointPool(Endpoint("does-not-exist.invalid", 80), resolve=True)
    with pytest.raises(ConnectError) as info:
        await missing.connect()
    assert isinstance(info.value.__cause__, socket.gaierror)
    assert isinstance(info.value, UpstreamError)


async def test_retired_pool_closes_connections_on_release(make_listener):
    listener = await make_listener()
    pool = EndpointPool(Endpoint(listener.host, listener.port))
    idle = await pool.connect()
    busy = await pool.connect()
    pool.release(idle)
    pool.close()
    await wait_until(lambda: listener.closed == 1)
    pool.release(busy)  # an in-flight request finishing after its endpoint left
    await wait_until(lambda: listener.closed == 2)
    assert not pool.idle
