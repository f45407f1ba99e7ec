# Compiled by Cython (pure-Python mode) from socket_stream.py; see framework/extensions.py.
# Types only: the logic is in socket_stream.py, which also runs interpreted.
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

cdef extern from "<sys/socket.h>":
    ssize_t c_recv "recv"(int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send"(int fd, const void *buf, size_t n, int flags)
    int MSG_NOSIGNAL

cdef extern from *:
    """
    #include <errno.h>
    static inline int kvshard_errno(void) { return errno; }
    """
    int errno_value "kvshard_errno"()

cdef extern from "<sys/epoll.h>":
    ctypedef union epoll_data_t:
        void *ptr
        int fd
    cdef struct epoll_event:
        unsigned int events
        epoll_data_t data
    int c_epoll_wait "epoll_wait"(int epfd, epoll_event *events, int maxevents, int timeout)

cdef epoll_event _events[256]
cdef int _POLL_EVENTS
cdef Py_ssize_t _READ_SIZE
cdef bytearray _read_buffer
cdef frozenset _TRY_AGAIN
cdef int _OPEN, _CLOSING, _CLOSED


cdef class StreamProtocol:
    cpdef data_received(self, data)


cdef class ReadPoller


cdef class SocketTransport:
    cdef object _loop
    cdef ReadPoller _poller
    cdef object _sock
    cdef int _fd
    cdef object _protocol
    cdef object _data_received
    cdef StreamProtocol _stream
    cdef int _state
    cdef bint _reading
    cdef bint _eof_wanted
    cdef list _queue
    cdef Py_ssize_t _queued
    cdef Py_ssize_t _high
    cdef Py_ssize_t _low
    cdef bint _writing_paused
    cdef dict _extra

    @cython.locals(count=Py_ssize_t, code=int, data=bytes)
    cpdef _on_readable(self)
    @cython.locals(size=Py_ssize_t, sent=Py_ssize_t, code=int)
    cpdef write(self, data)
    cdef _enqueue(self, bytes data)


cdef class ReadPoller:
    cdef object _epoll
    cdef int _epoll_fd
    cdef list _by_fd

    cpdef list watched(self)
    cpdef watch(self, int fd, SocketTransport transport)
    cpdef unwatch(self, int fd)
    @cython.locals(count=int, i=int, fd=int, transport=SocketTransport)
    cpdef _poll(self)
