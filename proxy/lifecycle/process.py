"""What every pyngress process sets up before its application runs: exit statuses, signal
handling, log format, the event loop and an empty object cache."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.kube.cache import ObjectCache
    from proxy.settings import Settings

log = logging.getLogger("pyngress")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class Signals:
    """First SIGTERM/SIGINT asks for a graceful stop, a second one for an immediate exit."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.signalled = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._received, sig)

    def request_stop(self) -> None:
        """A graceful stop asked for otherwise than by a signal (a worker's control process); a
        signal after it is still the first one, not a reason to cut the drain."""
        self.stop.set()

    def _received(self, sig: signal.Signals) -> None:
        if self.signalled:
            log.warning("second %s: exiting now", sig.name)
            self.force.set()
        else:
            log.info("%s received: shutting down", sig.name)
            self.signalled = True
            self.stop.set()


def configure_logging(level: str, *, process: str = "") -> None:
    """Plain lines on stderr: time, level, [process,] logger, message (`process` names a worker)."""
    handler = logging.StreamHandler(sys.stderr)
    tag = f"{process} " if process else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (the proxy works without it, slower)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def new_cache(settings: Settings) -> ObjectCache:
    """An empty object cache for `settings` (the default certificate's Secret matters unreferenced)."""
    from proxy.kube.cache import ObjectCache

    relevant = set()
    if settings.default_ssl_certificate:
        namespace, name = settings.default_ssl_certificate.split("/", 1)
        relevant.add((namespace, name))
    namespace, slash, name = settings.configmap.partition("/")
    return ObjectCache(relevant_secrets=relevant, controller_config_map=(namespace, name) if slash else None)
