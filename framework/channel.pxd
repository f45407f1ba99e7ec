# Compiled by Cython (pure-Python mode) from channel.py; see framework/extensions.py.
# Types only: the logic is in channel.py, which also runs interpreted.
cimport cython
from libc.string cimport memcpy, memset

from framework.ring cimport RingConsumer, RingProducer

cdef unsigned char _FIXED_CALL, _FIXED_SEND, _FIXED_REPLY, _MSGPACK_MIN, _VALUE_PRESENT
cdef Py_ssize_t _FH, _RH, _MAX_IDS

cdef object _as_bytes(object data)

@cython.locals(x=cython.ulonglong)
cdef unsigned long long _load_u64(const char* p) noexcept
@cython.locals(x=cython.longlong)
cdef long long _load_i64(const char* p) noexcept
@cython.locals(x=cython.uint)
cdef unsigned int _load_u32(const char* p) noexcept
cdef void _store_request_header(char* p, unsigned char kind, unsigned char handler_id,
                                       unsigned short flags, unsigned int klen,
                                       unsigned long long call_id,
                                       long long a, long long b, long long c) noexcept
cdef void _store_reply_header(char* p, unsigned long long call_id) noexcept


cdef class ReplyHandler:
    cpdef on_reply(self, result, error)


cdef class FixedTarget:
    cpdef bytes run_fixed(self, int handler_id, key, value, long long a, long long b, long long c)


cdef class PeerLink:
    cdef public int peer
    cdef public RingProducer out
    cdef public RingConsumer inp
    cdef public int doorbell_fd
    cdef public bint up
    cdef public long long epoch
    cdef public list pending
    cdef public Py_ssize_t pending_count
    cdef public object run_name
    cdef public list run
    cdef public object queued
    cdef public Py_ssize_t queued_bytes
    cdef public dict calls
    cdef public unsigned long long next_call_id
    cdef public object overflow
    cdef public object space_waiters
    cdef public bint dirty
    cdef public bint blocked


cdef class Messenger:
    cdef readonly int shard_id
    cdef dict _links
    cdef list _up_links
    cdef list _dirty
    cdef unsigned long long[::1] _flags
    cdef object _reactor
    cdef object _loop
    cdef dict _handlers
    cdef list _fixed_handlers
    cdef FixedTarget _fixed_target
    cdef bytearray _by_target
    cdef public Py_ssize_t max_inflight
    cdef public Py_ssize_t max_queued
    cdef public bint fixed_records
    cdef readonly unsigned long long batches_out, batches_in, msgs_out, msgs_in
    cdef readonly unsigned long long fixed_out, fixed_in, doorbells, ring_full, handler_errors

    cdef void _mark_dirty(self, PeerLink link) except *
    cdef void _queue(self, PeerLink link, tuple message) except *
    cdef PeerLink _open_link(self, int shard)
    cdef unsigned long long _next_call(self, PeerLink link, object on_reply) except? 0
    cdef bint _has_room(self, PeerLink link) except -1
    @cython.locals(link=PeerLink)
    cpdef call(self, int shard, object name, object args, object on_reply)
    @cython.locals(link=PeerLink, call_id=cython.ulonglong)
    cpdef call_fixed(self, int shard, int handler_id, object key, object value,
                     long long a, long long b, long long c, object on_reply)
    @cython.locals(link=PeerLink)
    cpdef bint send_fixed(self, int shard, int handler_id, object key, object value,
                          long long a, long long b, long long c) except -1
    @cython.locals(flags=cython.ushort, vlen=Py_ssize_t, klen=Py_ssize_t, n=Py_ssize_t,
                   pos=Py_ssize_t, p=cython.p_char, kp=cython.p_char, vp=cython.p_char)
    cdef void _put_request(self, PeerLink link, unsigned char kind, unsigned char handler_id,
                           unsigned long long call_id, object key, object value,
                           long long a, long long b, long long c) except *
    @cython.locals(n=Py_ssize_t, pos=Py_ssize_t, p=cython.p_char, rp=cython.p_char)
    cdef void _put_reply(self, PeerLink link, unsigned long long call_id, bytes result) except *
    @cython.locals(link=PeerLink, inp=RingConsumer, n=Py_ssize_t)
    cpdef bint poll(self) except -1
    cdef void _ring(self, int fd) except *
    @cython.locals(link=PeerLink, progressed=bint)
    cdef bint _flush_all(self) except -1
    cdef void _pack_pending(self, PeerLink link) except *
    @cython.locals(written=Py_ssize_t)
    cdef void _enqueue_record(self, PeerLink link, object data) except *
    @cython.locals(out=RingProducer, written=Py_ssize_t)
    cdef bint _flush(self, PeerLink link) except -1
    @cython.locals(kind=cython.uchar)
    cdef void _dispatch_record(self, PeerLink link, RingConsumer inp, Py_ssize_t n) except *
    @cython.locals(p=cython.p_char, call_id=cython.ulonglong)
    cdef void _on_fixed_reply(self, PeerLink link, RingConsumer inp, Py_ssize_t n) except *
    @cython.locals(p=cython.p_char, kind=cython.uchar, handler_id=cython.uchar, flags=cython.uchar,
                   klen=Py_ssize_t, call_id=cython.ulonglong, a=cython.longlong,
                   b=cython.longlong, c=cython.longlong)
    cdef void _on_fixed_request(self, PeerLink link, RingConsumer inp, Py_ssize_t n) except *
    cdef void _run_target_oneway(self, int handler_id, object key, object value,
                                 long long a, long long b, long long c) except *
    cdef void _dispatch(self, PeerLink link, tuple batch) except *
    cdef void _serve(self, PeerLink link, object call_id, object name, tuple args) except *
    cdef void _settle(self, PeerLink link, object call_id, object result, object error) except *
    cdef void _send_parked(self, PeerLink link) except *
