# Compiled by Cython (pure-Python mode) from item_dumps.py; see framework/extensions.py.
cimport cython
from kvshard.slab_arena cimport SlabArena

cdef Py_ssize_t _END_ROOM

@cython.locals(lines=list, total=Py_ssize_t, ref=size_t, expire_at=cython.double, key=bytes, line=bytes)
cpdef list cachedump_lines(SlabArena arena, Py_ssize_t cls, unsigned long long limit, Py_ssize_t used=*)
@cython.locals(counts=dict, lst=Py_ssize_t, ref=size_t, size=Py_ssize_t, bucket=Py_ssize_t)
cpdef dict size_histogram(SlabArena arena, unsigned long long cas_min, Py_ssize_t largest)
