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
