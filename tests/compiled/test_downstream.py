"""Both client sides an exchange forwards for derive from the one typed base (proxy/http/downstream.py) and override
every method it declares: compiled, the exchange calls block/unblock/exchange_finished through the base's C table on
an HTTP/1.1 connection, and a method left to the base would raise NotImplementedError only on that protocol's path.
(The HTTP/1.1 and HTTP/2 suites run both end to end, in both modes: scripts/test-compiled.)"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from proxy import extensions
from proxy.http import downstream
from proxy.http.downstream import Downstream
from proxy.http.h1_connection import ClientConnection
from proxy.http2.stream import H2Stream

ROOT = Path(__file__).resolve().parents[2]
_METHODS = ("client_certificate", "block", "unblock", "send_error", "exchange_finished", "client_timeout",
            "start_tunnel", "cut", "abort", "close")


@pytest.mark.parametrize("client", [ClientConnection, H2Stream], ids=["ClientConnection", "H2Stream"])
def test_client_sides_override_every_method_of_the_base(client: type[Downstream]) -> None:
    assert issubclass(client, Downstream)
    assert set(_METHODS) == {name for name, _ in inspect.getmembers(Downstream, callable)
                             if not name.startswith("__")}
    for name in _METHODS:
        assert getattr(client, name) is not getattr(Downstream, name), f"{client.__name__}.{name} not overridden"
    assert isinstance(client.protocol, bytes)  # the access log's protocol word, a class attribute of each


def test_cpdef_methods_are_methods_of_the_base() -> None:
    """The .pxd's cpdef declarations name methods the base defines (with the same parameters, `self` first)."""
    declared = re.findall(r"^\s+cpdef (\w+)\((.*)\)$", (ROOT / "proxy/http/downstream.pxd").read_text(), re.M)
    assert {name for name, _ in declared} == {"block", "unblock", "exchange_finished"}
    if extensions.is_compiled(downstream):
        pytest.skip("compiled here: the base's methods have no Python signature to compare (run pure-Python)")
    for name, parameters in declared:
        signature = inspect.signature(getattr(Downstream, name))
        assert [p.strip() for p in parameters.split(",")] == list(signature.parameters)
