"""Checks too slow for the event loop (a bcrypt password of basic auth), run on a small thread pool.

A filter answers with `Answer.check` (routing.filters); the pipeline submits it here and goes on with
the request when it is done. The pool is small (`WORKERS`, the event loop keeps a core) and its queue
bounded (`QUEUE_LIMIT`): beyond it a request is answered 503 at once rather than piling up work a
flood of wrong passwords would make (successful checks are remembered by the filter, failures are not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Threads checking at once: bcrypt releases the GIL, so two use two cores while the loop keeps serving.
WORKERS = 2
# Checks queued or running at once, beyond which new ones are refused (a client gets 503).
QUEUE_LIMIT = 256


class CheckPool:
    """A bounded thread pool for `Answer.check` callables, with a bounded queue."""

    __slots__ = ("_executor", "pending", "limit", "workers", "refused_total", "checked_total")

    def __init__(self, *, workers: int = WORKERS, limit: int = QUEUE_LIMIT) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self.workers = workers
        self.limit = limit
        self.pending = 0
        self.refused_total = 0
        self.checked_total = 0

    def submit(self, check: Callable[[], bool]) -> asyncio.Future[bool] | None:
        """Run `check` on the pool; None when the queue is full (the caller answers 503)."""
        if self.pending >= self.limit:
            self.refused_total += 1
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="pyngress-check")
        self.pending += 1
        future = asyncio.get_running_loop().run_in_executor(self._executor, check)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: asyncio.Future[bool]) -> None:
        self.pending -= 1
        self.checked_total += 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# The process's pool (one per process: worker processes have their own).
POOL = CheckPool()

__all__ = ["POOL", "QUEUE_LIMIT", "WORKERS", "CheckPool"]
