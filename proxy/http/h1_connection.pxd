cimport cython

from proxy.http cimport downstream as _downstream  # its connection bookkeeping functions are C calls
from proxy.http.downstream cimport Downstream
from proxy.http.exchange cimport Exchange
from proxy.http.head cimport RequestHead
from proxy.http.ids cimport IdPool
from proxy.http.pipeline cimport Pipeline
cdef IdPool _ids  # a typed global: the request ids' position is read and moved as a struct field


cdef class ClientConnection(Downstream):
    cdef public object requests_left
    cdef public Pipeline pipeline
    cdef public object transport
    cdef public object parser
    cdef public RequestHead head  # the request whose head is being parsed (an Exchange)
    cdef public Exchange request
    cdef public Exchange active
    cdef public object queue
    cdef public object upgrading
    cdef public object tunnel
    cdef public object deferred
    cdef public object state
    cdef public object since
    cdef public object idle_limit
    cdef public object head_bytes
    cdef public object closing
    cdef public object closed
    cdef public object eof
    cdef public object server_name
    cdef public object peer_certificate
    cpdef block(self, bit)
    cpdef unblock(self, bit)
    @cython.locals(request=Exchange)
    cpdef exchange_finished(self, ex, keep_alive)
