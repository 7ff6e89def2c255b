"""The health of cluster mode's watch, per kind: synced, connected, served, failing, counters.

`WatchStatus` is written by the watch loops (proxy.kube.watch) and read while they run: by metrics,
/readyz, the logs (one line when an outage starts, one when it ends) and tests, which wait on
`wait_synced()` rather than sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger("pyngress.watch")


@dataclass(slots=True)
class KindStatus:
    """The health of one kind's watch, read by metrics, /readyz logic and tests."""

    kind: str
    synced: bool = False  # the first LIST has been applied (or the kind is not served: none exist)
    connected: bool = False  # a watch stream is open
    served: bool = True  # False while discovery finds the kind not served (it is not watched then)
    api_version: str = ""  # the version watched, for a kind found by discovery
    resource_version: str = ""
    consecutive_failures: int = 0
    errors_total: int = 0
    relists_total: int = 0  # LISTs after the first (410 Expired)
    events_total: int = 0  # ADDED/MODIFIED/DELETED applied
    bookmarks_total: int = 0
    last_error: str = ""
    last_error_time: float = 0.0  # time.time()

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


@dataclass(slots=True)
class WatchStatus:
    """Per-kind watch health, shared with the CLI (metrics, logs) while the watch runs."""

    kinds: dict[str, KindStatus] = field(default_factory=dict)
    # monotonic time the first kind started failing in the current outage (0: not failing)
    failing_since: float = 0.0
    _synced: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False, compare=False)

    @classmethod
    def for_kinds(cls, kinds: Iterable[str]) -> WatchStatus:
        return cls(kinds={kind: KindStatus(kind) for kind in kinds})

    @property
    def synced(self) -> bool:
        return bool(self.kinds) and all(k.synced for k in self.kinds.values())

    @property
    def failing(self) -> bool:
        """True while any kind cannot reach the API server (the last good table keeps serving)."""
        return any(k.failing for k in self.kinds.values())

    @property
    def errors_total(self) -> int:
        return sum(k.errors_total for k in self.kinds.values())

    def failing_kinds(self) -> list[str]:
        return [k.kind for k in self.kinds.values() if k.failing]

    async def wait_synced(self) -> None:
        """Return once every kind's first LIST has been applied."""
        await self._synced.wait()

    def mark_synced(self, kind: str) -> None:
        self.kinds[kind].synced = True
        if self.synced:
            self._synced.set()

    def mark_served(self, kind: str, api_version: str) -> None:
        """Discovery found `kind` served: its loop starts, and it is synced once that lists."""
        state = self.kinds[kind]
        state.served, state.synced, state.api_version, state.resource_version = True, False, api_version, ""

    def mark_unserved(self, kind: str) -> None:
        """Discovery found `kind` not served: nothing to list (none exist), nothing failing."""
        state = self.kinds[kind]
        state.served, state.synced, state.connected = False, True, False
        state.api_version = state.resource_version = ""
        if state.consecutive_failures:
            state.consecutive_failures = 0
            if not self.failing:
                self.failing_since = 0.0
        if self.synced:
            self._synced.set()

    def record_failure(self, kind: str, error: str) -> None:
        """Count one failed request of `kind`; the first failure of an outage is logged (once, not per retry)."""
        state = self.kinds[kind]
        healthy = not self.failing
        state.consecutive_failures += 1
        state.errors_total += 1
        state.last_error = error
        state.last_error_time = time.time()
        if healthy:
            self.failing_since = time.monotonic()
            log.warning("watch of %s failing: %s; serving the last good configuration and retrying with backoff",
                        kind, error)

    def record_success(self, kind: str) -> None:
        """`kind` reached the API server again; the end of an outage (no kind failing) is logged once."""
        state = self.kinds[kind]
        if not state.consecutive_failures:
            return
        state.consecutive_failures = 0
        if not self.failing:
            log.warning("watch recovered after %.1f s: following the API server again",
                        time.monotonic() - self.failing_since)
            self.failing_since = 0.0
