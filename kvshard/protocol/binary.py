"""memcached's binary protocol, sans-IO: bytes in, requests out; responses out as bytes.

Theory of operation
-------------------
Every packet is a 24-byte header (magic, opcode, key length, extras length, data type,
vbucket/status, total body length, opaque, CAS) followed by the body: extras, key, value.
:class:`BinaryParser` is fed whatever the transport read and returns the requests completed so
far, in order. It is in one of three states:

    HEADER  waiting for 24 bytes. The header alone decides what happens next, as in memcached:
            a bad magic closes the connection silently; a body shorter than key + extras
            answers ``Unknown command`` and closes; an opcode memcached does not serve answers
            ``Unknown command`` and skips the body (plus as many bytes again as the extras and
            key, exactly as memcached 1.6 does), and the connection goes on; a packet whose shape does not fit its opcode (extras, key or value present or absent
            where they must not be, a key over 250 bytes) answers ``Invalid arguments`` and
            closes. Otherwise -> BODY.
    BODY    waiting for the whole body, then emits a :class:`Request`. A storage packet
            whose item would exceed the item size limit goes to SWALLOW instead.
    SWALLOW discarding the body of a too-large item as it arrives (nothing buffered), then
            emits a TOO_LARGE request so that the reply (``Too large.``, even for quiet
            commands) keeps its place in the stream; the connection goes on.

With SASL on (``-S``), the parser also knows the SASL opcodes, and while the connection has
not logged in it is *locked*: HEADER answers any opcode but the SASL ones and VERSION with
``Auth failure.`` and closes (memcached checks this before anything but the lengths), and
parsing pauses after each AUTH or STEP until the session has run it (see :class:`BinaryParser`).

After an error that closes, the parser emits one :data:`CLOSE` request carrying the error reply
and ignores everything else. Responses are built by :func:`response` and :func:`error`; the
error bodies are memcached's texts byte for byte.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from .ascii import KEY_MAX_LENGTH, item_too_large
from .byte_slices import bytes_slice

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

__all__ = [
    "BinaryParser",
    "Request",
    "single_get",
    "get_hit",
    "response",
    "error",
    "HEADER",
    "REQUEST_MAGIC",
    "RESPONSE_MAGIC",
    "QUIET",
    "CLOSE",
    "TOO_LARGE",
    "UNKNOWN",
    "OP_GET", "OP_SET", "OP_ADD", "OP_REPLACE", "OP_DELETE", "OP_INCREMENT", "OP_DECREMENT",
    "OP_QUIT", "OP_FLUSH", "OP_GETQ", "OP_NOOP", "OP_VERSION", "OP_GETK", "OP_GETKQ",
    "OP_APPEND", "OP_PREPEND", "OP_STAT", "OP_SETQ", "OP_ADDQ", "OP_REPLACEQ", "OP_DELETEQ",
    "OP_INCREMENTQ", "OP_DECREMENTQ", "OP_QUITQ", "OP_FLUSHQ", "OP_APPENDQ", "OP_PREPENDQ",
    "OP_TOUCH", "OP_GAT", "OP_GATQ", "OP_GATK", "OP_GATKQ",
    "OP_SASL_LIST_MECHS", "OP_SASL_AUTH", "OP_SASL_STEP", "SASL", "OPEN_WHILE_LOCKED",
    "MAX_SASL_MECHANISM", "MAX_SASL_DATA", "ST_AUTH_ERROR", "ST_AUTH_CONTINUE",
    "ST_OK", "ST_NOT_FOUND", "ST_EXISTS", "ST_TOO_LARGE", "ST_INVALID", "ST_NOT_STORED",
    "ST_NON_NUMERIC", "ST_UNKNOWN", "ST_NO_MEMORY",
]

HEADER: Final = struct.Struct(">BBHBBHIIQ")
REQUEST_MAGIC: Final = 0x80
RESPONSE_MAGIC: Final = 0x81

OP_GET: Final = 0x00
OP_SET: Final = 0x01
OP_ADD: Final = 0x02
OP_REPLACE: Final = 0x03
OP_DELETE: Final = 0x04
OP_INCREMENT: Final = 0x05
OP_DECREMENT: Final = 0x06
OP_QUIT: Final = 0x07
OP_FLUSH: Final = 0x08
OP_GETQ: Final = 0x09
OP_NOOP: Final = 0x0A
OP_VERSION: Final = 0x0B
OP_GETK: Final = 0x0C
OP_GETKQ: Final = 0x0D
OP_APPEND: Final = 0x0E
OP_PREPEND: Final = 0x0F
OP_STAT: Final = 0x10
OP_SETQ: Final = 0x11
OP_ADDQ: Final = 0x12
OP_REPLACEQ: Final = 0x13
OP_DELETEQ: Final = 0x14
OP_INCREMENTQ: Final = 0x15
OP_DECREMENTQ: Final = 0x16
OP_QUITQ: Final = 0x17
OP_FLUSHQ: Final = 0x18
OP_APPENDQ: Final = 0x19
OP_PREPENDQ: Final = 0x1A
OP_TOUCH: Final = 0x1C
OP_GAT: Final = 0x1D
OP_GATQ: Final = 0x1E
OP_GATK: Final = 0x23
OP_GATKQ: Final = 0x24
OP_SASL_LIST_MECHS: Final = 0x20
OP_SASL_AUTH: Final = 0x21
OP_SASL_STEP: Final = 0x22

# pseudo opcodes the parser emits (outside the protocol's byte range)
CLOSE: Final = 0x100      # send ``value`` (may be empty), then close the connection
TOO_LARGE: Final = 0x101  # a storage packet over the item size limit was swallowed
UNKNOWN: Final = 0x102    # an opcode memcached does not serve: send ``value``, go on

QUIET: Final = frozenset((
    OP_GETQ, OP_GETKQ, OP_SETQ, OP_ADDQ, OP_REPLACEQ, OP_DELETEQ, OP_INCREMENTQ,
    OP_DECREMENTQ, OP_QUITQ, OP_FLUSHQ, OP_APPENDQ, OP_PREPENDQ, OP_GATQ, OP_GATKQ,
))

ST_OK: Final = 0x00
ST_NOT_FOUND: Final = 0x01
ST_EXISTS: Final = 0x02
ST_TOO_LARGE: Final = 0x03
ST_INVALID: Final = 0x04
ST_NOT_STORED: Final = 0x05
ST_NON_NUMERIC: Final = 0x06
ST_AUTH_ERROR: Final = 0x20
ST_AUTH_CONTINUE: Final = 0x21
ST_UNKNOWN: Final = 0x81
ST_NO_MEMORY: Final = 0x82

_MESSAGES: Final = {
    ST_NOT_FOUND: b"Not found",
    ST_EXISTS: b"Data exists for key.",
    ST_TOO_LARGE: b"Too large.",
    ST_INVALID: b"Invalid arguments",
    ST_NOT_STORED: b"Not stored.",
    ST_NON_NUMERIC: b"Non-numeric server-side value for incr or decr",
    ST_AUTH_ERROR: b"Auth failure.",
    ST_UNKNOWN: b"Unknown command",
    ST_NO_MEMORY: b"Out of memory",
}

_STORAGE: Final = frozenset((OP_SET, OP_ADD, OP_REPLACE, OP_SETQ, OP_ADDQ, OP_REPLACEQ))
_CONCAT: Final = frozenset((OP_APPEND, OP_PREPEND, OP_APPENDQ, OP_PREPENDQ))
_KEY_ONLY: Final = frozenset((OP_GET, OP_GETQ, OP_GETK, OP_GETKQ, OP_DELETE, OP_DELETEQ))
_ARITH: Final = frozenset((OP_INCREMENT, OP_DECREMENT, OP_INCREMENTQ, OP_DECREMENTQ))
_TOUCHES: Final = frozenset((OP_TOUCH, OP_GAT, OP_GATQ, OP_GATK, OP_GATKQ))
_EMPTY: Final = frozenset((OP_NOOP, OP_VERSION, OP_QUIT, OP_QUITQ))
_FLUSHES: Final = frozenset((OP_FLUSH, OP_FLUSHQ))
_VALUED: Final = _STORAGE | _CONCAT
KNOWN: Final = _STORAGE | _CONCAT | _KEY_ONLY | _ARITH | _TOUCHES | _EMPTY | _FLUSHES | {OP_STAT}
SASL: Final = frozenset((OP_SASL_LIST_MECHS, OP_SASL_AUTH, OP_SASL_STEP))
# what a connection that has not logged in may send (memcached's list)
OPEN_WHILE_LOCKED: Final = SASL | {OP_VERSION}
MAX_SASL_MECHANISM: Final = 32  # bytes in a mechanism's name (memcached's limit)
MAX_SASL_DATA: Final = 4096  # bytes of SASL data in one AUTH or STEP

_HEADER_LEN: Final = 24


class Request(NamedTuple):
    """One request. ``extras`` is raw; ``value`` is the rest of the body (for CLOSE: the
    reply to send before closing)."""

    opcode: int
    key: bytes
    extras: bytes
    value: bytes
    cas: int
    opaque: int


def response(
    opcode: int, status: int, opaque: int, cas: int = 0,
    extras: bytes = b"", key: bytes = b"", value: bytes = b"",
) -> bytes:
    body_len = len(extras) + len(key) + len(value)
    return HEADER.pack(
        RESPONSE_MAGIC, opcode, len(key), len(extras), 0, status, body_len, opaque, cas,
    ) + extras + key + value


_GET_HIT: Final = struct.Struct(">BBHBBHIIQI")  # a GET's response header and its flags


def get_hit(opaque: int, cas: int, flags: int, value: bytes | memoryview) -> bytes:
    """The response to a GET that found its item (the hot path's one-step form of
    ``response(OP_GET, ST_OK, opaque, cas, flags, b"", value)``)."""
    if cython.compiled and type(value) is bytes:  # one allocation, the header written in C
        n = len(value)
        packet = get_hit_shell(opaque, cas, flags, n)
        memcpy(PyBytes_AS_STRING(packet) + _GET_HIT_HEADER_LEN, cython.cast(cython.p_char, value), n)
        return packet
    return _GET_HIT.pack(RESPONSE_MAGIC, OP_GET, 0, 4, 0, ST_OK, 4 + len(value), opaque, cas, flags) + value


_GET_HIT_HEADER_LEN: Final = 28  # a GET hit's header and flags, before the value


def get_hit_shell(opaque: int, cas: int, flags: int, n: int) -> bytes:
    """A GET hit's response for an ``n``-byte value whose bytes are not written yet (compiled
    only: the caller copies the value in at :func:`get_hit_value_at`, from where it lies)."""
    packet = PyBytes_FromStringAndSize(cython.NULL, _GET_HIT_HEADER_LEN + n)
    out = cython.cast(cython.p_uchar, PyBytes_AS_STRING(packet))
    out[0] = C_RESPONSE_MAGIC
    out[1] = C_OP_GET
    out[2] = out[3] = 0  # key length
    out[4] = 4  # extras length: the flags
    out[5] = 0  # data type
    out[6] = out[7] = 0  # status: ST_OK
    _put_be32(out + 8, 4 + n)
    _put_be32(out + 12, opaque)
    _put_be32(out + 16, cas >> 32)
    _put_be32(out + 20, cython.cast(cython.uint, cas))
    _put_be32(out + 24, flags)
    return packet


def header_only(opcode: int, status: int, opaque: int, cas: int) -> bytes:
    """``response(opcode, status, opaque, cas)``: a response with no body (compiled: written in
    C, one allocation; a store's success)."""
    if cython.compiled:
        packet = PyBytes_FromStringAndSize(cython.NULL, _HEADER_LEN)
        out = cython.cast(cython.p_uchar, PyBytes_AS_STRING(packet))
        memset(out, 0, _HEADER_LEN)
        out[0] = C_RESPONSE_MAGIC
        out[1] = opcode
        out[6] = status >> 8
        out[7] = status & 0xFF
        _put_be32(out + 12, opaque)
        _put_be32(out + 16, cas >> 32)
        _put_be32(out + 20, cython.cast(cython.uint, cas))
        return packet
    return response(opcode, status, opaque, cas)


def get_hit_value_at(packet: bytes) -> int:
    """Where a :func:`get_hit_shell` packet's value goes (compiled only: a C pointer)."""
    return PyBytes_AS_STRING(packet) + _GET_HIT_HEADER_LEN  # type: ignore[no-any-return]


def _put_be32(out: object, n: int) -> None:
    """``n`` as four big-endian bytes at ``out`` (compiled only)."""
    out[0] = (n >> 24) & 0xFF  # type: ignore[index]
    out[1] = (n >> 16) & 0xFF  # type: ignore[index]
    out[2] = (n >> 8) & 0xFF  # type: ignore[index]
    out[3] = n & 0xFF  # type: ignore[index]


def single_get(data: bytes) -> tuple[bytes, int] | None:
    """(key, opaque) if ``data`` is exactly one GET request that the parser would accept,
    else None (the caller then feeds the parser). The interpreted session's fast path for the
    most common request (compiled, :func:`hot_request` serves it); the caller checks that the
    parser holds nothing."""
    if len(data) < 25 or data[1] != OP_GET:
        return None
    magic, _, key_len, extras_len, _, _, body_len, opaque, _ = HEADER.unpack_from(data)
    if (
        magic != REQUEST_MAGIC or extras_len or key_len > KEY_MAX_LENGTH or body_len != key_len
        or len(data) != _HEADER_LEN + key_len
    ):
        return None
    return data[_HEADER_LEN:], opaque


def hot_request(data: bytes, max_item_size: int, out: object) -> bool:
    """Compiled only: whether ``data`` is exactly one GET, SET or SETQ request that the
    parser would accept as it is, its fields then in ``out`` (a HotRequest: the key is
    ``data[out.key_at : out.key_at + out.key_len]``, a SET's value all that follows). False
    leaves ``data`` to the parser. The fast path of the commonest requests, with no Request
    tuple; the caller checks that the parser holds nothing and is not locked."""
    n = len(data)
    if n <= _HEADER_LEN:
        return False
    p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, data))
    key_len = (p[2] << 8) | p[3]
    body_len = _be32(p + 8)
    if p[0] != C_REQUEST_MAGIC or n != _HEADER_LEN + body_len or key_len == 0 or key_len > C_KEY_MAX_LENGTH:
        return False
    opcode = p[1]
    out.opcode = opcode  # type: ignore[attr-defined]
    out.opaque = _be32(p + 12)  # type: ignore[attr-defined]
    out.cas = (cython.cast(cython.ulonglong, _be32(p + 16)) << 32) | _be32(p + 20)  # type: ignore[attr-defined]
    out.key_len = key_len  # type: ignore[attr-defined]
    if opcode == C_OP_GET:
        out.key_at = _HEADER_LEN  # type: ignore[attr-defined]
        return p[4] == 0 and body_len == key_len
    if (opcode == C_OP_SET or opcode == C_OP_SETQ) and p[4] == 8 and body_len >= key_len + 8:
        out.flags = _be32(p + _HEADER_LEN)  # type: ignore[attr-defined]
        out.exptime = _be32(p + _HEADER_LEN + 4)  # type: ignore[attr-defined]
        out.key_at = _HEADER_LEN + 8  # type: ignore[attr-defined]
        return not item_too_large(key_len, out.flags, body_len - 8 - key_len, max_item_size)  # type: ignore[attr-defined]
    return False


