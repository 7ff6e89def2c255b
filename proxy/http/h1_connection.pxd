from proxy.http.exchange cimport Exchange
from proxy.http.h1_writer cimport H1Writer
from proxy.http.head cimport RequestHead
from proxy.http.pipeline cimport Pipeline
cdef class ClientConnection:
    cdef public object requests_left
    cdef public object server
    cdef public object listener
    cdef public Pipeline pipeline
    cdef public object transport
    cdef public H1Writer writer
    cdef public object parser
    cdef public RequestHead head  # the request whose head is being parsed (an Exchange)
    cdef public object client_ip
    cdef public object scheme
    cdef public object forwarded
    cdef public object forwarded_ip_end
    cdef public Exchange request
    cdef public Exchange active
    cdef public object queue
    cdef public object upgrading
    cdef public object tunnel
    cdef public object deferred
    cdef public object blocked
    cdef public object state
    cdef public object since
    cdef public object idle_limit
    cdef public object last_read
    cdef public object head_bytes
    cdef public object write_paused
    cdef public object write_paused_since
    cdef public object closing
    cdef public object closed
    cdef public object eof
    cdef public object server_name
    cdef public object peer_certificate

