# Compiled by Cython (pure-Python mode) from lru_maintainer.py; see framework/extensions.py.
cimport cython
from kvshard.cache cimport Cache
from kvshard.slab_arena cimport SlabArena


cdef class LruMaintainer:
    cdef Cache _cache
    cdef SlabArena _arena
    cdef object _loop, _monotonic, _timer
    cdef public int state
    cdef public long long juggles
    cdef public list _backoff, _next_due
    cdef list _pending

    @cython.locals(now=cython.double, nearest=cython.double, arena=SlabArena, due=list, pending=list,
                   budget=Py_ssize_t, done=Py_ssize_t, cls=Py_ssize_t, did=Py_ssize_t)
    cpdef void _wake(self) except *
    @cython.locals(wait=cython.double)
    cdef void _back_off(self, Py_ssize_t cls, Py_ssize_t did, double now)
