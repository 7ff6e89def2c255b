"""The messages between the control process and a worker, and their wire format.

The control process talks to each worker over a Unix socket pair, in length-prefixed pickles
(both ends are this program; the socket is private to the two processes)::

    control -> worker   ("init", {...})            settings (with the concrete ports), worker index
                        cache operations             the whole cache at (re)start, then every write,
                                                     in order (ObjectCache.observe / perform)
                        ("ping", seq, None)          each second: a worker that stops answering
                                                     (stopped, hung, not reading) is killed
                        ("traffic", id, None)        asks for the worker's traffic snapshot
                        ("health", key, changes)     active health verdicts of one cluster (endpoint ->
                                                     healthy; None: forget the cluster), the current
                                                     ones after the cache at (re)start, then each change
                        ("stop", None, None)         drain and exit (beside SIGTERM)
    worker -> control   ("listening", http, https)   listeners bound, serving its first configuration
                        ("generation", n, None)      each configuration it publishes
                        ("pong", seq, unbound)       unbound: Gateway listener ports it could not
                                                     open (yet); a worker is ready only with none
                        ("traffic", id, snapshot)
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

from proxy.kube.cache import APPLY, REPLACE, SYNCED

_HEADER = struct.Struct("!I")
# The tags of cache operations: a worker applies them to its cache as they come.
CACHE_OPERATIONS = frozenset({REPLACE, APPLY, SYNCED})


def frame(message: tuple[Any, ...]) -> bytes:
    """One message as written to the socket: a 4-byte length, then the pickle."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def receive(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next message; raises asyncio.IncompleteReadError at the end of the stream."""
    header = await reader.readexactly(_HEADER.size)
    (size,) = _HEADER.unpack(header)
    message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
    return message
