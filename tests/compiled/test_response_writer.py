"""Both writers a response reaches a client through derive from the one typed base (proxy/http/response_writer.py)
and override every method it declares: compiled, the exchange calls head/body/end/flush through the base's C
table, and a method left to the base would raise NotImplementedError only on that protocol's path. (The HTTP/1.1
and HTTP/2 suites run both writers end to end, in both modes: scripts/test-compiled.)"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from proxy import extensions
from proxy.http import response_writer
from proxy.http.h1_writer import H1Writer
from proxy.http.response_writer import ResponseWriter
from proxy.http2.stream import H2Writer

ROOT = Path(__file__).resolve().parents[2]
_METHODS = ("head", "body", "end", "flush", "interim", "switching", "end_with_trailers", "answer", "grpc_answer", "raw")


@pytest.mark.parametrize("writer", [H1Writer, H2Writer], ids=["H1Writer", "H2Writer"])
def test_writers_override_every_method_of_the_base(writer: type[ResponseWriter]) -> None:
    assert issubclass(writer, ResponseWriter)
    for name in _METHODS:
        assert getattr(writer, name) is not getattr(ResponseWriter, name), f"{writer.__name__}.{name} not overridden"


def test_cpdef_methods_are_methods_of_the_base() -> None:
    """The .pxd's cpdef declarations name methods the base defines (with the same parameters, `self` first)."""
    declared = re.findall(r"^\s+cpdef (\w+)\((.*)\)$", (ROOT / "proxy/http/response_writer.pxd").read_text(), re.M)
    assert {name for name, _ in declared} == {"head", "body", "end", "flush"}
    if extensions.is_compiled(response_writer):
        pytest.skip("compiled here: the base's methods have no Python signature to compare (run pure-Python)")
    for name, parameters in declared:
        signature = inspect.signature(getattr(ResponseWriter, name))
        assert [p.strip() for p in parameters.split(",")] == list(signature.parameters)
