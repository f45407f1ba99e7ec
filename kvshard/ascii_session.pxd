# Compiled by Cython (pure-Python mode) from ascii_session.py; see framework/extensions.py.
cimport cython
from kvshard.context cimport ShardContext
from kvshard.dispatcher cimport Dispatcher
from kvshard.protocol.ascii cimport AsciiParser, single_get_key

cdef list _NO_COMMANDS


cdef class AsciiSession:
    cdef public AsciiParser parser
    cdef Dispatcher _dispatcher
    cdef ShardContext _ctx
    cdef list _batch

    cpdef feed(self, data)
    @cython.locals(dispatcher=Dispatcher, i=Py_ssize_t, last=Py_ssize_t)
    cpdef run(self, list commands)
    @cython.locals(d=Dispatcher, op=long)
    cpdef _execute(self, tuple cmd)
