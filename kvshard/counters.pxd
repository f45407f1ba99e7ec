# Compiled by Cython (pure-Python mode) from counters.py; see framework/extensions.py.

cdef class Counters:
    pass


cdef class CacheCounters(Counters):
    cdef public long long cmd_set, cmd_touch, cmd_flush, cmd_meta, get_hits, get_misses, get_expired
    cdef public long long delete_hits, delete_misses, incr_hits, incr_misses, decr_hits, decr_misses
    cdef public long long cas_hits, cas_misses, cas_badval, touch_hits, touch_misses
    cdef public long long evictions, total_items, reclaimed, store_too_large, store_no_memory
    cdef public long long expired_unfetched, evicted_unfetched, evicted_active
    cdef public long long crawler_reclaimed, crawler_items_checked, lru_crawler_starts


cdef class ConnectionCounters(Counters):
    cdef public long long curr_connections, total_connections, rejected_connections, idle_kicks
    cdef public long long bytes_read, bytes_written, auth_cmds, auth_errors, conn_yields
