"""Which modules `pip install .` compiles (Cython, pure-Python mode: the same `.py` files), and which mode runs.

The list is read by setup.py (as a file, before the package is installed), so this module imports only the
standard library. `PYNGRESS_NO_EXTENSIONS=1` forces pure Python (as aiohttp's `AIOHTTP_NO_EXTENSIONS`): an import
hook installed by `proxy/__init__.py` loads the `.py` beside a compiled module instead of the extension, so one
installed wheel can run either way (CI runs the hot-path tests in both modes).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

# The request path: the HTTP/1.1 protocol and writer, the exchange and pipeline, heads and header handling, the
# upstream pool and connections, route lookup, the per-request stats and access log, and tracing's byte work.
COMPILED: tuple[str, ...] = (
    "proxy.http.downstream",
    "proxy.http.h1_connection",
    "proxy.http.response_writer",
    "proxy.http.h1_writer",
    "proxy.http.h1_response",
    "proxy.http.exchange",
    "proxy.http.raw_body",
    "proxy.http.pipeline",
    "proxy.http.head",
    "proxy.http.request_fields",
    "proxy.http.headers",
    "proxy.http.fields",
    "proxy.http.response_head",
    "proxy.http.record",
    "proxy.http.forwarded",
    "proxy.http.deadlines",
    "proxy.http.ids",
    "proxy.upstream.connection",
    "proxy.upstream.pool",
    "proxy.upstream.balancer",
    "proxy.routing.table",
    "proxy.routing.paths",
    "proxy.routing.request",
    "proxy.stats",
    "proxy.accesslog",
    # Tracing: trace context parsing, and the span encoding (the exporter thread's, which holds the GIL).
    "proxy.tracing.context",
    "proxy.tracing.otlp",
)

COMPILED_MODE = "compiled"
PURE_MODE = "pure-python"


def disabled(environ: dict[str, str] | None = None) -> bool:
    """True when PYNGRESS_NO_EXTENSIONS asks for pure Python (any value but empty or "0")."""
    value = (os.environ if environ is None else environ).get("PYNGRESS_NO_EXTENSIONS", "")
    return value not in ("", "0")


class SourceOnlyFinder:
    """A meta path finder that answers for our modules with the `.py` file where an extension would load."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
                  ) -> ModuleSpec | None:
        if not fullname.startswith("proxy."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return spec
        source = os.path.join(os.path.dirname(origin), fullname.rpartition(".")[2] + ".py")
        if not os.path.exists(source):
            return spec
        return importlib.util.spec_from_file_location(fullname, source)


def force_pure_python() -> None:
    """Install the source-only finder (once), ahead of the standard path finder."""
    if not any(isinstance(finder, SourceOnlyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceOnlyFinder())


def is_compiled(module: ModuleType) -> bool:
    return (getattr(module, "__file__", None) or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_modules() -> list[str]:
    """The hot-path modules that run compiled (importing them)."""
    return [name for name in COMPILED if is_compiled(importlib.import_module(name))]


def mode() -> str:
    """`compiled` when any hot-path module runs compiled, else `pure-python`."""
    return COMPILED_MODE if compiled_modules() else PURE_MODE


def describe() -> str:
    """For the startup log line: the mode and, when compiled, how many of the hot-path modules are."""
    compiled = compiled_modules()
    if not compiled:
        reason = " (PYNGRESS_NO_EXTENSIONS)" if disabled() else ""
        return f"{PURE_MODE}{reason}"
    return f"{COMPILED_MODE} ({len(compiled)} of {len(COMPILED)} hot-path modules)"
