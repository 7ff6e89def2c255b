cdef class H1Writer:
    cdef public object transport
    cdef public object listener
    cdef public object out
    cdef public object chunked
    cdef public object passthrough

