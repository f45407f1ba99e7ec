# Compiled by Cython (pure-Python mode) from routing.py; see framework/extensions.py.
cimport cython
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef extern from "<endian.h>":
    uint64_t le64toh(uint64_t x) nogil

cdef extern from *:
    ctypedef unsigned long long uint128 "unsigned __int128"  # (gcc's; Cython sees 64 bits, C 128)

cdef unsigned long long _M61, _MIX1, _MIX2
cdef list _memo_keys
cdef Py_ssize_t _MEMO_SLOTS
cdef unsigned long long _memo_mixes[16]  # _MEMO_SLOTS

cpdef Py_ssize_t owner_of(key, Py_ssize_t shards) except -1
cpdef unsigned long long route_hash(key) except? 0
@cython.locals(mix=cython.ulonglong, slot=cython.size_t)
cpdef unsigned long long key_mix(key) except? 0
@cython.locals(slot=cython.size_t)
cpdef void remember_mix(bytes key, unsigned long long mix)
cdef unsigned long long mix_at(const unsigned char *data, size_t n) noexcept nogil
cdef unsigned long long _mix64(unsigned long long x) noexcept nogil
@cython.locals(top=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, residue=cython.ulonglong, word=cython.ulonglong,
               acc=uint128, words=Py_ssize_t)
cdef unsigned long long _mod_m61(const unsigned char *data, Py_ssize_t n) noexcept nogil
cdef unsigned long long _fold128(uint128 x) noexcept nogil
cdef unsigned long long _fold(unsigned long long x) noexcept nogil
