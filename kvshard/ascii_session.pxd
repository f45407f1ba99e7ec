# Compiled by Cython (pure-Python mode) from ascii_session.py; see framework/extensions.py.
cimport cython
from kvshard.context cimport ShardContext
from kvshard.dispatcher cimport Dispatcher
from kvshard.protocol.ascii cimport AsciiParser, SetLine, single_get_key, whole_plain_set
from kvshard.protocol.ascii cimport (
    ARITH, CLOSE, DELETE, FLUSH, FLUSH_REFUSED, GAT, GET, ITEM_ADMIN, META, QUIT, REPLY, SHUTDOWN, STATS, STORE,
    TOO_LARGE, TOUCH, VERBOSITY, VERSION, WATCH,
)
from kvshard.protocol.byte_slices cimport bytes_slice
from kvshard.service cimport FIXED_ARITH, FIXED_DELETE, FIXED_STORE, FIXED_TOUCH

cdef list _NO_COMMANDS
cdef long long _SET_STORE_CODE


cdef class AsciiSession:
    cdef public AsciiParser parser
    cdef Dispatcher _dispatcher
    cdef ShardContext _ctx
    cdef list _batch
    cdef Py_ssize_t _batch_start
    cdef list _pending
    cdef Py_ssize_t _pending_at

    @cython.locals(parser=AsciiParser, line=SetLine)
    cpdef bint feed(self, data)
    cpdef bint run_pending(self)
    @cython.locals(dispatcher=Dispatcher, i=Py_ssize_t, end=Py_ssize_t)
    cdef bint _run(self, list commands, Py_ssize_t start, Py_ssize_t quota)
    @cython.locals(d=Dispatcher, op=long, flags=cython.longlong, store_code=cython.longlong)
    cpdef _execute(self, tuple cmd)
