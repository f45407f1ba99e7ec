# Compiled by Cython (pure-Python mode) from cache.py; see framework/extensions.py.
cimport cython
from kvshard.counters cimport CacheCounters
from kvshard.protocol.ascii cimport value_line

cpdef tuple render(bytes key, object flags, bytes value)

cdef class Cache:
    cdef public Py_ssize_t limit
    cdef public object _items
    cdef public list _expiries
    cdef public object _clock
    cdef public long long _cas_counter
    cdef public long long _shard_id
    cdef public long long _shard_count
    cdef public Py_ssize_t used
    cdef public CacheCounters stats
    cdef object _lookup
    cdef object _to_end
    cdef public object _second
    cdef public object active_horizon
    cdef public int watch_flags
    cdef public object watch_log
    cdef object __weakref__

    @cython.locals(size=Py_ssize_t, block=bytes, header_len=Py_ssize_t, rescues=Py_ssize_t, victim_marks=long)
    cpdef _put(self, key, value, flags, expire_at, cas=*, marks=*)
    cpdef get(self, key)
    cpdef int set_item(self, key, flags, long long exptime, value, new_cas=*, marks=*) except -1
    cpdef double expire_at(self, long long exptime) except? -1
    cpdef _live(self, key)
    cpdef _remove(self, key, tuple item)
    cpdef _record_hit(self, key, tuple item)
    cpdef now_second(self)
    cpdef _next_cas(self)
