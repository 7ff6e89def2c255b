# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""A TLS transport in which OpenSSL reads and writes the socket itself (issue #14): compiled only.

Each accepted connection is an `SSL *` made from the `SSL_CTX *` of an `ssl.SSLContext` configured in Python
(certificate, ALPN, tickets: as proxy/tls/tickets.py reaches it), bound to the socket with `SSL_set_fd`; the
handshake, reads and writes are `SSL_do_handshake` / `SSL_read_ex` / `SSL_write_ex` on readiness, reported by an
epoll set of the listener's own that the event loop watches as one file descriptor (any loop: uvloop's or asyncio's
selector loop). Python runs only the app protocol's callbacks. No OpenSSL headers are needed: the few
prototypes are declared below (opaque `SSL`, `SSL_CTX`) and the module links the libssl.so.3 that `_ssl` loads.

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

cdef object _BASE_OPTIONS = _ssl._SSLContext.__dict__["options"]

cdef extern from *:
    """
    #include <sys/socket.h>
    #include <sys/types.h>
    #include <netinet/in.h>
    #include <netinet/tcp.h>
    #include <arpa/inet.h>
    #include <sys/epoll.h>
    #include <errno.h>
    #include <unistd.h>
    #include <time.h>
    typedef struct ssl_st SSL;
    typedef struct ssl_ctx_st SSL_CTX;
    SSL *SSL_new(SSL_CTX *ctx);
    void SSL_free(SSL *ssl);
    int SSL_set_fd(SSL *s, int fd);
    void SSL_set_accept_state(SSL *s);
    int SSL_do_handshake(SSL *s);
    int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes);
    int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written);
    int SSL_pending(const SSL *s);
    int SSL_get_error(const SSL *s, int ret_code);
    int SSL_shutdown(SSL *s);
    void SSL_set_quiet_shutdown(SSL *ssl, int mode);
    long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg);
    long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg);
    long SSL_CTX_callback_ctrl(SSL_CTX *ctx, int cmd, void (*fp)(void));
    unsigned long SSL_CTX_get_options(const SSL_CTX *ctx);
    const char *SSL_get_servername(const SSL *s, const int type);
    SSL_CTX *SSL_set_SSL_CTX(SSL *ssl, SSL_CTX *ctx);
    void SSL_get0_alpn_selected(const SSL *ssl, const unsigned char **data, unsigned int *len);
    int SSL_session_reused(const SSL *s);
    const char *SSL_get_version(const SSL *s);
    int SSL_set_ex_data(SSL *ssl, int idx, void *data);
    void *SSL_get_ex_data(const SSL *ssl, int idx);
    typedef struct x509_st X509;
    X509 *SSL_get1_peer_certificate(const SSL *s);
    int i2d_X509(X509 *a, unsigned char **out);
    void X509_free(X509 *a);
    void CRYPTO_free(void *ptr, const char *file, int line);
    unsigned long ERR_peek_last_error(void);
    void ERR_clear_error(void);
    const char *ERR_reason_error_string(unsigned long e);
    #define PYNGRESS_SSL_ERROR_NONE 0
    #define PYNGRESS_SSL_ERROR_SSL 1
    #define PYNGRESS_SSL_ERROR_WANT_READ 2
    #define PYNGRESS_SSL_ERROR_WANT_WRITE 3
    #define PYNGRESS_SSL_ERROR_SYSCALL 5
    #define PYNGRESS_SSL_ERROR_ZERO_RETURN 6
    /* SSL_set_mode(): SSL_CTRL_MODE; partial writes and a moving (growing) retry buffer */
    #define PYNGRESS_SSL_CTRL_MODE 33
    #define PYNGRESS_SSL_MODE 0x3
    /* SSL_CTX_set_tlsext_servername_callback / _arg */
    #define PYNGRESS_SSL_CTRL_SET_TLSEXT_SERVERNAME_CB 53
    #define PYNGRESS_SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG 54
    typedef int (*pyngress_servername_cb)(SSL *, int *, void *);
    static long pyngress_set_servername_cb(SSL_CTX *ctx, pyngress_servername_cb cb, void *arg) {
        if (SSL_CTX_callback_ctrl(ctx, PYNGRESS_SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, (void (*)(void))cb) != 1)
            return 0;
        return SSL_CTX_ctrl(ctx, PYNGRESS_SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG, 0, arg);
    }
    static double pyngress_monotonic(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    }
    /* What the peer sent and nobody read, read and dropped (bounded), so that close() ends the connection with a
       FIN rather than a reset (a failed handshake leaves the rest of a plain HTTP request unread). */
    static void pyngress_drain(int fd) {
        char sink[16384];
        int rounds;
        for (rounds = 0; rounds < 16; rounds++) {
            if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
                return;
        }
    }
    /* getpeername/getsockname as the text address and port: family AF_INET or AF_INET6, else 0 */
    static int pyngress_address(int fd, int peer, char *text, size_t size, int *port,
                                unsigned int *flowinfo, unsigned int *scope) {
        struct sockaddr_storage address;
        socklen_t length = sizeof(address);
        int rc = peer ? getpeername(fd, (struct sockaddr *)&address, &length)
                      : getsockname(fd, (struct sockaddr *)&address, &length);
        if (rc != 0)
            return 0;
        if (address.ss_family == AF_INET) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
            if (inet_ntop(AF_INET, &in4->sin_addr, text, size) == NULL)
                return 0;
            *port = ntohs(in4->sin_port);
            return AF_INET;
        }
        if (address.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
            if (inet_ntop(AF_INET6, &in6->sin6_addr, text, size) == NULL)
                return 0;
            *port = ntohs(in6->sin6_port);
            *flowinfo = ntohl(in6->sin6_flowinfo);
            *scope = in6->sin6_scope_id;
            return AF_INET6;
        }
        return 0;
    }
    /* The transport's own epoll set (one per listener, watched by the event loop as one file descriptor): a
       connection's readiness is dispatched in C, with no loop handle, callback object or Python call per event. */
    static int pyngress_epoll_ctl(int epfd, int op, int fd, unsigned int events) {
        struct epoll_event event;
        event.events = events;
        event.data.u64 = 0;
        event.data.fd = fd;
        return epoll_ctl(epfd, op, fd, &event);
    }
    static int pyngress_epoll_wait(int epfd, int *fds, unsigned int *events, int max) {
        struct epoll_event ready[64];
        int count, i;
        if (max > 64)
            max = 64;
        do {
            count = epoll_wait(epfd, ready, max, 0);
        } while (count < 0 && errno == EINTR);
        for (i = 0; i < count; i++) {
            fds[i] = ready[i].data.fd;
            events[i] = ready[i].events;
        }
        return count;
    }
    /* The last error is OpenSSL 3's "unexpected eof while reading" (ERR_LIB_SSL 20, SSL_R_UNEXPECTED_EOF_WHILE_READING
       294): a peer that closed without close_notify, an EOF; checked by number (no reason string per connection). */
    static int pyngress_unexpected_eof(void) {
        unsigned long code = ERR_peek_last_error();
        if (code == 0 || (code & 0x80000000UL))
            return 0;
        return ((code >> 23) & 0xFF) == 20 && (code & 0x7FFFFF) == 294;
    }
    static int pyngress_accept(int fd) {
        int one = 1;
        int conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn >= 0)
            setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return conn;
    }
    """
    ctypedef struct SSL
    ctypedef struct SSL_CTX
    SSL *SSL_new(SSL_CTX *ctx) nogil
    void SSL_free(SSL *ssl) nogil
    int SSL_set_fd(SSL *s, int fd) nogil
    void SSL_set_accept_state(SSL *s) nogil
    int SSL_do_handshake(SSL *s) nogil
    int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) nogil
    int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written) nogil
    int SSL_pending(const SSL *s) nogil
    int SSL_get_error(const SSL *s, int ret_code) nogil
    int SSL_shutdown(SSL *s) nogil
    void SSL_set_quiet_shutdown(SSL *ssl, int mode) nogil
    long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg) nogil
    long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg) nogil
    unsigned long SSL_CTX_get_options(const SSL_CTX *ctx) nogil
    const char *SSL_get_servername(const SSL *s, const int type) nogil
    SSL_CTX *SSL_set_SSL_CTX(SSL *ssl, SSL_CTX *ctx) nogil
    void SSL_get0_alpn_selected(const SSL *ssl, const unsigned char **data, unsigned int *len) nogil
    int SSL_session_reused(const SSL *s) nogil
    const char *SSL_get_version(const SSL *s) nogil
    int SSL_set_ex_data(SSL *ssl, int idx, void *data) nogil
    void *SSL_get_ex_data(const SSL *ssl, int idx) nogil
    unsigned long ERR_peek_last_error() nogil
    void ERR_clear_error() nogil
    const char *ERR_reason_error_string(unsigned long e) nogil
    int SSL_ERROR_NONE "PYNGRESS_SSL_ERROR_NONE"
    int SSL_ERROR_SSL "PYNGRESS_SSL_ERROR_SSL"
    int SSL_ERROR_WANT_READ "PYNGRESS_SSL_ERROR_WANT_READ"
    int SSL_ERROR_WANT_WRITE "PYNGRESS_SSL_ERROR_WANT_WRITE"
    int SSL_ERROR_SYSCALL "PYNGRESS_SSL_ERROR_SYSCALL"
    int SSL_ERROR_ZERO_RETURN "PYNGRESS_SSL_ERROR_ZERO_RETURN"
    int SSL_CTRL_MODE "PYNGRESS_SSL_CTRL_MODE"
    long OUR_SSL_MODE "PYNGRESS_SSL_MODE"
    ctypedef struct X509
    X509 *SSL_get1_peer_certificate(const SSL *s) nogil
    int i2d_X509(X509 *a, unsigned char **out) nogil
    void X509_free(X509 *a) nogil
    void CRYPTO_free(void *ptr, const char *file, int line) nogil
    ctypedef int (*servername_cb)(SSL *, int *, void *) noexcept
    long set_servername_cb "pyngress_set_servername_cb"(SSL_CTX *ctx, servername_cb cb, void *arg)
    double monotonic "pyngress_monotonic"() nogil
    int c_accept "pyngress_accept"(int fd) nogil
    void c_drain "pyngress_drain"(int fd) nogil
    int c_address "pyngress_address"(int fd, int peer, char *text, size_t size, int *port, unsigned int *flowinfo,
                                     unsigned int *scope) nogil
    int AF_INET
    int AF_INET6
    int c_close "close"(int fd) nogil
    int epoll_create1(int flags) nogil
    int EPOLL_CLOEXEC
    unsigned int EPOLLIN
    unsigned int EPOLLOUT
    unsigned int EPOLLERR
    unsigned int EPOLLHUP
    int EPOLL_CTL_ADD
    int EPOLL_CTL_MOD
    int EPOLL_CTL_DEL
    int c_epoll_ctl "pyngress_epoll_ctl"(int epfd, int op, int fd, unsigned int events) nogil
    int c_epoll_wait "pyngress_epoll_wait"(int epfd, int *fds, unsigned int *events, int max) nogil
    int unexpected_eof "pyngress_unexpected_eof"() nogil


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


