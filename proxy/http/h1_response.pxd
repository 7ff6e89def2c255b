from proxy.http.h1_writer cimport H1Writer

cdef class H1Response:
    cdef public object exchange
    cdef public H1Writer writer
    cdef public object parser
    cdef public object reason
    cdef public object fields
    cdef public object length
    cdef public object chunked
    cdef public object upgrade
    cdef public object connection
    cdef public object interim
    cdef public object hsts

