# Compiled by Cython (pure-Python mode) from packed_blocks.py; see framework/extensions.py.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.string cimport memcpy
from kvshard.protocol.byte_slices cimport bytes_slice


@cython.locals(total=Py_ssize_t, at=Py_ssize_t, size=Py_ssize_t, out="char *", packed=bytes)
cpdef bytes pack_blocks(list blocks)
@cython.locals(at=Py_ssize_t, size=Py_ssize_t, end=Py_ssize_t, p=cython.p_uchar, blocks=list)
cpdef list unpack_blocks(bytes packed, Py_ssize_t count)
@cython.locals(count=Py_ssize_t, cursors="Py_ssize_t *", total=Py_ssize_t, i=Py_ssize_t, owner=Py_ssize_t,
               part=bytes, size=Py_ssize_t, merged=bytes, out="char *", at=Py_ssize_t)
cpdef bytes merge_blocks(list owners, list parts, bytes tail)
@cython.locals(at=Py_ssize_t, size=Py_ssize_t)
cdef Py_ssize_t _next_block(bytes part, Py_ssize_t *cursor) except -1
cdef unsigned int _le32(const unsigned char *p) noexcept
cdef void put_le32(char *out, unsigned int n) noexcept