cdef class NativeTransport:
    """An asyncio transport over one TLS connection (duck-typed: the protocol calls the same methods).

    What it waits for is derived from its state by `_update` (the handshake's next step; reading unless paused;
    the buffer to write; a write that needs the peer's data first, a read that needs to write first; close_notify
    waiting for room), and set in the server's epoll set only when it changes."""

    cdef SSL *ssl
    cdef int fd
    cdef unsigned int interest  # the events the epoll set watches for this socket (0: not in it)
    cdef NativeServer server
    cdef object loop
    cdef object protocol
    cdef bytearray pending
    cdef double started
    cdef bint handshaking
    cdef bint handshake_writes  # the handshake's last step wanted to write
    cdef bint counted
    cdef bint reading_paused
    cdef bint read_wants_write  # SSL_read wanted to write (a renegotiation, a key update): retried when writable
    cdef bint write_wants_read  # SSL_write wanted the peer's data first: retried when readable, not polled
    cdef bint closing
    cdef bint closed
    cdef bint shutting  # close_notify waits for the socket to take it (SSL_shutdown wanted to write)
    cdef object shutdown_timer
    cdef bint write_paused
    cdef bint eof
    cdef Py_ssize_t high
    cdef Py_ssize_t low
    cdef dict extra
    cdef object sock
    cdef TlsInfo tls_info
    cdef object select_error

    cdef TlsInfo info(self):
        if self.tls_info is None:
            self.tls_info = TlsInfo.__new__(TlsInfo)
            self.tls_info.transport = self
        return self.tls_info

    def __dealloc__(self):
        if self.ssl != NULL:
            SSL_free(self.ssl)
            self.ssl = NULL
        if self.fd >= 0 and not self.closed:
            # Never reached for a transport in its server's epoll set (the server's dict holds it).
            c_close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------ readiness

    cdef int _update(self) except -1:
        """Watch what the state needs; one epoll_ctl when it changed, none otherwise."""
        cdef unsigned int wanted = 0
        cdef int op
        if self.closed:
            return 0
        if self.handshaking:
            wanted = EPOLLOUT if self.handshake_writes else EPOLLIN
        else:
            if self.write_wants_read or not (self.reading_paused or self.eof or self.closing):
                wanted = EPOLLIN
            if self.read_wants_write or self.shutting or (
                    self.pending is not None and len(self.pending) and not self.write_wants_read):
                wanted |= EPOLLOUT
        if wanted == self.interest:
            return 0
        # (Nothing wanted: out of the set, or a hang-up would be reported to it over and over.)
        op = EPOLL_CTL_DEL if wanted == 0 else (EPOLL_CTL_ADD if self.interest == 0 else EPOLL_CTL_MOD)
        if c_epoll_ctl(self.server.epfd, op, self.fd, wanted) != 0:
            raise _os_error(errno)
        self.interest = wanted
        return 0

    cdef _on_event(self, unsigned int events):
        if events & (EPOLLIN | EPOLLERR | EPOLLHUP) and self.interest & EPOLLIN:
            self._readable()
        if events & (EPOLLOUT | EPOLLERR | EPOLLHUP) and self.interest & EPOLLOUT and not self.closed:
            self._writable()

    cdef _readable(self):
        if self.closed:
            return
        if self.handshaking:
            self._handshake_step()
            return
        if self.write_wants_read:
            self.write_wants_read = False
            self._flush()
            if self.closed:
                return
        self._read()

    cdef _writable(self):
        if self.handshaking:
            self._handshake_step()
            return
        if self.shutting:
            self._shutdown()
            return
        if self.read_wants_write:
            self.read_wants_write = False
            self._read()
            if self.closed:
                return
        self._flush()

    def _read_soon(self):
        """What OpenSSL holds decrypted does not make the socket readable: read it at the loop's next turn."""
        if not self.closed and not self.handshaking:
            self._read()

    # ------------------------------------------------------------ reading

    cdef _handshake_step(self):
        cdef int ret, err
        ERR_clear_error()
        ret = SSL_do_handshake(self.ssl)
        if ret != 1:
            err = SSL_get_error(self.ssl, ret)
            if err == SSL_ERROR_WANT_READ or err == SSL_ERROR_WANT_WRITE:
                self.handshake_writes = err == SSL_ERROR_WANT_WRITE
                self._update()
                return
            self._handshake_failed(None, err)
            return
        self.handshake_writes = False
        self._handshake_done()
        if not self.closed:
            self._read()

    cdef _read(self):
        cdef int ret, err
        cdef size_t got = 0
        cdef int reads = 0
        if self.reading_paused or self.eof or self.closing or self.closed:
            self._update()
            return
        while reads < MAX_READS:
            reads += 1
            ERR_clear_error()
            ret = SSL_read_ex(self.ssl, _read_buffer, READ_SIZE, &got)
            if ret == 1:
                self.protocol.data_received(PyBytes_FromStringAndSize(_read_buffer, got))
                if self.closed:
                    return
                if self.reading_paused or self.closing:
                    self._update()
                    return
                continue
            err = SSL_get_error(self.ssl, ret)
            if err == SSL_ERROR_WANT_READ:
                self._update()
                return
            if err == SSL_ERROR_WANT_WRITE:
                self.read_wants_write = True
                self._update()
                return
            if err == SSL_ERROR_ZERO_RETURN:
                self._eof_received()
                return
            if err == SSL_ERROR_SYSCALL and errno != 0:
                self._force_close(_os_error(errno))
                return
            # EOF without close_notify (OpenSSL 3: SSL_ERROR_SSL "unexpected eof") is an EOF too
            if err == SSL_ERROR_SYSCALL or unexpected_eof() or error_reason() == "UNEXPECTED_EOF_WHILE_READING":
                ERR_clear_error()
                self._eof_received()
                return
            reason = error_reason()
            ERR_clear_error()
            self._force_close(_ssl_module.SSLError(1, reason))
            return
        self._update()
        if SSL_pending(self.ssl) > 0:
            self.loop.call_soon(self._read_soon)

    cdef _eof_received(self):
        self.eof = True
        keep_open = self.protocol.eof_received()
        if not keep_open:
            self.close()  # (closing the socket takes it out of the epoll set: no epoll_ctl first)
        else:
            self._update()

    cdef _handshake_done(self):
        self.handshaking = False
        self.server.handshaking.discard(self)
        self.counted = True
        self.server.stats.completed += 1
        protocol = self.server.protocol_factory()
        self.protocol = protocol
        protocol.connection_made(self)

    def _handshake_failed(self, str reason, object err):
        if reason is None and self.select_error is not None:
            reason = "other"
            logger_error(self.select_error)
        if reason is None:
            name = error_reason()
            if err == SSL_ERROR_SYSCALL or err == SSL_ERROR_ZERO_RETURN:
                reason = "client_closed"
            elif name:
                reason = self.server.classify(name)
            else:
                reason = "other"
        ERR_clear_error()
        if not self.counted:
            self.counted = True
            self.server.stats.failures[reason] += 1
        if not self.closed:
            c_drain(self.fd)
        self._drop()

    # ------------------------------------------------------------ writing

    def write(self, data):
        cdef Py_buffer view
        cdef size_t written = 0
        cdef int ret, err
        cdef Py_ssize_t offset = 0
        if self.closing or self.closed:
            return
        if self.pending is not None and len(self.pending):
            self.pending += data
            self._check_high()
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            while offset < view.len:
                ERR_clear_error()
                ret = SSL_write_ex(self.ssl, <char *>view.buf + offset, view.len - offset, &written)
                if ret == 1:
                    offset += written
                    continue
                err = SSL_get_error(self.ssl, ret)
                if err == SSL_ERROR_WANT_WRITE:
                    break
                if err == SSL_ERROR_WANT_READ:
                    self.write_wants_read = True
                    break
                self._write_error(err)
                return
            if offset < view.len:
                if self.pending is None:
                    self.pending = bytearray()
                self.pending += (<char *>view.buf)[offset:view.len]
                self._update()
                self._check_high()
        finally:
            PyBuffer_Release(&view)

    def writelines(self, list_of_data):
        for data in list_of_data:
            self.write(data)

    cdef _write_error(self, int err):
        if err == SSL_ERROR_SYSCALL and errno != 0:
            exc = _os_error(errno)
        else:
            exc = _ssl_module.SSLError(1, error_reason())
        ERR_clear_error()
        self._force_close(exc)

    cdef _check_high(self):
        if not self.write_paused and self.pending is not None and len(self.pending) > self.high:
            self.write_paused = True
            self.protocol.pause_writing()

    cdef _flush(self):
        """Write what is buffered, as far as the socket takes it."""
        cdef size_t written = 0
        cdef int ret, err
        cdef bytearray pending = self.pending
        if pending is None or not len(pending):
            self._update()
            return
        while len(pending):
            ERR_clear_error()
            ret = SSL_write_ex(self.ssl, <char *>pending, len(pending), &written)
            if ret == 1:
                del pending[:written]
                continue
            err = SSL_get_error(self.ssl, ret)
            if err == SSL_ERROR_WANT_WRITE or err == SSL_ERROR_WANT_READ:
                self.write_wants_read = err == SSL_ERROR_WANT_READ
                self._update()
                return
            self._write_error(err)
            return
        if self.write_paused and len(pending) <= self.low:
            self.write_paused = False
            self.protocol.resume_writing()
            if self.closed:
                return
        if self.closing and not len(pending):
            self._shutdown()
            return
        self._update()

    def get_write_buffer_size(self):
        return len(self.pending) if self.pending is not None else 0

    def get_write_buffer_limits(self):
        return (self.low, self.high)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 65536 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self.high = high
        self.low = low
        self._check_high()

    def can_write_eof(self):
        return False

    def write_eof(self):
        raise NotImplementedError("TLS transports cannot write EOF (close sends close_notify)")

    # ------------------------------------------------------------ reading control

    def pause_reading(self):
        if self.closing or self.closed or self.reading_paused:
            return
        self.reading_paused = True
        self._update()

    def resume_reading(self):
        if self.closing or self.closed or not self.reading_paused:
            return
        self.reading_paused = False
        if self.eof:
            return
        self._update()
        if SSL_pending(self.ssl) > 0:
            self.loop.call_soon(self._read_soon)

    def is_reading(self):
        return not self.reading_paused and not self.closing and not self.closed

    # ------------------------------------------------------------ closing

    def is_closing(self):
        return self.closing or self.closed

    def close(self):
        """Flush what is buffered, send close_notify, close the socket; connection_lost(None) soon after."""
        if self.closing or self.closed:
            return
        self.closing = True
        if self.pending is None or not len(self.pending):
            self._shutdown()
        else:
            self._update()

    def abort(self):
        self._force_close(None)

    cdef _shutdown(self):
        cdef int ret
        if self.closed:
            return  # never an SSL call once the file descriptor is closed (its number may be reused)
        ERR_clear_error()
        ret = SSL_shutdown(self.ssl)  # sends close_notify; does not wait for the peer's
        if ret < 0 and SSL_get_error(self.ssl, ret) == SSL_ERROR_WANT_WRITE:
            # The kernel's send buffer is full (the last of a large write still in it): close_notify goes when it
            # takes more; closing now would end the stream without it. Bounded: a peer that never reads is cut.
            ERR_clear_error()
            if not self.shutting:
                self.shutting = True
                self.shutdown_timer = self.loop.call_later(SHUTDOWN_TIMEOUT, self._force_close, None)
            self._update()
            return
        ERR_clear_error()
        self._drop()
        self.loop.call_soon(self._lost, None)

    def _force_close(self, exc):
        if self.closed:
            return
        self.closing = True
        had_protocol = self.protocol is not None
        self._drop()
        if had_protocol:
            self.loop.call_soon(self._lost, exc)

    def _lost(self, exc):
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.connection_lost(exc)

    cdef _drop(self):
        cdef NativeServer server = self.server
        if self.closed:
            return
        self.closing = True
        self.closed = True
        if self.shutdown_timer is not None:
            self.shutdown_timer.cancel()
            self.shutdown_timer = None
        if self.handshaking:
            self.handshaking = False
            server.handshaking.discard(self)
        if self.sock is not None:
            self.sock.detach()
            self.sock = None
        # Closing the socket takes it out of the epoll set (accept4 made it close-on-exec and nothing duplicates
        # it), so no epoll_ctl; the dict entry goes with it, the last of a closed listener's releases the set.
        self.interest = 0
        c_close(self.fd)
        server.fds.pop(self.fd, None)
        self.fd = -1
        if self.pending is not None:
            self.pending = None
        if not server.serving:
            server._release()

    # ------------------------------------------------------------ the rest of asyncio.Transport

    def get_protocol(self):
        return self.protocol

    def set_protocol(self, protocol):
        self.protocol = protocol

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return self._socket_info(True, default)
        if name == "sockname":
            return self._socket_info(False, default)
        if name == "socket":
            if self.closed:
                return default
            if self.sock is None:
                self.sock = _socket_module.socket(fileno=self.fd)
            return self.sock
        if name == "ssl_object" or name == "sslcontext":
            if self.ssl == NULL or self.closed:
                return default
            return self.info() if name == "ssl_object" else self.server.context
        if name == "cipher" or name == "peercert":
            return default
        return default

    cdef object _socket_info(self, bint peer, default):
        cdef str key = "peername" if peer else "sockname"
        if self.extra is None:
            self.extra = {}
        value = self.extra.get(key, self)
        if value is not self:
            return value
        cdef char text[64]
        cdef int port = 0
        cdef unsigned int flowinfo = 0, scope = 0
        cdef int family
        if self.closed:
            return default
        family = c_address(self.fd, peer, text, sizeof(text), &port, &flowinfo, &scope)
        if family == AF_INET:
            value = (text.decode("ascii"), port)
        elif family == AF_INET6:
            value = (text.decode("ascii"), port, flowinfo, scope)
        else:
            return default
        self.extra[key] = value
        return value

    # the TlsInfo's questions, answered from the SSL *

    cdef object _alpn(self):
        cdef const unsigned char *data = NULL
        cdef unsigned int length = 0
        if self.ssl == NULL or self.closed:
            return None
        SSL_get0_alpn_selected(self.ssl, &data, &length)
        if data == NULL or length == 0:
            return None
        return (<const char *>data)[:length].decode("ascii", "replace")

    cdef object _server_name(self):
        cdef const char *name
        if self.ssl == NULL or self.closed:
            return None
        name = SSL_get_servername(self.ssl, 0)
        if name == NULL:
            return None
        return name[:strlen(name)].decode("ascii", "replace")

    cdef object _version(self):
        cdef const char *name
        if self.ssl == NULL or self.closed:
            return None
        name = SSL_get_version(self.ssl)
        return name[:strlen(name)].decode("ascii", "replace")

    cdef bint _resumed(self):
        return self.ssl != NULL and not self.closed and SSL_session_reused(self.ssl) == 1


