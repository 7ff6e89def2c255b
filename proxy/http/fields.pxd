cdef class FlatFields:
    cdef public list fields
