# Compiled by Cython (pure-Python mode) from service.py; see framework/extensions.py.
from kvshard.cache cimport Cache
from kvshard.counters cimport ConnectionCounters


cdef class KVService:
    cdef public Cache cache
    cdef public object _loop
    cdef public object _flush_timer
    cdef public object _reclaim_timer
    cdef public ConnectionCounters conn_stats
    cdef object __weakref__

    cpdef bytes get_one(self, key)
    cpdef bytes run_fixed(self, int handler_id, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_get_one(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_store(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_delete(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_arith(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_touch(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_bget_packet(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_bstore_packet(self, key, value, long long a, long long b, long long c)
