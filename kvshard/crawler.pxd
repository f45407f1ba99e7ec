# Compiled by Cython (pure-Python mode) from crawler.py; see framework/extensions.py.
cimport cython
from kvshard.cache cimport Cache
from kvshard.slab_arena cimport SlabArena


cdef class LruCrawler:
    cdef Cache _cache
    cdef SlabArena _arena
    cdef object _loop, _monotonic
    cdef public int state
    cdef public long long sleep_us, tocrawl
    cdef public list reclaimed, checked
    cdef list _next_due
    cdef int _kind
    cdef bint _enabled_after, _walking
    cdef list _lists
    cdef size_t _cursor
    cdef unsigned long long _cursor_cas
    cdef unsigned int _cursor_hash
    cdef long long _left
    cdef double _walk_started, _earliest
    cdef list _lines
    cdef object _done, _timer

    cdef void _set_cursor(self, size_t ref)
    @cython.locals(arena=SlabArena, cls=Py_ssize_t, ref=size_t, newer=size_t, visited=Py_ssize_t,
                   reclaimed=Py_ssize_t, unfetched=Py_ssize_t, dumping=bint, left=cython.longlong,
                   earliest=cython.double, expire_at=cython.double)
    cdef Py_ssize_t _walk(self, Py_ssize_t lst, Py_ssize_t budget, double now) except -1
