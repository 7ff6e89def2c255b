cdef class Series:
    cdef public long long requests
    cdef public long long received
    cdef public long long sent
    cdef public long long retries
    cdef public double duration_sum
    cdef public list duration_buckets
    cdef public long long upstream_count
    cdef public double upstream_sum
    cdef public list upstream_buckets
    cdef public object exemplars

cdef class RouteStats:
    cdef public object labels
    cdef public dict series
    cdef public object log_fields
    cdef public object log
    cdef public object rate_limited
    cdef public object faults_delayed
    cdef public object faults_aborted
