"""h2c with prior knowledge on plain listeners: a connection whose first bytes are the HTTP/2 preface.

`PrefaceSniffer` is the HTTP/1.1 `ClientConnection` for its first read only: it looks at those bytes, then
either hands the connection to HTTP/2 (proxy/http2/connection.py) or turns itself into a plain
ClientConnection (its class is swapped, and the transport told again, since uvloop keeps the protocol's bound
``data_received``), so every later read and request costs exactly what it did before HTTP/2 existed.
"""

from __future__ import annotations

from proxy.http.h1_connection import ClientConnection

# RFC 9113 3.4: what an HTTP/2 client sends first.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# A first read this long decides; shorter ones that could still be the preface wait for more bytes.
_DECIDES = 4


class PrefaceSniffer(ClientConnection):
    """A plain listener's connection until its first bytes say HTTP/2 (the preface) or HTTP/1.x (anything else)."""

    __slots__ = ()

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.preface = b""

    def data_received(self, data: bytes) -> None:
        early = self.preface
        if early:
            data = early + data
        size = len(data)
        if size < _DECIDES and PREFACE.startswith(data):
            self.preface = data  # "P", "PR", "PRI": a method name (POST, PRI...) or the preface, not yet known
            return
        self.__class__ = ClientConnection  # type: ignore[assignment]
        http2 = self.listener.http2
        if http2 is not None and data[:_DECIDES] == PREFACE[:_DECIDES]:
            http2(self, data)
            return
        self.transport.set_protocol(self)  # the transport re-reads this (now plain) protocol's methods
        ClientConnection.data_received(self, data)
