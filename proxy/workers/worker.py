"""A worker process: its own cache (fed by the control process over the socket), controller and
listeners, in the one application sequence with no control plane of its own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

from proxy.lifecycle.application import Application, Serving
from proxy.lifecycle.listeners import Listeners
from proxy.lifecycle.process import EXIT_FAILED, Signals, configure_logging, loop_factory, new_cache
from proxy.settings import Settings
from proxy.workers.channel import CACHE_OPERATIONS, frame, receive

if TYPE_CHECKING:
    from proxy.kube.cache import ObjectCache
    from proxy.runtime import RuntimeHolder
    from proxy.server import ProxyServer
    from proxy.upstream.health import HealthVerdicts

log = logging.getLogger("pyngress.workers")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class _Reporter:
    """The worker's end of the socket: writes never wait (the control process reads all the time)."""

    __slots__ = ("writer",)

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def send(self, tag: str, first: Any = None, second: Any = None) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame((tag, first, second)))

    def listening(self, serving: Serving) -> None:
        """A worker's announcement: to the control process, which owns stdout's listening line."""
        self.send("listening", serving.http_port, serving.https_port)


async def run_worker(fd: int) -> int:
    """One worker: cache fed by the control process, controller, HTTP and HTTPS listeners; until a signal
    or the end of the socket. Returns the exit status."""
    from proxy.controller import Controller
    from proxy.runtime import RuntimeHolder
    from proxy.server import ProxyServer

    signals = Signals()
    signals.install(asyncio.get_running_loop())
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
    try:
        tag, init, _ = await receive(reader)
    except asyncio.IncompleteReadError:
        return EXIT_FAILED  # the control process went away before saying anything
    if tag != "init":
        raise RuntimeError(f"worker: expected init, got {tag!r}")
    settings: Settings = init["settings"]
    index: int = init["index"]
    configure_logging(settings.log_level, process=f"worker-{index}")
    reporter = _Reporter(writer)
    holder = RuntimeHolder()
    cache = new_cache(settings)
    # The control process probes endpoints' health and relays its verdicts: a worker only applies them.
    controller = Controller(cache=cache, settings=settings, holder=holder, generated=init.get("generated"),
                            probe=False, ticket_keys=init.get("ticket_keys"))
    server = ProxyServer(settings=settings, holder=holder, freeze_gc=True)
    application = Application(
        settings=settings, signals=signals, controller=controller,
        serving=Listeners(server, holder=holder, controller=controller), announce=reporter.listening,
        background=[("control channel", _follow(reader, cache=cache, server=server, reporter=reporter,
                                                signals=signals, health=controller.health)),
                    ("generations", _report_generations(holder, reporter))])
    try:
        return await application.run()
    finally:
        writer.close()


async def _follow(reader: asyncio.StreamReader, *, cache: ObjectCache, server: ProxyServer, reporter: _Reporter,
                  signals: Signals, health: HealthVerdicts) -> None:
    """Apply the control process's messages until its end of the socket closes, then ask for a stop."""
    try:
        while True:
            message = await receive(reader)
            tag = message[0]
            if tag in CACHE_OPERATIONS:
                cache.perform(message)
            elif tag == "health":
                health.apply(message[1], message[2])
            elif tag == "ping":
                reporter.send("pong", message[1], len(server.unbound_ports()))
            elif tag == "traffic":
                reporter.send("traffic", message[1], server.traffic.snapshot())
            elif tag == "stop":
                signals.request_stop()
    except (asyncio.IncompleteReadError, ConnectionError):
        if not signals.stop.is_set():
            log.info("control process gone: shutting down")
            signals.request_stop()
        await asyncio.Event().wait()  # not a failure: the stop above ends the worker


async def _report_generations(holder: RuntimeHolder, reporter: _Reporter) -> None:
    generation = 0
    while True:
        runtime = await holder.wait_for(generation + 1, timeout=float("inf"))
        generation = runtime.generation
        reporter.send("generation", generation)


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when the control process dies (Linux), and exit if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        sys.exit(EXIT_FAILED)


def worker_main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process (`python -m proxy.workers --fd N --parent PID`)."""
    parser = argparse.ArgumentParser(prog="pyngress-worker", description="A pyngress worker process; started by "
                                     "`pyngress --workers N`, not by hand.")
    parser.add_argument("--fd", type=int, required=True, help="socket to the control process")
    parser.add_argument("--parent", type=int, required=True, help="pid of the control process")
    args = parser.parse_args(argv)
    # Until the event loop's handlers are installed a SIGTERM would kill the process mid-start; the
    # control process also says "stop" over the socket, which is read once the loop runs.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(args.parent)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(run_worker(args.fd))
