cdef class IdPool:
    cdef public object pool
    cdef public object at
    cdef public object traceparents

