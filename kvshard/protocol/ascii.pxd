# Compiled by Cython (pure-Python mode) from ascii.py; see framework/extensions.py.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memchr, memcpy, strcspn
from libc.string cimport memcmp
from kvshard.protocol.byte_slices cimport bytes_slice, find_newline


# The command opcodes, compiled: C constants (a session compares them in C, not as Python
# objects); ascii.py defines the same numbers for the interpreted modules (test_ascii_codec
# checks that the two lists agree).
cpdef enum:
    GET = 0
    GAT = 1
    STORE = 2
    DELETE = 3
    ARITH = 4
    TOUCH = 5
    FLUSH = 6
    VERSION = 7
    VERBOSITY = 8
    QUIT = 9
    STATS = 10
    REPLY = 11
    TOO_LARGE = 12
    CLOSE = 13
    META = 14
    SHUTDOWN = 15
    FLUSH_REFUSED = 16
    WATCH = 17
    ITEM_ADMIN = 18

cdef enum:
    C_KEY_MAX_LENGTH = 250  # KEY_MAX_LENGTH, as a C constant


# A plain ``set`` command line (and, read whole, its data block): see plain_set_line.
cdef struct SetLine:
    Py_ssize_t key_at, key_len
    unsigned int flags
    int exptime
    Py_ssize_t length
    bint noreply
    Py_ssize_t value_at

cdef Py_ssize_t _ITEM_HEADER
cdef tuple _SMALL_DECIMALS
cpdef bytes decimal(object n)
cpdef bytes value_line(bytes key, object flags, bytes value, object cas)
@cython.locals(p=cython.p_uchar, hit=cython.p_uchar, n=Py_ssize_t, i=Py_ssize_t, end=Py_ssize_t, tokens=list)
cpdef list tokenize(bytes text)
@cython.locals(value_len=Py_ssize_t, block=bytes)
cdef bytes _value_block(bytes key, unsigned long long flags, bytes value, unsigned long long cas, bint with_cas)
@cython.locals(head=Py_ssize_t, key_len=Py_ssize_t, tail_len=Py_ssize_t, out="char *", block=bytes)
cdef bytes value_block_shell(bytes key, unsigned long long flags, Py_ssize_t value_len, unsigned long long cas,
                             bint with_cas, bytes tail, Py_ssize_t *data_at)
@cython.locals(size=Py_ssize_t)
cdef Py_ssize_t value_header_size(Py_ssize_t key_len, unsigned long long flags, Py_ssize_t value_len,
                                  unsigned long long cas, bint with_cas) noexcept
@cython.locals(at=Py_ssize_t)
cdef Py_ssize_t write_value_header(char *out, const char *key, Py_ssize_t key_len, unsigned long long flags,
                                   Py_ssize_t value_len, unsigned long long cas, bint with_cas) noexcept
@cython.locals(count=Py_ssize_t)
cdef Py_ssize_t _decimal_length(unsigned long long n) noexcept
@cython.locals(count=Py_ssize_t, i=Py_ssize_t)
cdef Py_ssize_t _put_decimal(char *out, unsigned long long n) noexcept
@cython.locals(n=Py_ssize_t, value=cython.longlong)
cdef long long _small_decimal(bytes text)
@cython.locals(start=Py_ssize_t, value=cython.longlong, c=cython.uchar)
cdef Py_ssize_t _plain_decimal(const unsigned char *p, Py_ssize_t at, Py_ssize_t end, long long *out) noexcept
@cython.locals(key_end=cython.p_uchar, at=Py_ssize_t, number=cython.longlong)
cdef bint plain_set_line(const unsigned char *p, Py_ssize_t end, SetLine *line) noexcept
@cython.locals(n=Py_ssize_t, p=cython.p_uchar, newline=cython.p_uchar, line_end=Py_ssize_t)
cdef bint whole_plain_set(bytes data, Py_ssize_t max_item_size, SetLine *line) noexcept
cdef bint _key_ok(bytes key) noexcept
@cython.locals(n=Py_ssize_t, p=cython.p_uchar)
cpdef object single_get_key(bytes data)
cpdef bint item_too_large(Py_ssize_t key_length, long long flags, long long value_length, Py_ssize_t max_item_size) noexcept
cpdef Py_ssize_t item_total_size(Py_ssize_t key_length, long long flags, long long value_length) noexcept


cdef class AsciiParser:
    cdef public Py_ssize_t max_item_size
    cdef public bint flush_enabled
    cdef public bytes _buf
    cdef public list _chunks
    cdef public Py_ssize_t _chunks_len
    cdef public Py_ssize_t _want
    cdef public object _pending
    cdef public bint _closed

    cpdef bint is_idle(self)
    @cython.locals(end=Py_ssize_t, pos=Py_ssize_t, want=Py_ssize_t, nl=Py_ssize_t, buf=bytes)
    cpdef list feed(self, data)
    cpdef _finish_block(self, bytes block, list out)
    @cython.locals(n=Py_ssize_t)
    cpdef _command(self, bytes line)
    @cython.locals(fields=SetLine)
    cdef bint _plain_set(self, bytes line) except -1
    cdef _await_block(self, bytes name, bytes key, flags, exptime, long long length, cas, bint noreply)
    @cython.locals(n=Py_ssize_t, small=bint)
    cpdef _storage(self, bytes name, list tokens)
