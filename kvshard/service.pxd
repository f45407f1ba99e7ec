# Compiled by Cython (pure-Python mode) from service.py; see framework/extensions.py.
from kvshard.cache cimport Cache


cdef class KVService:
    cdef public Cache cache
    cdef public object _loop
    cdef public object _flush_timer
    cdef public object _reclaim_timer
    cdef public dict conn_stats
    cdef object __weakref__
