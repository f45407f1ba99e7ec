# Compiled by Cython (pure-Python mode) from binary_session.py; see framework/extensions.py.
cimport cython
from kvshard.dispatcher cimport Dispatcher


cdef class BinarySession:
    cdef public Dispatcher _dispatcher
    cdef public object _parser
    cdef public object _credentials
    cdef public bint _continuing
    cdef object __weakref__

    @cython.locals(dispatcher=Dispatcher)
    cpdef feed(self, data)
    cpdef _execute(self, r)
