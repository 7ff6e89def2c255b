from proxy.http.exchange cimport Exchange
from proxy.http.response_writer cimport ResponseWriter

cdef dict _response_cache  # a C global: .get() per response field is a dict call, not a method lookup


cdef class H1Response:
    cdef public Exchange exchange  # (exchange.py imports this module, not its names: see README)
    cdef public ResponseWriter writer  # H1Writer or proxy.http2.stream.H2Writer
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
    cdef public object split

