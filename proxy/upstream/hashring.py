"""Consistent hashing: a ring of virtual nodes, so a request key keeps reaching the same endpoint.

Each endpoint owns VIRTUAL_NODES points on a 64-bit ring (a hash of its address, port and point
number); a key goes to the owner of the first point at or after the key's own hash. When an endpoint
leaves, only the keys it owned move (to the next points' owners); when one joins, it takes about
1/N of the keys, each from the endpoint that owned that arc. The hashes are BLAKE2b (not Python's
`hash()`, which differs between processes): every worker and every replica maps a key the same way.

Points are computed once per endpoint and kept while it stays, so a change of the endpoint set
costs a merge of sorted lists, not N x VIRTUAL_NODES new hashes.
"""

from __future__ import annotations

import bisect
import random
from hashlib import blake2b

from proxy.routing.model import Endpoint
from proxy.upstream.pool import EndpointPool

# Points per endpoint: more points spread keys more evenly (the standard deviation of an endpoint's share
# falls with the square root) at the cost of memory and build time; 100 keeps each share within ~10%.
VIRTUAL_NODES = 100

_random = random.random


def key_hash(key: bytes) -> int:
    """The ring position of a request key."""
    return int.from_bytes(blake2b(key, digest_size=8).digest(), "big")


def _points(endpoint: Endpoint) -> tuple[int, ...]:
    name = f"{endpoint.address}:{endpoint.port}#".encode()
    return tuple(int.from_bytes(blake2b(name + b"%d" % i, digest_size=8).digest(), "big")
                 for i in range(VIRTUAL_NODES))


class ConsistentHash:
    """A ring over the cluster's pools; `pick` needs the request's key (None: a random endpoint, as Envoy does
    for a request without the hashed value). A retry takes the next endpoint along the ring that is not
    the one that failed."""

    __slots__ = ("pools", "points", "owners", "_cache")
    reports_success = False
    needs_key = True

    def __init__(self) -> None:
        self.pools: tuple[EndpointPool, ...] = ()
        self.points: list[int] = []
        self.owners: list[EndpointPool] = []
        self._cache: dict[Endpoint, tuple[int, ...]] = {}

    def update(self, pools: tuple[EndpointPool, ...]) -> None:
        cache = self._cache
        fresh: dict[Endpoint, tuple[int, ...]] = {}
        ring: list[tuple[int, int]] = []
        for position, pool in enumerate(pools):
            endpoint = pool.endpoint
            points = cache.get(endpoint) or fresh.get(endpoint) or _points(endpoint)
            fresh[endpoint] = points
            ring += [(point, position) for point in points]
        ring.sort()
        # Endpoints that left are forgotten, but ejected ones come back soon: keep a bounded cache.
        if len(cache) > 4 * len(fresh) + 64:
            cache = {}
        cache.update(fresh)
        self._cache = cache
        self.pools = pools
        self.points = [point for point, _ in ring]
        self.owners = [pools[position] for _, position in ring]

    def pick(self, previous: EndpointPool | None = None, key: bytes | None = None) -> EndpointPool | None:
        pools = self.pools
        if not pools:
            return None
        if key is None:
            count = len(pools)
            skip = previous.index if previous is not None else -1
            if skip < 0 or skip >= count or pools[skip] is not previous or count == 1:
                return pools[int(_random() * count)]
            index = int(_random() * (count - 1))
            return pools[index + 1 if index >= skip else index]
        points = self.points
        index = bisect.bisect_left(points, key_hash(key))
        if index == len(points):
            index = 0
        owners = self.owners
        owner = owners[index]
        if previous is None or owner is not previous or len(pools) == 1:
            return owner
        count = len(owners)
        for step in range(1, count):
            owner = owners[(index + step) % count]
            if owner is not previous:
                return owner
        return owner

    def report(self, pool: EndpointPool, ok: bool, latency: float = -1.0) -> None:
        pass


__all__ = ["VIRTUAL_NODES", "ConsistentHash", "key_hash"]
