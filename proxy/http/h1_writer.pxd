cimport cython

from proxy.http.exchange cimport Exchange
from proxy.http.response_writer cimport ResponseWriter

cdef dict _STATUS_PREFIXES  # a C global: .get() on it is a dict call, not a method lookup


cdef class H1Writer(ResponseWriter):
    cdef public object transport
    cdef public object write
    @cython.locals(request=Exchange, out=list)
    cpdef head(self, ex, status, reason, fields, length, chunked, own_hsts, draining)
    @cython.locals(out=list)
    cpdef body(self, chunk)
    @cython.locals(out=list)
    cpdef end(self)
    @cython.locals(out=list)
    cpdef flush(self)
