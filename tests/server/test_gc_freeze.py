"""The GC freeze of the serving process (ProxyServer(freeze_gc=True), what the CLI and the workers run).

Objects alive at a publish, and since this round those alive right after every full collection, are moved out of the
cyclic collector's reach (gc.freeze()), so that a full collection walks only what was made since instead of the route
table and every open connection (a stall of the event loop: bench/tail.py). These tests run in the shared test
interpreter, so each undoes its freeze (gc.unfreeze()) at the end. "Frozen" is read as "no longer among
gc.get_objects()", which lists the three generations and not the permanent one.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from proxy import gc_freeze
from proxy.http.h1_connection import ClientConnection
from server_harness import Rule, cluster, connect, encode_request, read_response, wait_until


@pytest.fixture
def unfreezing() -> Iterator[None]:
    """No automatic collections while a test runs (only the explicit ones: the proxy's and the test's), and no
    frozen objects before or after it."""
    gc.unfreeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def tracked(obj: object) -> bool:
    """Whether `obj`, an object the collector tracks, is in one of its generations (False once frozen)."""
    assert gc.is_tracked(obj)
    return any(o is obj for o in gc.get_objects())


async def test_the_first_publish_freezes_at_once_and_a_later_one_after_the_delay(make_proxy, make_pods, unfreezing):
    proxy = await make_proxy(freeze_gc=True)
    [pod] = await make_pods("web")
    proxy.publish([Rule("example.com", "/", "default/web:80")], [cluster("default/web:80", [pod.endpoint])])
    first = proxy.holder.current
    assert first is not None and gc.get_freeze_count() > 0
    assert not tracked(first.config.table)

    proxy.publish([Rule("example.com", "/new", "default/web:80")], [cluster("default/web:80", [pod.endpoint])])
    second = proxy.holder.current
    assert second is not None and second is not first
    assert tracked(second.config.table)  # not yet: one freeze per burst of publishes, FREEZE_DELAY later
    await wait_until(lambda: not tracked(second.config.table), timeout=10, interval=0.05)
    assert (await _get(proxy.port, "/new")).status == 200


async def test_what_survives_a_full_collection_is_frozen_and_garbage_is_still_collected(make_proxy, make_pods,
                                                                                        unfreezing):
    proxy = await make_proxy(freeze_gc=True)
    [pod] = await make_pods("web")
    proxy.publish([Rule("example.com", "/", "default/web:80")], [cluster("default/web:80", [pod.endpoint])])
    assert gc_freeze.installed()

    # Connections opened after the publish: young objects, walked by every full collection until frozen.
    clients = []
    for _ in range(3):
        reader, writer = await connect(proxy.port)
        writer.write(encode_request("/echo"))
        assert (await read_response(reader)).status == 200
        clients.append((reader, writer))
    connections = [c for c in proxy.server.connections if isinstance(c, ClientConnection)]
    assert len(connections) == 3 and all(tracked(c) for c in connections)

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle, garbage once the names go
    gone = weakref.ref(a)
    del a, b

    gc.collect()
    assert gone() is None  # collected: the freeze comes after the collection
    assert not any(tracked(c) for c in connections)
    for _, writer in clients:  # frozen objects are still freed by reference counting
        writer.close()
    await wait_until(lambda: proxy.server.active_connections == 0)
    assert (await _get(proxy.port, "/echo")).status == 200

    await proxy.server.close()
    assert not gc_freeze.installed()


async def test_a_server_without_freeze_gc_leaves_the_collector_alone(make_proxy, make_pods, unfreezing):
    proxy = await make_proxy()
    [pod] = await make_pods("web")
    proxy.publish([Rule("example.com", "/", "default/web:80")], [cluster("default/web:80", [pod.endpoint])])
    assert gc.get_freeze_count() == 0
    assert not gc_freeze.installed()
    gc.collect()
    assert gc.get_freeze_count() == 0


async def test_servers_of_one_process_share_the_collection_hook_until_the_last_closes(make_proxy, make_pods,
                                                                                        unfreezing):
    """gc.callbacks is the process's: closing one freezing server leaves the hook to another still serving (what
    survives a full collection is still frozen), and the last one to close removes it."""
    first = await make_proxy(freeze_gc=True)
    second = await make_proxy(freeze_gc=True)
    [pod] = await make_pods("web")
    for proxy in (first, second):
        proxy.publish([Rule("example.com", "/", "default/web:80")], [cluster("default/web:80", [pod.endpoint])])
    assert gc.callbacks.count(gc_freeze.after_collection) == 1

    await first.server.close()
    survivor = [[]]  # made after the publishes' freezes: young, until a full collection freezes it
    assert tracked(survivor)
    gc.collect()
    assert not tracked(survivor)
    assert (await _get(second.port, "/echo")).status == 200

    await second.server.close()
    assert not gc_freeze.installed()
    alive = [[]]
    gc.collect()
    assert tracked(alive)


async def _get(port: int, path: str):
    reader, writer = await connect(port)
    try:
        writer.write(encode_request(path))
        return await read_response(reader)
    finally:
        writer.close()
