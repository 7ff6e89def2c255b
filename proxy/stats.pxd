# Compiled, the per-request counting of RouteStats.record is C: typed arguments (stats.py turns Cython's reading of
# its annotations off: `int` there would mean a Python int), C counters, and C arrays for the buckets (read through
# variables typed Series).
cimport cython

cdef class Series:
    cdef public long long requests
    cdef public long long received
    cdef public long long sent
    cdef public long long retries
    cdef public double duration_sum
    cdef long long duration_buckets[12]  # len(DURATION_BUCKETS) + 1 (+Inf): C counters, lists only in snapshots
    cdef public long long upstream_count
    cdef public double upstream_sum
    cdef long long upstream_buckets[12]
    cdef public object exemplars

cdef class RouteStats:
    cdef public object labels
    cdef public dict series
    cdef public object log_fields
    cdef public object log
    cdef public object rate_limited
    cdef public object faults_delayed
    cdef public object faults_aborted
    cdef bytes last_method
    cdef long last_status
    cdef Series last_series
    @cython.locals(s=Series)
    cpdef list snapshot(self)
    @cython.locals(series=Series)
    cpdef record(self, bytes method, long status, double duration, double upstream, long long received,
                 long long sent, long long retries)

cdef Py_ssize_t bucket(double seconds) noexcept
