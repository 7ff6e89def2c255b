cdef object _view  # a C global: the shared read buffer (see the module)


cdef class UpstreamConnection:
    cdef public object pool
    cdef public object transport
    cdef public object user
    cdef public object requests
    cdef public object idle_since
    cdef public object reading_paused
    cdef public object writing_paused
    cdef public object closed
    cdef public object reader

