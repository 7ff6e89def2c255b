"""The request head an exchange carries: the same defaults as a RequestHead of its own.

Exchange.__init__ writes RequestHead's defaults itself (no call to RequestHead.__init__ on every
request) and leaves out the fields the request path always writes before reading them; this keeps
the two lists from drifting apart.
"""

from __future__ import annotations

from proxy import extensions
from proxy.http import exchange as exchange_module
from proxy.http.downstream import Downstream
from proxy.http.exchange import Exchange
from proxy.http.head import RequestHead


def _slots(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())}


def test_an_exchange_starts_with_the_request_head_defaults():
    head = RequestHead()
    client = Downstream()  # what Exchange.__init__ reads of its client: its writer and address
    client.writer = None  # type: ignore[assignment]
    client.client_ip = b""
    exchange = Exchange(client)
    fields = _slots(RequestHead)
    assert fields >= Exchange.SET_BEFORE_READ
    for name in sorted(fields - Exchange.SET_BEFORE_READ - Exchange.SET_WHEN_SEEN):
        assert getattr(exchange, name) == getattr(head, name), name
    # Compiled (proxy/http/exchange.pxd), an attribute never written reads None instead of raising (0 for a C
    # integer field such as head.pxd's id_at).
    compiled = extensions.is_compiled(exchange_module)
    for name in Exchange.SET_BEFORE_READ | Exchange.SET_WHEN_SEEN:
        written = getattr(exchange, name, None) not in (None, 0) if compiled else hasattr(exchange, name)
        assert not written, f"{name} is written by Exchange.__init__: drop it from SET_BEFORE_READ / SET_WHEN_SEEN"
