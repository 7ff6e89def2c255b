"""Builds the request-path modules listed in proxy/extensions.py with Cython (pure-Python mode: the same .py
files, typed by their annotations and the .pxd files beside them) when Cython and a C compiler are there.

Every failure falls back silently to pure Python, for all of the modules (they use each other's extension types).
Editable installs (`pip install -e .`, what scripts/venv does) compile nothing, so an edited .py is what runs;
`scripts/build-inplace` compiles into the tree on purpose (CI's compiled run) and `--clean` removes it again.
PYNGRESS_NO_EXTENSIONS=1 at build time skips compilation too.
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
        try:
            generated = cythonize(
                [Extension(name, [_source(name)]) for name in _module_names()],
                build_dir=os.path.join("build", "cython"),
                compiler_directives={"language_level": "3"},
                nthreads=os.cpu_count() or 1,
                quiet=True,
            )
        except Exception as error:  # noqa: BLE001 - any Cython failure means pure Python
            _say(f"not compiling the hot path: Cython failed ({error}); pure Python")
            self.extensions = []
            return
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
    ext_modules=[Extension(name, [_source(name)]) for name in _module_names()],
    cmdclass={"build_ext": OptionalCythonBuild},
)
