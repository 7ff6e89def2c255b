"""Every field a compiled class has in its `.py` (`__slots__`) is declared in the `.pxd` beside it, and no more.

A compiled class (an extension type, proxy/extensions.py) has exactly the fields its `.pxd` declares: a slot added
to the `.py` and not to the `.pxd` works in pure Python and fails with AttributeError once compiled. This checks
the pairs without compiling anything, so the pure-Python run catches it (the .py classes: not part of the compiled
run, scripts/test-compiled).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from proxy import extensions

ROOT = Path(__file__).resolve().parents[2]
_CLASS = re.compile(r"^cdef class (\w+)(?:\((?:[\w.]+\.)?(\w+)\))?")
# (a C array field, `cdef long long counts[12]`, is one field)
_FIELD = re.compile(r"^\s+cdef (?:public |readonly )?(?:(?:unsigned|signed|long|short) )*[\w.\[\]]+ ([\w, ]+?)"
                    r"(?:\[\d+\])?$")


def _declared(pxd: Path) -> dict[str, tuple[str | None, set[str]]]:
    """class name → (its cdef base class name, the fields it declares itself)."""
    classes: dict[str, tuple[str | None, set[str]]] = {}
    current: set[str] | None = None
    for line in pxd.read_text().splitlines():
        line = line.partition("#")[0].rstrip()
        if match := _CLASS.match(line):
            current = set()
            classes[match.group(1)] = (match.group(2), current)
        elif line and not line[0].isspace():
            current = None
        elif current is not None and (match := _FIELD.match(line)) and "(" not in line:
            current.update(name.strip() for name in match.group(1).split(","))
    return classes


def _all_declared() -> dict[str, tuple[str | None, set[str]]]:
    found: dict[str, tuple[str | None, set[str]]] = {}
    for _, pxd in PAIRS:
        if pxd.exists():
            found.update(_declared(pxd))
    return found


def _slots(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in klass.__dict__.get("__slots__", ())}


PAIRS = [(name, ROOT / (name.replace(".", "/") + ".pxd")) for name in extensions.COMPILED]


WITH_CLASSES = [(module, pxd) for module, pxd in PAIRS if pxd.exists() and _declared(pxd)]


@pytest.mark.parametrize(("module", "pxd"), WITH_CLASSES, ids=[module for module, _ in WITH_CLASSES])
def test_compiled_classes_declare_their_slots(module: str, pxd: Path) -> None:
    loaded = importlib.import_module(module)
    if extensions.is_compiled(loaded):
        pytest.skip(f"{module} runs compiled here: its classes have no __slots__ to compare (run pure-Python)")
    declared = _declared(pxd)
    every = _all_declared()
    for name in declared:
        cls = getattr(loaded, name)
        fields: set[str] = set()
        base: str | None = name
        while base is not None and base in every:
            base, own_fields = every[base]
            fields |= own_fields
        own = _slots(cls)
        # A slot-less base may declare a field its Python subclasses' slots hold (FlatFields.fields): annotated.
        annotated = {field for klass in cls.__mro__ for field in inspect.get_annotations(klass)}
        fields -= annotated - own
        assert own == fields, (f"{module}.{name}: slots not in {pxd.name}: {sorted(own - fields)}; "
                               f"declared but not slots: {sorted(fields - own)}")
