# Compiled by Cython (pure-Python mode) from counters.py; see framework/extensions.py.
cimport cython

cdef class Counters:
    pass


@cython.final
cdef class CacheCounters(Counters):
    cdef public long long cmd_touch, cmd_flush, cmd_meta, get_misses, get_expired
    cdef public long long delete_misses, incr_misses, decr_misses
    cdef public long long cas_misses, touch_misses
    cdef public long long evictions, total_items, reclaimed, store_too_large, store_no_memory
    cdef public long long expired_unfetched, evicted_unfetched, evicted_active
    cdef public long long crawler_reclaimed, crawler_items_checked, lru_crawler_starts
    cdef public long long slab_reassign_rescues, slab_reassign_chunk_rescues, slab_reassign_evictions_nomem
    cdef public long long slab_reassign_inline_reclaim, slabs_moved
    cdef long long[::1] per_class
    cdef public object hit_source


cdef class ConnectionCounters(Counters):
    cdef public long long curr_connections, total_connections, rejected_connections, idle_kicks
    cdef public long long bytes_read, bytes_written, auth_cmds, auth_errors, conn_yields
