cimport cython

from proxy.http.exchange cimport Exchange
from proxy.http.h1_response cimport H1Response

# C functions of a typed Exchange: exchange.pxd cimports this module (`_raw.take(...)` is a C call there).
@cython.locals(response=H1Response, size=Py_ssize_t, end=Py_ssize_t)
cpdef bint feed(Exchange ex, data) except -1
@cython.locals(tail=bytes, end=Py_ssize_t)
cpdef Py_ssize_t head_end(H1Response response, data) except -2
@cython.locals(response=H1Response)
cpdef start(Exchange ex, data)
cpdef keep_tail(H1Response response, data)
@cython.locals(response=H1Response)
cpdef take(Exchange ex, data, begin)
cpdef flush(Exchange ex, data)
