# Compiled, AccessLog.add is a typed C method that record.py calls directly (accesslog.py turns Cython's reading of
# its annotations off: `int` there would mean a Python int, where these are C numbers).
cimport cython

# The digit tables (module globals typed: an index is a C bounds check and a read, not a generic item lookup).
cdef Py_ssize_t _NUMBERS_END
cdef tuple _NUMBERS, _DIGITS3, _MILLIS_ID, _BYTES_OUT, _DURATION_MS, _UPSTREAM_MS
cdef bytes _PLAIN_END

cdef class AccessLog:
    cdef public object fd
    cdef public Py_ssize_t limit
    cdef public object interval
    cdef public object pending
    cdef public Py_ssize_t dropped
    cdef public Py_ssize_t written
    cdef public object _wake
    cdef public object _stop
    cdef public object _thread
    cdef public object _lock
    cdef public object _failed
    cdef public Py_ssize_t _reported
    cdef public object _whole
    cdef public object _loop
    cdef public object _out
    cdef public object _timer
    cdef public object _rest
    cdef public Py_ssize_t _taken
    cdef public Py_ssize_t _batch
    cdef long long _second
    cdef bytes _stamp
    cdef long _millisecond
    cdef bytes _start
    cdef bytes _client
    cdef bytes _method
    cdef bytes _host
    cdef bytes _agent
    cdef object _append
    cdef bytes _who
    cdef long _status
    cdef bytes _protocol
    cdef bytes _answer
    cdef bytes _bare_answer
    cdef bytes _upstream
    cdef bytes _route
    cdef bytes _where
    cdef bytes _plain_tail

    @cython.locals(second=cython.longlong, millisecond=cython.long, micros=cython.longlong)
    cpdef add(self, double when, bytes request_id, bytes client, bytes method, bytes host, bytes target,
              bytes protocol, long status, long long bytes_in, long long bytes_out, double duration,
              double upstream_duration, bytes upstream, bytes route, bytes user_agent, long retries, str reason=*,
              bytes trace=*, long grpc_status=*)
    cdef _start_millisecond(self, long long second, long millisecond)
