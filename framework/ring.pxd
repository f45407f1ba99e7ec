# Compiled by Cython (pure-Python mode) from ring.py; see framework/extensions.py.
# Types only: the logic is in ring.py, which also runs interpreted.
cimport cython
from libc.string cimport memcpy

cdef extern from *:
    """
    static inline void kvshard_full_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    static inline void kvshard_release_fence(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
    static inline void kvshard_acquire_fence(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
    """
    void _c_full_fence "kvshard_full_fence"() nogil
    void _c_release_fence "kvshard_release_fence"() nogil
    void _c_acquire_fence "kvshard_acquire_fence"() nogil

cdef Py_ssize_t _HEAD, _TAIL, _WAITING, _FRAG
cdef unsigned int _MORE, _MAX_PAYLOAD

cpdef void full_fence()


cdef class RingProducer:
    cdef readonly Py_ssize_t capacity
    cdef unsigned long long[::1] _words
    cdef unsigned char[::1] data
    cdef readonly object view
    cdef unsigned long long _tail
    cdef public Py_ssize_t last_written

    cpdef Py_ssize_t unread_bytes(self)
    cpdef Py_ssize_t free_bytes(self)
    @cython.locals(tail=cython.ulonglong, pos=Py_ssize_t, need=Py_ssize_t, word=cython.uint, cap=Py_ssize_t)
    cpdef Py_ssize_t reserve(self, Py_ssize_t n) except -2
    @cython.locals(total=Py_ssize_t, pos=Py_ssize_t, tail=cython.ulonglong, free=Py_ssize_t,
                   done=Py_ssize_t, room=Py_ssize_t, n=Py_ssize_t, last=bint)
    cpdef Py_ssize_t write(self, object data, bint final) except -1
    @cython.locals(pos=Py_ssize_t, n=Py_ssize_t, first=Py_ssize_t, cap=Py_ssize_t)
    cdef _copy_in(self, unsigned long long counter, object chunk)
    cpdef bint has_unpublished(self)
    cpdef void publish(self)
    cpdef void set_waiting(self, bint flag)
    cpdef bint is_waiting(self)
    cpdef void discard_unread(self)


cdef class RingConsumer:
    cdef readonly Py_ssize_t capacity
    cdef unsigned long long[::1] _words
    cdef unsigned char[::1] data
    cdef readonly object view
    cdef unsigned long long _head
    cdef unsigned long long _seen
    cdef list _partial
    cdef readonly object rec
    cdef readonly Py_ssize_t rec_pos
    cdef char* rec_ptr

    cpdef Py_ssize_t unread_bytes(self)
    cpdef bint has_data(self)
    @cython.locals(tail=cython.ulonglong)
    cpdef bint refresh(self)
    @cython.locals(head=cython.ulonglong, seen=cython.ulonglong, cap=Py_ssize_t, pos=Py_ssize_t,
                   word=cython.uint, length=Py_ssize_t, start=cython.ulonglong, spos=Py_ssize_t)
    cpdef Py_ssize_t next_record(self) except -2
    cdef Py_ssize_t _joined(self) except -1
    cdef void _store_head(self, unsigned long long head)
    @cython.locals(cap=Py_ssize_t, word=cython.uint)
    cdef unsigned int _fragment_word(self, Py_ssize_t pos) except? 0xffffffff
    @cython.locals(end=Py_ssize_t, cap=Py_ssize_t)
    cdef bytes _copy_out(self, Py_ssize_t pos, Py_ssize_t n)
    cpdef bint producer_waiting(self)
    cpdef void discard_unread(self)
