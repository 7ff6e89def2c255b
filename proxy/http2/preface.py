"""h2c with prior knowledge on plain listeners: a connection whose first bytes are the HTTP/2 preface.

`PrefaceSniffer` stands in front of a plain listener's new HTTP/1.1 `ClientConnection` (installed by its
connection_made through `Listener.h2c`) for the first read only: it looks at those bytes, then either hands the
connection to HTTP/2 (proxy/http2/connection.py) or gives the transport back to the ClientConnection, so every
later read and request costs exactly what it did before HTTP/2 existed. (A stand-in rather than a subclass whose
class is swapped afterwards: compiled, ClientConnection is an extension type, whose instances keep their class.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.http.h1_connection import ClientConnection

# RFC 9113 3.4: what an HTTP/2 client sends first.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# A first read this long decides; shorter ones that could still be the preface wait for more bytes.
_DECIDES = 4


def sniff(conn: ClientConnection) -> None:
    """`Listener.h2c`: the transport's reads go to a PrefaceSniffer until the first one decides."""
    conn.transport.set_protocol(PrefaceSniffer(conn))  # type: ignore[arg-type]


class PrefaceSniffer:
    """A plain listener's connection until its first bytes say HTTP/2 (the preface) or HTTP/1.x (anything else);
    the other transport events go to the ClientConnection meanwhile."""

    __slots__ = ("conn", "early")

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.early = b""

    def data_received(self, data: bytes) -> None:
        early = self.early
        if early:
            data = early + data
        if len(data) < _DECIDES and PREFACE.startswith(data):
            self.early = data  # "P", "PR", "PRI": a method name (POST, PRI...) or the preface, not yet known
            return
        conn = self.conn
        http2 = conn.listener.http2
        if http2 is not None and data[:_DECIDES] == PREFACE[:_DECIDES]:
            http2(conn, data)
            return
        conn.transport.set_protocol(conn)  # type: ignore[arg-type]  # (an asyncio protocol by its methods)
        conn.data_received(data)

    def eof_received(self) -> bool:
        return self.conn.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()
