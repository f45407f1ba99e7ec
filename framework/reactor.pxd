# Compiled by Cython (pure-Python mode) from reactor.py; see framework/extensions.py.
from framework.ring cimport full_fence


cdef class Reactor:
    cdef object _loop
    cdef int _doorbell_fd
    cdef object _flags
    cdef int _me
    cdef double _idle
    cdef list _pollers
    cdef bint _ticking
    cdef bint _stopped
    cdef double _last_work
    cdef public object ticks
    cdef public object sleeps
    cdef public object doorbells
    cdef object _busy_since
    cdef object _tick_callback
    cdef object __weakref__

    cpdef kick(self)
    cpdef bint _try_sleep(self) except -1
