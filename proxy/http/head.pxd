from proxy.http.fields cimport FlatFields

cdef class RequestHead(FlatFields):
    cdef public object method
    cdef public object target
    cdef public object authority
    cdef public object header_count
    cdef public object header_bytes
    cdef public object forwarded_for
    cdef public object forwarded_in
    cdef public object request_id
    cdef public object upgrade
    cdef public object connection_names
    cdef public object content_length
    cdef public object chunked
    cdef public object http10
    cdef public object websocket
    cdef public object user_agent
    cdef public object traceparent
    cdef public object tracestate
    cdef public bytes trace
    cdef public bytes id_pool
    cdef public Py_ssize_t id_at
    cdef public object te_trailers
    cdef public object scheme
    cdef public object host
    cdef public object path
    cdef public object query
    cdef public object port
    cdef public object https_port
    cdef public object rewritten
    cdef public object server_name
    cdef public object _query_values

