# Compiled by Cython (pure-Python mode) from cache.py; see framework/extensions.py.
cimport cython
from kvshard.counters cimport CacheCounters
from cpython.bytes cimport PyBytes_AS_STRING
from kvshard.protocol.ascii cimport value_line, value_block_shell, value_header_size, write_value_header
from kvshard.packed_blocks cimport pack_blocks, put_le32
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from kvshard.protocol.binary cimport get_hit, get_hit_shell, get_hit_value_at
from kvshard.slab_arena cimport SlabArena
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME

# store() results, compiled: C constants (cache.py defines the same numbers for the interpreted modules)
cpdef enum:
    STORED = 0
    NOT_STORED = 1
    EXISTS = 2
    NOT_FOUND = 3
    NO_MEMORY = 4

# item marks (cache.py defines the same numbers for the interpreted modules)
cpdef enum:
    STALE = 1
    WIN_SENT = 2
    BINARY_KEY = 4
    FETCHED = 8
    ACTIVE = 16

cdef Py_ssize_t _AT_CMD_SET, _AT_DELETE_HITS, _AT_INCR_HITS, _AT_DECR_HITS, _AT_CAS_HITS
cdef Py_ssize_t _AT_CAS_BADVAL, _AT_TOUCH_HITS

cpdef tuple render(bytes key, object flags, bytes value)

cdef class Cache:
    cdef public Py_ssize_t limit
    cdef SlabArena _arena
    cdef public object _clock
    cdef public long long _cas_counter
    cdef public long long _shard_id
    cdef public long long _shard_count
    cdef public bint cas_enabled
    cdef public CacheCounters stats
    cdef long long _evictions_seen, _reclaims_seen
    cdef tuple _seen_counts
    cdef bint _system_clock
    cdef int _watch_flags
    cdef public object watch_log
    cdef object __weakref__

    @cython.locals(ref=size_t)
    cpdef int _put(self, bytes key, bytes value, unsigned int flags, unsigned int expire_at, unsigned long long cas=*,
                   unsigned int marks=*) except -1
    @cython.locals(flags=cython.uint, value=bytes, block=bytes)
    cdef tuple _item(self, size_t ref, bytes key)
    @cython.locals(ref=size_t, expire_at=cython.uint)
    cpdef size_t _live_ref(self, key) except? 0
    @cython.locals(ref=size_t)
    cpdef _live(self, key)
    cpdef _remove(self, key, tuple item)
    @cython.locals(marks=cython.uint)
    cdef int _hit(self, size_t ref) except -1
    @cython.locals(ref=size_t)
    cpdef get(self, key)
    @cython.locals(ref=size_t, block=bytes)
    cpdef get_block(self, key, bytes tail=*)
    @cython.locals(ref=size_t)
    cpdef get_value(self, key)
    @cython.locals(n=Py_ssize_t, refs="size_t *", total=Py_ssize_t, i=Py_ssize_t, key=bytes, ref=size_t,
                   nbytes=Py_ssize_t, packed=bytes, out="char *", at=Py_ssize_t, size=Py_ssize_t, blocks=list)
    cpdef bytes get_blocks_packed(self, list keys, bint with_cas)
    @cython.locals(ref=size_t, packet=bytes)
    cpdef bytes get_binary_hit(self, key, unsigned int opaque)
    @cython.locals(ref=size_t)
    cdef size_t _get_ref(self, key) except? 0
    @cython.locals(ref=size_t)
    cpdef unsigned long long cas_of(self, key) except? 0
    cpdef unsigned long long last_cas(self)
    cpdef int set_item(self, bytes key, unsigned int flags, long long exptime, bytes value, unsigned long long new_cas=*,
                       unsigned int marks=*) except -1
    cpdef long long expire_at(self, long long exptime) except? -1
    @cython.locals(nbytes=Py_ssize_t)
    cpdef count_hit(self, Py_ssize_t counter, key, tuple item)
    @cython.locals(ts=timespec)
    cpdef double now(self) except? -1
    @cython.locals(ts=timespec)
    cpdef long long now_second(self) except? -1
    cpdef unsigned long long _next_cas(self) except? 0
