cdef class Series:
    cdef public object requests
    cdef public object received
    cdef public object sent
    cdef public object retries
    cdef public object duration_sum
    cdef public object duration_buckets
    cdef public object upstream_count
    cdef public object upstream_sum
    cdef public object upstream_buckets
    cdef public object exemplars

cdef class RouteStats:
    cdef public object labels
    cdef public object series
    cdef public object log_fields
    cdef public object log
    cdef public object rate_limited
    cdef public object faults_delayed
    cdef public object faults_aborted

