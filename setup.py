"""Builds the request-path modules listed in proxy/extensions.py with Cython (pure-Python mode: the same .py
files, typed by their annotations and the .pxd files beside them) when Cython and a C compiler are there.

Every failure falls back silently to pure Python, for all of the modules (they use each other's extension types).
Editable installs (`pip install -e .`, what scripts/venv does) compile nothing, so an edited .py is what runs;
`scripts/build-inplace` compiles into the tree on purpose (CI's compiled run) and `--clean` removes it again.
PYNGRESS_NO_EXTENSIONS=1 at build time skips compilation too.

proxy/tls/_native.pyx (the native TLS transport, `--tls-transport native`) is built alongside but on its own: it
uses none of the hot path's types, so its failure leaves it out alone (the flag then falls back to asyncio). It
declares the few OpenSSL prototypes it calls itself (no libssl-dev needed) and links the libssl/libcrypto files
that the `_ssl` module of the building Python loads.
"""

from __future__ import annotations

import os
import runpy
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_HERE = os.path.dirname(os.path.abspath(__file__))


def _module_names() -> tuple[str, ...]:
    return runpy.run_path(os.path.join(_HERE, "proxy", "extensions.py"))["COMPILED"]  # type: ignore[no-any-return]


def _source(name: str) -> str:
    return os.path.join(*name.split(".")) + ".py"


NATIVE_TLS = "proxy.tls._native"


def _openssl_libraries() -> list[str]:
    """Linker arguments naming the exact libssl and libcrypto files `_ssl` loads (`-l:libssl.so.3`), so the
    native transport shares the OpenSSL (and its SSL_CTX objects) of the `ssl` module; none found: the usual names."""
    found: dict[str, str] = {}
    try:
        import ssl  # noqa: F401 - loads _ssl and its libraries into this process

        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                name = os.path.basename(path)
                for lib in ("libssl.so", "libcrypto.so"):
                    if name.startswith(lib):
                        found.setdefault(lib, path)
    except OSError:
        pass
    if len(found) != 2:
        return ["-lssl", "-lcrypto"]
    return [f"-L{os.path.dirname(found[lib])}" for lib in found] + [f"-l:{os.path.basename(found[lib])}"
                                                                     for lib in found]


def _extensions() -> list[Extension]:
    hot = [Extension(name, [_source(name)]) for name in _module_names()]
    native = Extension(NATIVE_TLS, [os.path.join("proxy", "tls", "_native.pyx")],
                       extra_link_args=_openssl_libraries())
    return [*hot, native]


def _say(message: str) -> None:
    print(f"pyngress: {message}", file=sys.stderr)


class OptionalCythonBuild(build_ext):
    """build_ext that cythonizes at run time and never fails the install."""

    def run(self) -> None:
        skip = None
        if os.environ.get("PYNGRESS_NO_EXTENSIONS", "") not in ("", "0"):
            skip = "PYNGRESS_NO_EXTENSIONS is set"
        elif getattr(self, "editable_mode", False) and not os.environ.get("PYNGRESS_BUILD_INPLACE"):
            skip = "editable install (the .py files run; scripts/build-inplace compiles them)"
        if skip is None:
            try:
                from Cython.Build import cythonize
            except ImportError:
                skip = "Cython is not installed"
        if skip is not None:
            _say(f"not compiling the hot path: {skip}; pure Python")
            self.extensions = []
            return
        options = {"build_dir": os.path.join("build", "cython"), "compiler_directives": {"language_level": "3"},
                   "nthreads": os.cpu_count() or 1, "quiet": True}
        hot, native = _extensions()[:-1], _extensions()[-1]
        try:
            generated = cythonize(hot, **options)
        except Exception as error:  # noqa: BLE001 - any Cython failure means pure Python
            _say(f"not compiling the hot path: Cython failed ({error}); pure Python")
            self.extensions = []
            return
        try:
            generated += cythonize([native], **options)
        except Exception as error:  # noqa: BLE001 - the native TLS transport alone is left out
            _say(f"not compiling the native TLS transport: Cython failed ({error}); --tls-transport native falls "
                 "back")
            self.extensions = [ext for ext in self.extensions if ext.name != NATIVE_TLS]
        # Point the extensions setuptools prepared (finalize_options) at the generated C sources.
        sources = {ext.name: ext.sources for ext in generated}
        for ext in self.extensions:
            ext.sources = sources.get(ext.name, ext.sources)
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1
        self._failed: list[str] = []
        try:
            super().run()
        except Exception as error:  # noqa: BLE001 - no compiler, a compiler error: pure Python
            self._failed.append(str(error))
        native_failed = [problem for problem in self._failed if problem.startswith(NATIVE_TLS + ":")]
        if native_failed:
            _say(f"not compiling the native TLS transport: {native_failed[0]}; --tls-transport native falls back")
            self._failed = [problem for problem in self._failed if problem not in native_failed]
            path = self.get_ext_fullpath(NATIVE_TLS)
            if os.path.exists(path):
                os.remove(path)
        if self._failed:
            # All or nothing: the compiled modules use each other's extension types (the .pxd cimports), so one
            # left as Python would make the others fail to import.
            _say(f"not compiling the hot path: {'; '.join(self._failed)}; pure Python")
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    os.remove(path)
            self.extensions = []

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # noqa: BLE001 - reported (and everything left pure Python) by run()
            self._failed.append(f"{ext.name}: {error}")

    def get_outputs(self) -> list[str]:
        return [path for path in super().get_outputs() if os.path.exists(path)]


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalCythonBuild},
)
