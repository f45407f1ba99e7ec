# Compiled by Cython (pure-Python mode) from byte_slices.py; see framework/extensions.py.
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memchr

cpdef bytes bytes_slice(bytes data, Py_ssize_t start, Py_ssize_t stop)
@cython.locals(base="char *", hit="char *")
cpdef Py_ssize_t find_newline(bytes data, Py_ssize_t start, Py_ssize_t end)
