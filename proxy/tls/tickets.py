"""Session-ticket keys shared by every worker process, so a ticket one worker issued resumes on another.

OpenSSL encrypts session tickets (TLS 1.3's and TLS 1.2's) with keys that it draws at random for each
SSL_CTX. Worker processes (`--workers N`, fresh interpreters) each make their own listener context, and
the kernel spreads a client's connections over them (SO_REUSEPORT): without shared keys a returning
client resumes only when it lands on the worker that issued its ticket (1 in N), and every other
connection pays a full handshake (bench.tls measured 50% resumed and 5x nginx's CPU per handshake with
two workers). nginx shares its keys among workers by drawing them in the master before forking.

Python's `ssl` cannot set ticket keys, so `set_ticket_keys` calls OpenSSL's `SSL_CTX_ctrl` (the
`SSL_CTX_set_tlsext_ticket_keys` macro) through ctypes, on the libssl already loaded by `_ssl`, with the
`SSL_CTX *` that CPython keeps right after the object header of an `ssl.SSLContext`. Every step is checked
before anything is written: CPython on Linux, a libssl of the version `ssl` reports, the pointer's
options equal to the context's, and the keys length OpenSSL asks for; the keys are read back after. When
any check fails, nothing is written and the caller keeps OpenSSL's random keys (resumption then works per
worker, as before).

The control process draws the keys once (`new_ticket_keys`) and hands them to every worker, restarted
ones included, in the init message; they live as long as the control process (as OpenSSL's own random
keys live as long as a process). TLS 1.2 session ids stay per worker (each has its own session cache).
"""

from __future__ import annotations

import ctypes
import logging
import os
import ssl
import sys
from functools import cache

logger = logging.getLogger("pyngress.tls")

# OpenSSL's ssl.h: SSL_CTRL_GET_TLSEXT_TICKET_KEYS / SSL_CTRL_SET_TLSEXT_TICKET_KEYS.
_GET_TICKET_KEYS = 58
_SET_TICKET_KEYS = 59
# key name (16) + HMAC secret (32) + AES key (32) in OpenSSL 1.1.0 and later (1.0.x: 48).
TICKET_KEYS_LENGTH = 80


def new_ticket_keys() -> bytes:
    """Fresh random ticket keys, to be given to every worker's listener context."""
    return os.urandom(TICKET_KEYS_LENGTH)


class _LibSsl:
    """The libssl that `_ssl` uses, with the three functions needed."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)  # already loaded by _ssl: the same handle, nothing initialised twice
        self.ctrl = lib.SSL_CTX_ctrl
        self.ctrl.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p)
        self.ctrl.restype = ctypes.c_long
        self.get_options = lib.SSL_CTX_get_options
        self.get_options.argtypes = (ctypes.c_void_p,)
        self.get_options.restype = ctypes.c_uint64
        self.version_num = lib.OpenSSL_version_num  # libcrypto's, reachable through libssl's dependencies
        self.version_num.argtypes = ()
        self.version_num.restype = ctypes.c_ulong


@cache
def _libssl() -> _LibSsl | str:
    """The loaded libssl, or why it cannot be used."""
    if sys.implementation.name != "cpython" or not sys.platform.startswith("linux"):
        return f"not CPython on Linux ({sys.implementation.name} on {sys.platform})"
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return "not a 64-bit process"
    paths = set()
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if os.path.basename(path).startswith("libssl.so"):
                    paths.add(path)
    except OSError as error:
        return f"cannot read /proc/self/maps: {error}"
    if len(paths) != 1:
        return f"{len(paths)} libssl libraries loaded ({', '.join(sorted(paths)) or 'none: ssl linked statically?'})"
    try:
        lib = _LibSsl(paths.pop())
    except (OSError, AttributeError) as error:
        return f"libssl unusable: {error}"
    if lib.version_num() != ssl.OPENSSL_VERSION_NUMBER:
        return f"the loaded OpenSSL ({lib.version_num():#x}) is not the one ssl reports ({ssl.OPENSSL_VERSION})"
    return lib


def _ssl_ctx(context: ssl.SSLContext, lib: _LibSsl) -> int | None:
    """The context's `SSL_CTX *` (the first field after CPython's object header), if it checks out."""
    if type(context).__basicsize__ < object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p):
        return None
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        return None
    if lib.get_options(pointer) != int(context.options):
        return None
    return pointer


def set_ticket_keys(context: ssl.SSLContext, keys: bytes) -> str | None:
    """Make `context` encrypt and decrypt session tickets with `keys`; None when done, else why not (and
    nothing was changed). Call it before the context serves its first handshake."""
    if len(keys) != TICKET_KEYS_LENGTH:
        raise ValueError(f"ticket keys must be {TICKET_KEYS_LENGTH} bytes, got {len(keys)}")
    lib = _libssl()
    if isinstance(lib, str):
        return lib
    pointer = _ssl_ctx(context, lib)
    if pointer is None:
        return "the SSLContext's OpenSSL context could not be located"
    wanted = lib.ctrl(pointer, _GET_TICKET_KEYS, 0, None)  # with no buffer: the length this OpenSSL uses
    if wanted != TICKET_KEYS_LENGTH:
        return f"OpenSSL expects {wanted} bytes of ticket keys"
    buffer = ctypes.create_string_buffer(keys, TICKET_KEYS_LENGTH)
    if lib.ctrl(pointer, _SET_TICKET_KEYS, TICKET_KEYS_LENGTH, buffer) != 1:
        return "OpenSSL refused the ticket keys"
    check = ctypes.create_string_buffer(TICKET_KEYS_LENGTH)
    if lib.ctrl(pointer, _GET_TICKET_KEYS, TICKET_KEYS_LENGTH, check) != 1 or check.raw != keys:
        return "OpenSSL did not keep the ticket keys"
    return None


def share_ticket_keys(context: ssl.SSLContext, keys: bytes | None) -> bool:
    """`set_ticket_keys` for a listener context, logging (once per reason) when the keys cannot be shared."""
    if keys is None:
        return False
    problem = set_ticket_keys(context, keys)
    if problem is not None:
        _warn_once(problem)
        return False
    return True


@cache
def _warn_once(problem: str) -> None:
    logger.warning("TLS session tickets are not shared between workers (%s): a returning client resumes only on "
                   "the worker that issued its ticket", problem)
