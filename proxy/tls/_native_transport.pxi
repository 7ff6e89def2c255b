# The connection side of proxy/tls/_native.pyx (included by it): NativeTransport, the asyncio transport of one TLS
# connection, and TlsInfo, what the app protocols ask of get_extra_info("ssl_object").

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
    cdef object sock  # the socket.socket over fd, made on demand for get_extra_info("socket")
    cdef object sock_view  # what that returns: asyncio's wrapper of it
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
            # Handed out by get_extra_info("socket"): it may have been duplicated, and the kernel drops an epoll
            # entry only when the last descriptor of the open file is closed, so it leaves the set explicitly.
            if self.interest:
                c_epoll_ctl(server.epfd, EPOLL_CTL_DEL, self.fd, 0)
            self.sock.detach()
            self.sock = self.sock_view = None
        # Otherwise closing the socket takes it out of the epoll set (accept4 made it close-on-exec and nothing else
        # holds it), so no epoll_ctl; the dict entry goes with it, the last of a closed listener's releases the set.
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
                # asyncio's own transports' wrapper: no close() or detach() (the descriptor stays the transport's)
                self.sock = _socket_module.socket(fileno=self.fd)
                self.sock_view = _TransportSocket(self.sock)
            return self.sock_view
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
