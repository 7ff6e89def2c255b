from proxy.http.exchange cimport Exchange


cdef class H1Response:
    cdef public Exchange exchange  # (exchange.py imports this module, not its names: see README)
    cdef public object writer  # H1Writer or proxy.http2.stream.H2Writer
    cdef public object parser
    cdef public object reason
    cdef public object fields
    cdef public object length
    cdef public object chunked
    cdef public object upgrade
    cdef public object connection
    cdef public object interim
    cdef public object hsts
    cdef public object trailers
    cdef public object remaining
    cdef public object tail

