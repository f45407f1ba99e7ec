# Compiled by Cython (pure-Python mode) from service.py; see framework/extensions.py.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy
from framework.channel cimport FixedTarget
from kvshard.cache cimport Cache, NO_MEMORY, STORED
from kvshard.counters cimport ConnectionCounters
from kvshard.protocol.byte_slices cimport bytes_slice
from kvshard.packed_blocks cimport pack_blocks
from kvshard.protocol.ascii cimport tokenize
from kvshard.protocol.binary cimport C_OP_SET, C_OP_SETQ, header_only


# The fixed-record handler ids, compiled: C constants (service.py defines the same numbers for
# the interpreted modules), so run_fixed and the sessions pick a handler in C.
cpdef enum:
    FIXED_GET_ONE = 1
    FIXED_STORE = 2
    FIXED_DELETE = 3
    FIXED_ARITH = 4
    FIXED_TOUCH = 5
    FIXED_BGET_PACKET = 6
    FIXED_BSTORE_PACKET = 7
    FIXED_GET_MANY = 8

cdef tuple _STORE_REPLIES




cdef class KVService(FixedTarget):
    cdef public Cache cache
    cdef public object _loop
    cdef public object _flush_timer
    cdef public object _reclaim_timer
    cdef public ConnectionCounters conn_stats
    cdef public object crawler, maintainer, items, mover
    cdef public object prefixes
    cdef public bint detail_enabled
    cdef object __weakref__

    cpdef bytes get_one(self, key)
    cpdef list get(self, keys, bint with_cas)
    cpdef bytes get_packed(self, list keys, bint with_cas)
    cpdef bytes run_fixed(self, int handler_id, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_get_one(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_store(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_get_many(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_delete(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_arith(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_touch(self, key, value, long long a, long long b, long long c)
    cpdef bytes fixed_bget_packet(self, key, value, long long a, long long b, long long c)
    @cython.locals(unsigned_b=cython.ulonglong)
    cpdef bytes fixed_bstore_packet(self, key, value, long long a, long long b, long long c)
    @cython.locals(packet=bytes)
    cpdef bytes bget_packet(self, key, unsigned int opaque)
    @cython.locals(cache=Cache)
    cpdef bytes bstore_packet(self, unsigned int opcode, key, unsigned int flags, unsigned int exptime, value,
                              unsigned long long cas, unsigned int opaque)
    cpdef tuple bstore(self, op, key, unsigned int flags, long long exptime, value, unsigned long long cas)
