from proxy.http.fields cimport FlatFields

cdef class ResponseHead(FlatFields):
    cdef public object status

