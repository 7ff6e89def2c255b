"""The control process's /metrics figures that only it can see: CPU and memory over all its
processes, and how the workers share the connections."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from proxy.workers.procfs import cpu_seconds, resident_bytes

if TYPE_CHECKING:
    from proxy.metrics import Metric
    from proxy.workers.pool import WorkerPool


class WorkersCollector:
    """CPU and memory summed over the control process and its live workers, and how the workers share
    the connections (read at scrape time, after WorkerPool.gather)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        # prometheus_client is imported where used: a worker never needs it.
        from proxy.metrics import CounterMetricFamily, GaugeMetricFamily

        pids = [os.getpid(), *self.pool.pids()]
        yield CounterMetricFamily("process_cpu_seconds", "User and system CPU time of the control process and "
                                  "its workers, in seconds.", value=round(sum(cpu_seconds(pid) for pid in pids), 2))
        yield GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of the control process and its "
                                "workers, in bytes.", value=sum(resident_bytes(pid) for pid in pids))
        yield GaugeMetricFamily("pyngress_workers", "Worker processes alive.", value=len(pids) - 1)
        yield GaugeMetricFamily("pyngress_workers_ready", "Worker processes alive and serving a configuration.",
                                value=self.pool.ready)
        yield CounterMetricFamily("pyngress_worker_restarts", "Worker processes started again after exiting.",
                                  value=self.pool.restarts)
        accepted = CounterMetricFamily("pyngress_worker_connections", "Client connections accepted per worker "
                                       "(all listeners; counts restart with the worker).", labels=["worker"])
        for index, count in sorted(self.pool.connections().items()):
            accepted.add_metric([str(index)], count)
        yield accepted
        generation = GaugeMetricFamily("pyngress_worker_config_generation", "Generation of the configuration "
                                       "each worker serves (each counts its own builds).", labels=["worker"])
        for worker in sorted(self.pool.live(), key=lambda w: w.index):
            generation.add_metric([str(worker.index)], worker.generation)
        yield generation
