cdef class ResponseWriter:
    cdef public object listener
    cdef public object out
    cdef public object passthrough
    cdef public bint chunked
    cpdef head(self, ex, status, reason, fields, length, chunked, own_hsts, draining)
    cpdef body(self, chunk)
    cpdef end(self)
    cpdef flush(self)