cdef class TlsInfo:
    """What the app protocols ask of `get_extra_info("ssl_object")`, answered by the native connection."""

    cdef NativeTransport transport
    cdef public object pyngress_server_name
    cdef public object pyngress_client_auth
    cdef public object context

    @property
    def pyngress_ssl_pointer(self):
        """The connection's `SSL *` (proxy/tls/client_auth.py calls libssl on it); 0 once closed."""
        transport = self.transport
        if transport is None or transport.closed or transport.ssl == NULL:
            return 0
        return <size_t>transport.ssl

    def selected_alpn_protocol(self):
        return self.transport._alpn()

    def server_hostname(self):
        return None

    def version(self):
        return self.transport._version()

    def session_reused(self):
        return self.transport._resumed()

    def getpeercert(self, binary_form=False):
        """The client's certificate in DER (binary_form only, what client_auth.py asks), or None."""
        cdef X509 *cert
        cdef unsigned char *der = NULL
        cdef int length
        transport = self.transport
        if not binary_form:
            raise ValueError("the native transport gives the peer certificate in binary form only")
        if transport is None or transport.closed or transport.ssl == NULL:
            return None
        cert = SSL_get1_peer_certificate(transport.ssl)
        if cert == NULL:
            return None
        length = i2d_X509(cert, &der)
        X509_free(cert)
        if length <= 0 or der == NULL:
            ERR_clear_error()
            return None
        try:
            return PyBytes_FromStringAndSize(<char *>der, length)
        finally:
            CRYPTO_free(der, NULL, 0)


def logger_error(error):
    import logging
    logging.getLogger("pyngress.tls").error("TLS certificate selection failed: %r", error)


cdef object _os_error(int code):
    return OSError(code, os.strerror(code))
