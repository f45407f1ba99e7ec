# Compiled by Cython (pure-Python mode) from connection.py; see framework/extensions.py.
cimport cython
from kvshard.context cimport ShardContext
from kvshard.protocol.ascii cimport AsciiParser, single_get_key


cdef class _Pending:
    cdef public object data
    cdef public object parts
    cdef public Py_ssize_t missing
    cdef public ClientConnection conn
    cdef public object finish


cdef class ClientConnection:
    cdef public ShardContext _ctx
    cdef public AsciiParser _parser
    cdef public object _transport
    cdef public object _queue
    cdef public list _out
    cdef public bint _quitting
    cdef public bint _draining
    cdef public object _deferred
    cdef public bint _eof_sent
    cdef public bint _reading_paused
    cdef public bint _writing_paused
    cdef public bint _counted
    cdef public dict _conn_stats
    cdef public object _binary
    cdef public object _login
    cdef public long long _reads
    cdef public long long _sample_mask
    cdef public double _sample_start
    cdef public object _sample_command
    cdef public long long conn_id
    cdef public long long _last_command
    cdef object __weakref__

    @cython.locals(start=double)
    cpdef data_received(self, data)
    cpdef reply(self, data)
    cpdef _hold(self, _Pending pending)
    cpdef _complete(self, _Pending pending, data)
    cpdef _write_out(self)
    cpdef _update_reading(self)
    cpdef _call(self, Py_ssize_t owner, name, tuple args, finish)
    cpdef _keyed(self, key, name, tuple args, bint noreply)
    @cython.locals(owner=Py_ssize_t)
    cpdef run_hot(self, key, name, tuple args, bint noreply, int handler_id, value, a, b, c)
    cpdef _call_fixed(self, Py_ssize_t owner, int handler_id, key, value, a, b, c, bint drop)
    cpdef run_keyed(self, key, name, tuple args, finish=*)
    @cython.locals(op=long)
    cpdef _execute(self, tuple cmd)
    @cython.locals(owner=Py_ssize_t)
    cpdef _get_one(self, key, Py_ssize_t owner=*)
    cpdef _run(self, list commands)
