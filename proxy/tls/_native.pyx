# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""A TLS transport in which OpenSSL reads and writes the socket itself (issue #14): compiled only.

Each accepted connection is an `SSL *` made from the `SSL_CTX *` of an `ssl.SSLContext` configured in Python
(certificate, ALPN, tickets: as proxy/tls/tickets.py reaches it), bound to the socket with `SSL_set_fd`; the
handshake, reads and writes are `SSL_do_handshake` / `SSL_read_ex` / `SSL_write_ex` on readiness, reported by an
epoll set of the listener's own that the event loop watches as one file descriptor (any loop: uvloop's or asyncio's
selector loop). Python runs only the app protocol's callbacks. No OpenSSL headers are needed: the few
prototypes are declared in _native_c.pxi (opaque `SSL`, `SSL_CTX`) and the module links the libssl.so.3 that
`_ssl` loads. The connection's transport is in _native_transport.pxi (both included here: one extension module).

See proxy/tls/native.py for the Python side (availability, fallback, the listener wiring).
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.errno cimport errno, EINTR, ECONNABORTED
from libc.string cimport strlen

import os
import socket as _socket_module
import ssl as _ssl_module
import _ssl
from asyncio.trsock import TransportSocket as _TransportSocket

cdef object _BASE_OPTIONS = _ssl._SSLContext.__dict__["options"]

include "_native_c.pxi"


cdef enum:
    READ_SIZE = 65536
    MAX_READS = 16
    MAX_ACCEPTS = 64
    MAX_EVENTS = 64

cdef char _read_buffer[READ_SIZE]

# Seconds close() waits for a full send buffer to take close_notify before the connection is cut without it.
cdef double SHUTDOWN_TIMEOUT = 5.0


cdef SSL_CTX *context_pointer(object context) except NULL:
    """The `SSL_CTX *` behind an ssl.SSLContext: the first field after CPython's object header (as tickets.py),
    checked against the context's options."""
    if not isinstance(context, _ssl_module.SSLContext):
        raise TypeError("an ssl.SSLContext is needed")
    cdef SSL_CTX *ctx = (<SSL_CTX **>(<char *><PyObject *>context + sizeof(PyObject)))[0]
    # (the options read by _ssl's own getter: ssl.SSLContext.options wraps them in an enum.IntFlag, a few µs)
    if ctx == NULL or SSL_CTX_get_options(ctx) != <unsigned long>_BASE_OPTIONS.__get__(context, None):
        raise RuntimeError("the SSLContext's OpenSSL context could not be located")
    return ctx


def check_context(context):
    """Raise unless the SSL_CTX * of `context` can be reached (the Python side's availability check)."""
    context_pointer(context)
    return True


cdef str error_reason():
    """OpenSSL's reason for the last error, in the form of ssl.SSLError.reason ("WRONG_VERSION_NUMBER")."""
    cdef unsigned long code = ERR_peek_last_error()
    if code == 0:
        return ""
    cdef const char *text = ERR_reason_error_string(code)
    if text == NULL:
        return ""
    return text[:strlen(text)].decode("ascii", "replace").upper().replace(" ", "_")


