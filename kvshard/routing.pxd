# Compiled by Cython (pure-Python mode) from routing.py; see framework/extensions.py.
cimport cython

cdef unsigned int _CRC_TABLE[8 * 256]

cpdef Py_ssize_t owner_of(key, Py_ssize_t shards) except -1

@cython.locals(data="const unsigned char *", crc=cython.uint, i=Py_ssize_t, n=Py_ssize_t)
cdef unsigned int _table_crc32(bytes key)

@cython.locals(n=cython.uint, crc=cython.uint, k=cython.uint, prev=cython.uint)
cdef void _fill_table()
