from proxy.http.downstream cimport ServerState
from proxy.http.exchange cimport Exchange

cdef dict _request_cache  # a C global: .get() per field is a dict call, not a method lookup