cdef int _on_server_name(SSL *ssl, int *alert, void *arg) noexcept:
    """OpenSSL's servername callback (every handshake, with or without SNI): the server's `select(info, name)`
    picks the ssl.SSLContext of the certificate; the connection switches to its SSL_CTX (which OpenSSL keeps
    referenced). An error fails the handshake (fail closed: no certificate is served by guess)."""
    cdef NativeServer server = <NativeServer>arg
    cdef NativeTransport transport
    cdef void *owner = SSL_get_ex_data(ssl, 0)
    cdef SSL_CTX *chosen
    cdef const char *name
    if owner == NULL:
        alert[0] = 80  # internal_error
        return 2  # SSL_TLSEXT_ERR_ALERT_FATAL
    transport = <NativeTransport>owner
    try:
        name = SSL_get_servername(ssl, 0)
        server_name = name[:strlen(name)].decode("ascii", "replace") if name != NULL else None
        info = transport.info()
        holder = server.holder
        if holder is None:
            context = server.select(info, server_name)
        else:
            # The holder's select_native answers the same for the same store and name unless the store checks
            # client certificates (per handshake): the last answer is reused while the store is the holder's.
            store = holder.current
            if store is server.memo_store and server_name == server.memo_name:
                info.pyngress_server_name = server.memo_normalized
                context = server.memo_context
            else:
                context = server.select(info, server_name)
                if not store.client_auth:
                    server.memo_store, server.memo_name = store, server_name
                    server.memo_context, server.memo_normalized = context, info.pyngress_server_name
        if context is not server.context:
            if context is server.chosen_context:  # most handshakes choose what the previous one chose
                chosen = server.chosen_ctx
            else:
                chosen = context_pointer(context)
                server.chosen_context = context
                server.chosen_ctx = chosen
            if SSL_set_SSL_CTX(ssl, chosen) == NULL:
                raise RuntimeError("SSL_set_SSL_CTX failed")
        return 0  # SSL_TLSEXT_ERR_OK
    except BaseException as error:  # noqa - reported, and the handshake fails
        transport.select_error = error
        alert[0] = 80
        return 2


