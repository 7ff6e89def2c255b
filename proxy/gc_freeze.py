"""The collector hook of the GC freeze (ProxyServer(freeze_gc=True)): what survives a full collection is frozen.

`gc.callbacks` belongs to the process, and several servers may run in one (the tests do): they share one hook,
added when the first server freezes and removed when the last of them closes (`hold` and `release` count the
servers), so that closing one server never turns the freeze off under another still serving.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

# id() of each server holding the hook (an id, not the server: a set here keeps nothing alive).
_holders: set[int] = set()


def after_collection(phase: str, info: Mapping[str, int]) -> None:
    """After every full collection, freeze what survived it (a gc callback, from a server's first freeze on).

    Objects made after the last publish are the open connections, mostly: every full collection walked all
    of them again (15-40 ms of CPU with 5,000 idle keep-alive connections, bench/tail.py; more with
    more), a stall of the loop whenever enough new objects had survived to trigger one. A full
    collection has just freed every cycle, so what is left is alive and safe to freeze; the next full
    collection walks only what was made since."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def hold(owner: object) -> None:
    """`owner` (a server) wants the hook: installed unless it already is (a second hold by the same owner counts
    once)."""
    _holders.add(id(owner))
    if after_collection not in gc.callbacks:
        gc.callbacks.append(after_collection)


def release(owner: object) -> None:
    """`owner` is done with the hook (closed; one that never held it changes nothing): removed with the last."""
    if id(owner) not in _holders:
        return
    _holders.discard(id(owner))
    if not _holders and after_collection in gc.callbacks:
        gc.callbacks.remove(after_collection)


def installed() -> bool:
    """Whether the hook is in gc.callbacks."""
    return after_collection in gc.callbacks
