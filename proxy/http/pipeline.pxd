cimport cython

from proxy.http.downstream cimport Downstream
from proxy.http.exchange cimport Exchange

cdef class Pipeline:
    cdef public object server
    cdef public object listener
    cdef public object holder
    cdef public object settings
    cdef public object tracer
    cdef public bint tracing
    cdef public bint trace_by_default
    cdef public bytes sampled_below
    cdef public object trust
    cdef public object body_limit
    cdef public object gateway_body_limit

    # Called by the HTTP/1.1 connection (a typed field there) through the C method table; typed locals for a traced
    # request (the id pool as a C string, its position, its traceparent value, the fields list).
    @cython.locals(pool=p_const_char, at=Py_ssize_t, trace=bytes, fields=list)
    cpdef dispatch(self, Downstream conn, Exchange ex)