cdef class NativeServer:
    """One TLS listener: accepts on a non-blocking listening socket and makes a NativeTransport per connection.

    Its connections' sockets are in one epoll set of its own, which the loop watches as one file descriptor
    (`_on_events`): a connection costs no loop handle, callback object or Python call per readiness event, and
    wanting to read or write is an epoll_ctl on the set (NativeTransport._update)."""

    cdef SSL_CTX *ctx
    cdef object context
    cdef object loop
    cdef public object listener
    cdef int fd
    cdef public object protocol_factory
    cdef public object stats
    cdef public double handshake_timeout
    cdef public set handshaking
    cdef dict fds  # file descriptor -> NativeTransport, every connection in the epoll set
    cdef int epfd
    cdef object sweeper
    cdef bint serving
    cdef object classify
    cdef public object select
    cdef object chosen_context  # the context the last servername callback switched to, and its SSL_CTX *
    cdef SSL_CTX *chosen_ctx
    cdef object holder  # the CertStoreHolder whose select_native `select` is (None: no memo)
    cdef object memo_store, memo_name, memo_context, memo_normalized  # its last answer (see _on_server_name)

    def __cinit__(self):
        self.epfd = -1

    def __init__(self, loop, listener, context, protocol_factory, *, stats, double handshake_timeout, classify,
                 select=None, holder=None):
        self.loop = loop
        self.listener = listener
        self.fd = listener.fileno()
        self.context = context
        self.ctx = context_pointer(context)
        self.protocol_factory = protocol_factory
        self.stats = stats
        self.handshake_timeout = handshake_timeout
        self.handshaking = set()
        self.fds = {}
        self.classify = classify
        self.serving = False
        self.sweeper = None
        self.select = select
        self.holder = holder if select is not None else None
        if select is not None:
            # The context is this server's alone: its servername callback becomes ours (Python's sni_callback
            # expects the ssl module's own SSL objects).
            if context.sni_callback is not None:
                raise ValueError("the native transport's context must not have an sni_callback")
            if set_servername_cb(self.ctx, _on_server_name, <void *>self) != 1:
                raise RuntimeError("the servername callback could not be set")

    def __dealloc__(self):
        if self.select is not None and self.ctx != NULL:
            set_servername_cb(self.ctx, NULL, NULL)
        if self.epfd >= 0:
            c_close(self.epfd)  # (the loop no longer watches it: it held our bound method until then)
            self.epfd = -1

    @property
    def epoll_fd(self):
        """The connections' epoll set (-1: released, or not started)."""
        return self.epfd

    @property
    def connections(self):
        """The open connections (handshaking ones included)."""
        return set(self.fds.values())

    def start(self):
        if self.serving:
            return
        if self.epfd < 0:
            self.epfd = epoll_create1(EPOLL_CLOEXEC)
            if self.epfd < 0:
                raise _os_error(errno)
            self.loop.add_reader(self.epfd, self._on_events)
        self.serving = True
        self.listener.setblocking(False)
        self.loop.add_reader(self.fd, self._on_accept)
        self._schedule_sweep()

    def close(self):
        """Stop accepting (the listening socket stays the caller's); connections stay open."""
        if not self.serving:
            return
        self.serving = False
        self.loop.remove_reader(self.fd)
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        self._release()

    cdef _release(self):
        """The epoll set goes once the listener is closed and its last connection is gone."""
        if self.serving or self.fds or self.epfd < 0:
            return
        self.loop.remove_reader(self.epfd)
        c_close(self.epfd)
        self.epfd = -1

    def abort_handshakes(self):
        """Cut every handshake in progress (server shutdown): not counted as failures."""
        cdef NativeTransport transport
        for transport in list(self.handshaking):
            transport.counted = True
            transport._force_close(None)

    def _schedule_sweep(self):
        interval = min(1.0, max(0.05, self.handshake_timeout / 4))
        self.sweeper = self.loop.call_later(interval, self._sweep)

    def _sweep(self):
        """Handshakes older than the timeout fail with reason `timeout`: one timer per listener, not per connection."""
        cdef NativeTransport transport
        cdef double deadline = monotonic() - self.handshake_timeout
        self.sweeper = None
        for transport in list(self.handshaking):
            if transport.started < deadline:
                transport._handshake_failed("timeout", None)
        if self.serving:
            self._schedule_sweep()

    def _on_events(self):
        """The epoll set is readable: dispatch up to MAX_EVENTS ready connections (level-triggered: the rest, and
        whatever stays ready, come back at the loop's next turn)."""
        cdef int fds[MAX_EVENTS]
        cdef unsigned int events[MAX_EVENTS]
        cdef int count, index
        cdef PyObject *found
        cdef NativeTransport transport
        if self.epfd < 0:
            return
        count = c_epoll_wait(self.epfd, fds, events, MAX_EVENTS)
        for index in range(count):
            # Looked up by number: a connection closed by an earlier one's callback is gone from the dict.
            found = PyDict_GetItem(self.fds, fds[index])
            if found == NULL:
                continue
            transport = <NativeTransport>found
            try:
                transport._on_event(events[index])
            except Exception as error:  # as the loop does for a reader's callback: reported, the others go on
                self.loop.call_exception_handler({"message": "Exception in the native TLS transport",
                                                  "exception": error, "transport": transport,
                                                  "protocol": transport.protocol})

    def _on_accept(self):
        cdef int conn
        cdef int count = 0
        cdef SSL *ssl
        cdef NativeTransport transport
        while count < MAX_ACCEPTS:
            count += 1
            conn = c_accept(self.fd)
            if conn < 0:
                if errno == EINTR or errno == ECONNABORTED:
                    continue
                return  # EAGAIN, or an error (EMFILE...): the listener stays readable and is retried
            ssl = SSL_new(self.ctx)
            if ssl == NULL:
                ERR_clear_error()
                c_close(conn)
                continue
            if c_epoll_ctl(self.epfd, EPOLL_CTL_ADD, conn, EPOLLIN) != 0:
                SSL_free(ssl)
                c_close(conn)
                continue
            SSL_set_fd(ssl, conn)
            SSL_set_accept_state(ssl)
            SSL_ctrl(ssl, SSL_CTRL_MODE, OUR_SSL_MODE, NULL)
            transport = NativeTransport.__new__(NativeTransport)
            SSL_set_ex_data(ssl, 0, <void *>transport)  # borrowed: the transport frees the SSL
            transport.ssl = ssl
            transport.fd = conn
            transport.interest = EPOLLIN
            transport.server = self
            transport.loop = self.loop
            transport.started = monotonic()
            transport.handshaking = True
            transport.high = 65536
            transport.low = 16384
            self.handshaking.add(transport)
            self.fds[conn] = transport


include "_native_transport.pxi"
