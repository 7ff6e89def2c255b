from proxy.http cimport raw_body as _raw  # its functions are C calls (`_raw.take(self, ...)`)
from proxy.http.downstream cimport Downstream
from proxy.http.h1_response cimport H1Response
from proxy.http.head cimport RequestHead
from proxy.http.response_writer cimport ResponseWriter
from proxy.stats cimport RouteStats
from proxy.upstream.pool cimport EndpointPool

cdef class Exchange(RequestHead):
    cdef public Downstream client
    cdef public object client_ip
    cdef public object keep_alive
    cdef public object head_done
    cdef public object req_done
    cdef public object upstream
    cdef public EndpointPool pool
    cdef public object conn  # an UpstreamConnection, or an HTTP/2 stream (proxy/upstream/h2_stream.py)
    cdef public object connecting
    cdef public object attempts
    cdef public object max_attempts
    cdef public object up_out
    cdef public object replay
    cdef public object replay_size
    cdef public object maybe_stale
    cdef public object last_up
    cdef public object body_limit
    cdef public object timeouts
    cdef public object deadline
    cdef public object attempt_deadline
    cdef public object response_filters
    cdef public object mirrors
    cdef public object policy
    cdef public ResponseWriter writer  # an H1Writer, or an HTTP/2 stream's H2Writer
    cdef public object response  # an H1Response, or an HTTP/2 stream (proxy/upstream/h2_stream.py)
    cdef public object resp_head_done
    cdef public object resp_done
    cdef public object reusable
    cdef public object tunnel
    cdef public object finished
    cdef public object started
    cdef public object status
    cdef public object received
    cdef public object sent
    cdef public object sent_at
    cdef public object upstream_time
    cdef public object retries
    cdef public RouteStats route_stats
    cdef public object accounted
    cdef public object reason
    cdef public object grpc_status


    # The request path's calls from compiled modules (the client protocol, the pipeline, the response reader) and
    # between these methods go through the C method table, not an attribute lookup and a Python call. Callers
    # pass the flags after `head` (start's retries, response_head's length...) by name.
    cpdef start(self, upstream, list head, retries)
    cpdef attach(self, conn, EndpointPool pool)
    cpdef flush_upstream(self)
    cpdef add_body(self, bytes chunk)
    cpdef request_complete(self)
    cpdef upstream_data(self, data)  # bytes, or a memoryview of the shared read buffer (uvloop)
    cpdef response_head(self, status, bytes reason, list fields, length, chunked, own_hsts, reusable)
    cpdef account(self)
    cpdef response_finished(self)
