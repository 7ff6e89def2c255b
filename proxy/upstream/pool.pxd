cdef class EndpointPool:
    cdef public object endpoint
    cdef public object resolve
    cdef public object limit
    cdef public object idle_timeout
    cdef public object connect_timeout
    cdef public object idle
    cdef public object retired
    cdef public object _timer
    cdef public object log_address
    cdef public object _loop
    cdef public object index
    cdef public object in_flight
    cdef public object failures
    cdef public object healthy
    cdef public object tls
    cdef public object gateway_failures
    cdef public object open
    cdef public object ejected_until
    cdef public object ejections
    cdef public object returned_at
    cdef public object ewma
    cdef public object ewma_at
    cdef public object token

