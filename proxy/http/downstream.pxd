cimport cython

from proxy.http.response_writer cimport ResponseWriter

cdef class ServerState:
    cdef public object now
    cdef public object draining
    cdef public object total_requests
    cdef public object max_request_line
    cdef public object max_headers
    cdef public object max_header_bytes
    cdef public object max_head_bytes
    cdef public object header_timeout
    cdef public object keepalive_timeout
    cdef public object keepalive_requests
    cdef public set connections
    cdef public object active_connections
    cdef public object total_connections
    cdef public object all_closed


cdef class Downstream:
    cdef public ServerState server  # the ProxyServer
    cdef public object listener
    cdef public ResponseWriter writer  # an H1Writer, or an HTTP/2 stream's H2Writer
    cdef public object client_ip
    cdef public object scheme
    cdef public object forwarded
    cdef public object forwarded_ip_end
    cdef public object blocked
    cdef public object write_paused
    cdef public object write_paused_since
    cdef public object last_read
    cpdef block(self, bit)
    cpdef unblock(self, bit)
    cpdef exchange_finished(self, ex, keep_alive)


# The open connections' bookkeeping: C functions for compiled callers (h1_connection.pxd cimports this module).
cpdef connection_opened(ServerState server, conn, listener)
@cython.locals(connections=set)
cpdef connection_closed(ServerState server, conn, listener)
@cython.locals(connections=set)
cpdef bint connection_replaced(ServerState server, conn, successor) except -1
