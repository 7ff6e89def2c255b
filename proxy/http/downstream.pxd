from proxy.http.response_writer cimport ResponseWriter

cdef class Downstream:
    cdef public object server
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
