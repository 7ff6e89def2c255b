"""Compiled and pure-Python modes (issue #14): the same process serves either way, says which at startup and in
pyngress_build_info, and PYNGRESS_NO_EXTENSIONS=1 loads every hot-path module from its .py even where a compiled
module is installed (CI's compiled run, after scripts/build-inplace, sets PYNGRESS_EXPECT_MODE=compiled so a build
that silently fell back to pure Python fails here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_harness import INGRESS_CLASS, ROOT, ingress, metric, service
from proxy import extensions

HOST = "modes.example.test"
EXPECTED = os.environ.get("PYNGRESS_EXPECT_MODE", "")


def loaded_from(env: dict[str, str]) -> dict[str, str]:
    """Each hot-path module's file, as a fresh interpreter imports it with `env`."""
    code = ("import json, importlib; from proxy import extensions; "
            "print(json.dumps({n: importlib.import_module(n).__file__ for n in extensions.COMPILED}))")
    base = {k: v for k, v in os.environ.items() if k not in ("PYNGRESS_NO_EXTENSIONS",)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_every_listed_module_is_a_source_file():
    """setup.py compiles the .py of each name; the fallback needs that .py beside the compiled module."""
    for name in extensions.COMPILED:
        assert (ROOT / Path(*name.split("."))).with_suffix(".py").is_file(), name


def test_no_extensions_loads_every_hot_path_module_from_source():
    files = loaded_from({"PYNGRESS_NO_EXTENSIONS": "1"})
    assert files and all(path.endswith(".py") for path in files.values()), files
    default = loaded_from({})
    compiled = [name for name, path in default.items() if not path.endswith(".py")]
    if EXPECTED == "compiled":
        assert compiled == list(extensions.COMPILED)
    elif EXPECTED == "pure-python":
        assert compiled == []
    # "0" and "" mean: not asked for.
    assert loaded_from({"PYNGRESS_NO_EXTENSIONS": "0"}) == default


def test_each_hot_path_module_imports_first():
    """Compiled modules that cimport another's extension type import that module at their own start (record
    imports exchange, which imports record): each must import first in a fresh interpreter, in this tree's mode."""
    base = {k: v for k, v in os.environ.items() if k != "PYNGRESS_NO_EXTENSIONS"}
    code = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
            "from proxy import extensions; print(extensions.is_compiled(sys.modules[sys.argv[1]]))")
    for name in extensions.COMPILED:
        done = subprocess.run([sys.executable, "-c", code, name], cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, (name, done.stderr[-2000:])
        if EXPECTED == "compiled":
            assert done.stdout.strip() == "True", name


@pytest.mark.parametrize("forced", [False, True], ids=["default", "no-extensions"])
async def test_the_process_says_its_mode_and_serves(echo_pods, manifests, tmp_path, forced):
    [pod] = await echo_pods.replicas(("modes-1", "127.0.0.2"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("svc.yaml", service("modes", pods=[pod]))
    manifests.write("ingress.yaml", ingress("modes", host=HOST, paths=[("/", "Prefix", "modes", 80)]))
    from e2e_harness import start_pyngress

    env = {"PYNGRESS_NO_EXTENSIONS": "1" if forced else ""}
    proc = await start_pyngress(manifests.path, log_path=tmp_path / "pyngress.log", env=env)
    try:
        status, body = await proc.request("/x", host=HOST)
        assert status == 200 and body["pod"] == "modes-1"
        expected = "pure-python" if forced else EXPECTED
        lines = [line for line in proc.log().splitlines() if "hot path: " in line]
        assert len(lines) == 1, proc.log()
        _, text = await proc.admin_get("/metrics")
        mode = next(m for m in ("compiled", "pure-python") if f'mode="{m}"' in text)
        assert metric(text, "pyngress_build_info", mode=mode) == 1
        assert f"hot path: {mode}" in lines[0]
        if expected:
            assert mode == expected
    finally:
        await proc.close()
