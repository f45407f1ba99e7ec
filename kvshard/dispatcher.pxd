# Compiled by Cython (pure-Python mode) from dispatcher.py; see framework/extensions.py.
cimport cython
from framework.channel cimport ReplyHandler
from kvshard.context cimport ShardContext
from kvshard.routing cimport owner_of
from kvshard.service cimport FIXED_GET_MANY, FIXED_GET_ONE
from kvshard.packed_blocks cimport merge_blocks, pack_blocks


cdef class _Pending(ReplyHandler):
    cdef public object data
    cdef public object parts
    cdef public Py_ssize_t missing
    cdef public Dispatcher owner
    cdef public object finish
    cdef public list owners

    cpdef on_reply(self, result, error)


@cython.locals(pending=_Pending)
cdef _Pending _new_pending(list parts, Py_ssize_t missing, Dispatcher owner, finish)


cdef class Dispatcher:
    cdef public ShardContext ctx
    cdef object _on_ready
    cdef object _on_backlog
    cdef object _queue
    cdef list _out
    cdef public bint quitting
    cdef public long long conn_id
    cdef object __weakref__

    cpdef bint backed_up(self)
    cpdef reply(self, data)
    cpdef bytes take_output(self)
    cpdef quit(self)
    cpdef abandon(self)
    cpdef hold(self, _Pending pending)
    cpdef complete(self, _Pending pending, data)
    @cython.locals(owner=Py_ssize_t)
    cpdef get_one(self, key, Py_ssize_t owner=*)
    @cython.locals(owner=Py_ssize_t)
    cpdef run_hot(self, key, bint noreply, int handler_id, value, long long a, long long b, long long c)
    @cython.locals(owner=Py_ssize_t, shards=Py_ssize_t, me=Py_ssize_t, others=Py_ssize_t, owners=list,
                   keys_by_owner=list, theirs=list, parts=list, mine=list)
    cpdef get_many(self, list keys, bint with_cas, exptime)
    @cython.locals(owner=Py_ssize_t)
    cpdef run_keyed(self, key, name, tuple args, finish=*)
    @cython.locals(owner=Py_ssize_t)
    cpdef run_keyed_noreply(self, key, name, tuple args)
    cpdef _call(self, Py_ssize_t owner, name, tuple args, finish)
    cpdef _on_part(self, _Pending pending, Py_ssize_t owner, result, error)
    cpdef _call_fixed(self, Py_ssize_t owner, int handler_id, key, value, long long a, long long b, long long c, bint drop)


cdef class _Part(ReplyHandler):
    cdef Dispatcher dispatcher
    cdef _Pending pending
    cdef Py_ssize_t owner

    cpdef on_reply(self, result, error)


@cython.locals(part=_Part)
cdef _Part _new_part(Dispatcher dispatcher, _Pending pending, Py_ssize_t owner)
