# Compiled by Cython (pure-Python mode) from connection.py; see framework/extensions.py.
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_FromStringAndSize
from kvshard.ascii_session cimport AsciiSession
from kvshard.binary_session cimport BinarySession
from kvshard.context cimport ShardContext
from kvshard.counters cimport ConnectionCounters
from kvshard.dispatcher cimport Dispatcher
from net_backends.posix.socket_stream cimport SocketTransport, StreamProtocol


cdef class ClientConnection(StreamProtocol):
    cdef public ShardContext _ctx
    cdef public Dispatcher _dispatcher
    cdef public AsciiSession _ascii
    cdef public object _transport
    cdef object _write
    cdef SocketTransport _socket
    cdef public bint _draining
    cdef public object _deferred
    cdef public bint _eof_sent
    cdef public bint _reading_paused
    cdef public bint _writing_paused
    cdef public bint _counted
    cdef public ConnectionCounters _conn_stats
    cdef public object _binary
    cdef public object _login
    cdef public long long _reads
    cdef public long long _sample_mask
    cdef public double _sample_start
    cdef public object _sample_command
    cdef public long long conn_id
    cdef public long long _last_command
    cdef public object _close_reason
    cdef public object _protocol
    cdef object __weakref__

    @cython.locals(start=double, dispatcher=Dispatcher, tracing=bint)
    cpdef data_received(self, data)
    @cython.locals(waiting=bint)
    cdef bint _feed_binary(self, data) except -1
    cpdef _replies_ready(self)
    @cython.locals(dispatcher=Dispatcher)
    cpdef _write_out(self)
    cpdef _update_reading(self)
    cpdef _continue_deferred(self)