def _be32(p: object) -> int:
    """The big-endian 32-bit number at ``p`` (compiled only)."""
    return (  # type: ignore[no-any-return]
        (cython.cast(cython.uint, p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]  # type: ignore[index]
    )


def error(opcode: int, status: int, opaque: int) -> bytes:
    """An error response with memcached's message as its body."""
    return response(opcode, status, opaque, value=_MESSAGES[status])


def _shape_ok(opcode: int, key_len: int, extras_len: int, body_len: int) -> bool:
    """memcached's per-opcode checks of which parts a request may carry."""
    if opcode in _KEY_ONLY:
        return extras_len == 0 and key_len > 0 and body_len == key_len
    if opcode in _STORAGE:
        return extras_len == 8 and key_len > 0 and body_len >= key_len + 8
    if opcode in _CONCAT:
        return extras_len == 0 and key_len > 0
    if opcode in _ARITH:
        return extras_len == 20 and key_len > 0 and body_len == key_len + 20
    if opcode in _TOUCHES:
        return extras_len == 4 and key_len > 0
    if opcode in _EMPTY:
        return extras_len == 0 and key_len == 0 and body_len == 0
    if opcode in _FLUSHES:
        return key_len == 0 and body_len == extras_len and extras_len in (0, 4)
    if opcode == OP_SASL_LIST_MECHS:
        return extras_len == 0 and key_len == 0 and body_len == 0
    if opcode in SASL:  # AUTH, STEP: the mechanism as key, the data as value
        return extras_len == 0 and 0 < key_len <= MAX_SASL_MECHANISM and body_len - key_len <= MAX_SASL_DATA
    return extras_len == 0  # OP_STAT: an optional key


class BinaryParser:
    """Incremental parser for one connection. Feed bytes; get :class:`Request` tuples.

    With ``sasl`` the SASL opcodes are served (else they are unknown, as in memcached without
    ``-S``). While ``locked`` (the connection has not logged in) a packet whose opcode is not
    in :data:`OPEN_WHILE_LOCKED` is answered ``Auth failure.`` at its header and the connection
    closes (CLOSE), its body never read. Parsing stops after each AUTH or STEP request
    (``held``), so that its outcome (a login, or the loss of one) takes effect before the bytes
    after it are parsed: the caller executes it, then feeds ``b""`` to go on."""

    __slots__ = (
        "max_item_size", "locked", "held", "_known", "_buf", "_header", "_too_large", "_swallow", "_closed",
        "_parts", "_missing",
    )

    def __init__(self, max_item_size: int = 1 << 20, sasl: bool = False) -> None:
        self.max_item_size = max_item_size
        self.locked = sasl
        self.held = False
        self._known = KNOWN | SASL if sasl else KNOWN
        self._buf = b""
        # a body that spans reads: its pieces so far and the bytes still missing (joined once
        # complete, so a big value costs one copy however many reads bring it)
        self._parts: list[bytes] = []
        self._missing = 0
        self._header: tuple[int, ...] | None = None  # parsed header awaiting its body
        self._too_large: Request | None = None  # the TOO_LARGE request being swallowed
        self._swallow = 0  # body bytes of a too-large item still to discard
        self._closed = False

    @property
    def idle(self) -> bool:
        """Nothing held back: the next byte fed starts a new packet."""
        return self.is_idle()

    def is_idle(self) -> bool:
        """:attr:`idle`, as a method (a direct call for the compiled session)."""
        return not self._buf and self._header is None and not self._swallow and not self._closed and not self._missing

    def feed(self, data: bytes) -> list[Request]:
        """Consume ``data``; return the requests it completed, in order."""
        out: list[Request] = []
        self.held = False
        if self._closed or not (data or self._buf):
            return out
        if self._swallow:
            n = min(self._swallow, len(data))
            self._swallow -= n
            if self._swallow:
                return out
            data = data[n:]
            if self._too_large is not None:
                self._finish_too_large(out)
            if not data:
                return out
        if self._missing:
            self._parts.append(data)
            if len(data) < self._missing:
                self._missing -= len(data)
                return out
            self._missing = 0
            data = b"".join(self._parts)
            self._parts = []
        buf = self._buf + data if self._buf else data
        pos = 0
        end = len(buf)
        while True:
            header = self._header
            if header is None:
                if end - pos < _HEADER_LEN:
                    break
                header = self._read_header(buf, pos, out)
                if header is None:  # an error that closes the connection
                    self._buf = b""
                    return out
                pos += _HEADER_LEN
                if header[1] not in self._known:
                    # memcached answers, then skips the body *and* as many bytes again as
                    # the extras and key (it has read those already when it starts skipping)
                    out.append(Request(UNKNOWN, b"", b"", error(header[1], ST_UNKNOWN, header[7]), 0, header[7]))
                    skip = header[6] + header[2] + header[3]
                    if end - pos < skip:
                        self._swallow = skip - (end - pos)
                        self._buf = b""
                        return out
                    pos += skip
                    continue
                self._header = header
            opcode, key_len, extras_len, body_len, opaque = (
                header[1], header[2], header[3], header[6], header[7]
            )
            if opcode in _VALUED and self._too_large_item(buf, pos, end, header) is not False:
                prefix = extras_len + key_len
                if end - pos < prefix:
                    break  # wait for the flags and key: a refused set drops the old item
                key = bytes_slice(buf, pos + extras_len, pos + prefix)
                # TOO_LARGE carries the refused opcode as its one extras byte
                self._too_large = Request(TOO_LARGE, key, bytes((opcode,)), b"", 0, opaque)
                if end - pos < body_len:
                    self._swallow = body_len - (end - pos)
                    self._buf = b""
                    return out
                pos += body_len
                self._finish_too_large(out)
                continue
            if end - pos < body_len:
                if data and body_len > 65536:  # a big body: gather its pieces, join them once
                    self._parts = [bytes_slice(buf, pos, end)]
                    self._missing = body_len - (end - pos)
                    self._buf = b""
                    return out
                break
            key_at = pos + extras_len
            body_end = pos + body_len
            out.append(Request(
                opcode, bytes_slice(buf, key_at, key_at + key_len), bytes_slice(buf, pos, key_at),
                bytes_slice(buf, key_at + key_len, body_end), header[8], opaque,
            ))
            self._header = None
            pos = body_end
            if (opcode == OP_SASL_AUTH or opcode == OP_SASL_STEP) and pos < end:
                self.held = True  # the login (won or lost) decides how the rest is read
                break
        self._buf = bytes_slice(buf, pos, end) if pos < end else b""
        return out

    def _too_large_item(self, buf: bytes, pos: int, end: int, header: tuple[int, ...]) -> bool | None:
        """Whether a storage packet's item is over the limit; None until its flags and key
        (the start of the body) have arrived."""
        key_len, extras_len = header[2], header[3]
        if end - pos < extras_len + key_len:
            return None
        flags = int.from_bytes(buf[pos : pos + 4], "big") if extras_len else 0
        value_len = header[6] - key_len - extras_len
        return item_too_large(key_len, flags, value_len, self.max_item_size)

    def _read_header(self, buf: bytes, pos: int, out: list[Request]) -> tuple[int, ...] | None:
        header = HEADER.unpack_from(buf, pos)
        magic, opcode, key_len, extras_len, _dtype, _vbucket, body_len, opaque, _cas = header
        if magic != REQUEST_MAGIC:
            reply = b""
        elif key_len + extras_len > body_len:
            reply = error(opcode, ST_UNKNOWN, opaque)
        elif self.locked and opcode not in OPEN_WHILE_LOCKED:
            reply = error(opcode, ST_AUTH_ERROR, opaque)
        elif opcode not in self._known:
            return header  # answered and skipped by the caller; the connection goes on
        elif key_len > KEY_MAX_LENGTH or not _shape_ok(opcode, key_len, extras_len, body_len):
            reply = error(opcode, ST_INVALID, opaque)
        else:
            return header
        self._closed = True
        out.append(Request(CLOSE, b"", b"", reply, 0, 0))
        return None

    def _finish_too_large(self, out: list[Request]) -> None:
        assert self._too_large is not None
        out.append(self._too_large)
        self._too_large = None
        self._header = None
