"""Which TLS transports the listener tests run: the asyncio path always, the native one (`--tls-transport native`,
proxy/tls/native.py) where it is compiled. Not generated at all in pure-Python mode (nothing to skip); a compiled
run (PYNGRESS_EXPECT_MODE=compiled, scripts/test-compiled) that cannot load it fails test_tls_native.py instead."""

from __future__ import annotations

from proxy.tls.native import ASYNCIO, NATIVE, available

NATIVE_AVAILABLE, NATIVE_PROBLEM = available()
TRANSPORTS_HERE: tuple[str, ...] = (ASYNCIO, NATIVE) if NATIVE_AVAILABLE else (ASYNCIO,)
