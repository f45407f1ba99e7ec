# Compiled by Cython (pure-Python mode) from binary.py; see framework/extensions.py.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

@cython.locals(n=Py_ssize_t, out=cython.p_uchar, packet=bytes)
cpdef bytes get_hit(unsigned int opaque, unsigned long long cas, unsigned int flags, value)
cdef void _put_be32(unsigned char *out, unsigned int n)
@cython.locals(p=cython.p_uchar, key_len=cython.uint, body_len=cython.uint, opaque=cython.uint)
cpdef object single_get(bytes data)
