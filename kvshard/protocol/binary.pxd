# Compiled by Cython (pure-Python mode) from binary.py; see framework/extensions.py.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy, memset
from kvshard.protocol.byte_slices cimport bytes_slice
from kvshard.protocol.ascii cimport item_too_large


# The protocol's numbers the compiled hot path compares with (the same as binary.py's
# REQUEST_MAGIC, RESPONSE_MAGIC, OP_GET, OP_SET, OP_SETQ and ascii's KEY_MAX_LENGTH, which are
# Python objects; test_connection's fast-path test sees a difference as different answers).
cdef enum:
    C_REQUEST_MAGIC = 0x80
    C_RESPONSE_MAGIC = 0x81
    C_OP_GET = 0x00
    C_OP_SET = 0x01
    C_OP_SETQ = 0x11
    C_KEY_MAX_LENGTH = 250


cdef struct HotRequest:
    unsigned char opcode
    unsigned int opaque, flags, exptime
    unsigned long long cas
    Py_ssize_t key_at, key_len

cdef Py_ssize_t _GET_HIT_HEADER_LEN, _HEADER_LEN
@cython.locals(n=Py_ssize_t, packet=bytes)
cpdef bytes get_hit(unsigned int opaque, unsigned long long cas, unsigned int flags, value)
@cython.locals(out=cython.p_uchar, packet=bytes)
cdef bytes get_hit_shell(unsigned int opaque, unsigned long long cas, unsigned int flags, Py_ssize_t n)
cdef char *get_hit_value_at(bytes packet) noexcept
@cython.locals(out=cython.p_uchar, packet=bytes)
cpdef bytes header_only(unsigned char opcode, unsigned short status, unsigned int opaque, unsigned long long cas)
cdef void _put_be32(unsigned char *out, unsigned int n) noexcept
cpdef object single_get(bytes data)
@cython.locals(n=Py_ssize_t, p=cython.p_uchar, key_len=cython.uint, body_len=cython.uint, opcode=cython.uchar)
cdef bint hot_request(bytes data, Py_ssize_t max_item_size, HotRequest *out) except -1
cdef unsigned int _be32(const unsigned char *p) noexcept


cdef class BinaryParser:
    cdef public Py_ssize_t max_item_size
    cdef public bint locked
    cdef public bint held
    cdef public object _known
    cdef public bytes _buf
    cdef public list _parts
    cdef public Py_ssize_t _missing
    cdef public object _header
    cdef public object _too_large
    cdef public Py_ssize_t _swallow
    cdef public bint _closed

    cpdef bint is_idle(self)
    @cython.locals(pos=Py_ssize_t, end=Py_ssize_t, n=Py_ssize_t, buf=bytes)
    cpdef list feed(self, data)
