"""Several serving processes behind one control plane (`--workers N`).

Python runs one request at a time per process, so more cores need more processes. The
`pyngress` process becomes the *control process*: it keeps the admin port, the object source
(manifest files, or the cluster watch with leader election, status and Events: one watcher per
pod) and its own cache and controller (whose warnings and runtime feed Events, the status
writer and /debug/routes), and serves no traffic. It starts N *worker processes* (fresh
interpreters, `python -m proxy.workers`; never a fork of a running event loop), each with its
own cache, controller and proxy listeners bound with SO_REUSEPORT to the same ports, so the
kernel spreads connections among them.

Writes to a worker never wait: they are buffered by the transport, and a worker that has not
answered a ping for `stall_timeout` (20 s) is killed; before it listens, for `start_timeout` (120 s: a
start slowed by a busy or CPU-limited node is waited for, not begun again). A worker that exits is started again with
backoff (and gets the whole cache again). Workers exit when the control process goes away
(EOF on the socket, and the parent-death signal on Linux).

Ephemeral ports (0) are made concrete once: the control process binds a SO_REUSEPORT socket
without listening on it (it holds the port and receives no connections) and hands the port to
every worker, also to restarted ones.

    channel.py     the messages between the two processes and their wire format
    pool.py        WorkerPool: starts, supervises and restarts the workers, relays the cache to them
    collector.py   CPU, memory and per-worker figures for /metrics
    procfs.py      a process's CPU time and resident memory, from /proc
    control.py     serve_workers: the control process
    worker.py      run_worker: a worker process (`__main__.py` is its command line)

This package's own import stays empty: a worker process imports only what a worker runs.
"""
