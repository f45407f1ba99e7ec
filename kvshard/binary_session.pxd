# Compiled by Cython (pure-Python mode) from binary_session.py; see framework/extensions.py.
cimport cython
from kvshard.dispatcher cimport Dispatcher
from kvshard.protocol.binary cimport BinaryParser, HotRequest, hot_request, C_OP_GET
from kvshard.protocol.byte_slices cimport bytes_slice
from kvshard.service cimport FIXED_BGET_PACKET, FIXED_BSTORE_PACKET


cdef class BinarySession:
    cdef public Dispatcher _dispatcher
    cdef public BinaryParser _parser
    cdef public object _credentials
    cdef public bint _continuing
    cdef list _pending
    cdef Py_ssize_t _pending_at
    cdef object __weakref__

    @cython.locals(dispatcher=Dispatcher, parser=BinaryParser, hot=HotRequest, key=bytes)
    cpdef bint feed(self, data)
    cpdef bint run_pending(self)
    @cython.locals(dispatcher=Dispatcher, ran=Py_ssize_t, parser=BinaryParser)
    cdef bint _run(self, list requests, Py_ssize_t at, Py_ssize_t quota)
    cpdef _execute(self, r)
