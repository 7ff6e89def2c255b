"""HTTP/2 to clients: h2 by ALPN on TLS listeners, h2c with prior knowledge on plain ones (issue 13).

Each stream runs the same pipeline and exchange as an HTTP/1.1 request (proxy/http/); the pods are spoken
to in HTTP/1.1. `take_over` is what a listener's ``http2`` hook calls (proxy/http/listener.py).
"""

from proxy.http2.connection import H2ClientConnection, take_over
from proxy.http2.preface import PREFACE, PrefaceSniffer, sniff

__all__ = ["H2ClientConnection", "PREFACE", "PrefaceSniffer", "sniff", "take_over"]
