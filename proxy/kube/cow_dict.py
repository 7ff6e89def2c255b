"""The copy-on-write dict behind each kind of the object cache, so that a snapshot is O(1) and never changes.

The cache writes a kind in place until a snapshot hands out a read-only view of it (`freeze()`); the next
write copies it first (`writable()`). A reader keeps its view unchanged, however many writes follow.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from types import MappingProxyType
from typing import Any


class CowDict:
    """A dict shared with snapshots: written in place until a snapshot sees it, copied on the next write."""

    __slots__ = ("data", "shared", "view")

    def __init__(self) -> None:
        self.data: dict[Hashable, Any] = {}
        self.shared = False
        self.view: Mapping[Hashable, Any] = MappingProxyType(self.data)

    def writable(self) -> dict[Hashable, Any]:
        if self.shared:
            self.data = dict(self.data)
            self.view = MappingProxyType(self.data)
            self.shared = False
        return self.data

    def reset(self, data: dict[Hashable, Any]) -> None:
        self.data = data
        self.view = MappingProxyType(data)
        self.shared = False

    def freeze(self) -> Mapping[Any, Any]:
        self.shared = True
        return self.view
