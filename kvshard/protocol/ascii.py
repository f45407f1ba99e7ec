"""memcached's classic ASCII protocol, sans-IO: bytes in, commands out; replies out as bytes.

Theory of operation
-------------------
:class:`AsciiParser` is fed whatever the transport read and returns the commands completed so
far, in order. It is in one of two states:

    LINE   looking for the next ``\\n``. The line (a trailing ``\\r`` stripped) is split on
           single spaces (runs of spaces collapse, tabs are not separators, as in memcached)
           and turned into a command tuple, an error reply, or a storage header. (Compiled,
           a ``set`` line in its plainest form is read in one C pass instead, to the same
           header: :func:`plain_set_line`.)
    DATA   a storage header announced ``n`` bytes: wait for exactly ``n + 2`` bytes. If they
           end in ``\\r\\n`` the STORE command is emitted, otherwise ``CLIENT_ERROR bad data
           chunk`` and the bytes are dropped (memcached then parses whatever follows as the
           next command, and so do we). An item over the size limit is read the same way but
           discarded (SWALLOW) and answered ``SERVER_ERROR object too large for cache``.

Limits, stated out loud (see the constants below):
  * a key is 1..250 bytes of anything but a space or a newline, control characters included:
    memcached accepts them and memaslap sends binary keys (its ``--verify`` runs fail if
    they are refused);
  * a command line without ``\\n`` may grow to :data:`MAX_LINE` (2048) bytes; past that the
    connection is closed (memcached does the same), unless the line starts with ``get ``/``gets ``
    (multi-gets are long), which may grow to :data:`MAX_GET_LINE`;
  * an item is at most ``max_item_size`` bytes *including* memcached's per-item header
    (:func:`item_too_large` mirrors memcached 1.6's arithmetic, so the largest accepted value is
    the same byte for byte).

Numbers are parsed the way memcached's ``safe_strto*`` helpers parse them: decimal digits with
an optional sign where C allows one; flags wrap to 32 bits, exptime and length to signed 32
bits; anything else is ``CLIENT_ERROR bad command line format``.

Error replies respect ``noreply`` exactly as memcached 1.6 does: a command that ends in
``noreply`` gets no reply at all, not even an error, except for ``ERROR`` (unknown command or
wrong token count), which is always sent.

Commands are plain tuples whose first item is an opcode (see ``GET`` ... ``CLOSE``); their
layouts are documented next to the opcodes.
"""

from __future__ import annotations

from typing import Any, Final

from . import meta
from .ascii_admin import ADMIN_COMMANDS, admin_reply
from .byte_slices import bytes_slice, find_newline
from .numbers import strtol32, strtoul32, strtoull
from .watch import watch_flags

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

__all__ = [
    "AsciiParser",
    "KEY_MAX_LENGTH",
    "MAX_VALUE_LENGTH",
    "MAX_LINE",
    "MAX_GET_LINE",
    "item_too_large",
    "single_get_key",
    "plain_set_fields",
    "plain_set_parts",
    "GET", "GAT", "STORE", "DELETE", "ARITH", "TOUCH", "FLUSH", "VERSION", "VERBOSITY",
    "QUIT", "STATS", "REPLY", "TOO_LARGE", "CLOSE", "META", "SHUTDOWN", "FLUSH_REFUSED", "R_FLUSH_REFUSED", "WATCH",
    "ITEM_ADMIN",
    "item_total_size",
    "tokenize",
    "STORE_OPS",
    "R_ERROR", "R_STORED", "R_NOT_STORED", "R_EXISTS", "R_NOT_FOUND", "R_DELETED",
    "R_TOUCHED", "R_OK", "R_END", "R_RESET", "R_BAD_FORMAT", "R_BAD_CHUNK", "R_TOO_LARGE",
    "R_NON_NUMERIC", "R_BAD_DELTA", "R_BAD_EXPTIME", "R_DELETE_USAGE", "R_OUT_OF_MEMORY",
    "value_line", "number_line", "decimal",
]

KEY_MAX_LENGTH: Final = 250
MAX_VALUE_LENGTH: Final = 2147483645  # memcached refuses a longer <bytes> at once (INT_MAX - 2)
_COMMAND_LETTERS: Final = frozenset(b"acdgimst")  # memcached dispatches these first bytes itself
MAX_LINE: Final = 2048
MAX_GET_LINE: Final = 1 << 20
_ITEM_HEADER: Final = 48 + 8  # memcached 1.6's item header plus the CAS field

# ----- replies -------------------------------------------------------------------------------
R_ERROR: Final = b"ERROR\r\n"
R_STORED: Final = b"STORED\r\n"
R_NOT_STORED: Final = b"NOT_STORED\r\n"
R_EXISTS: Final = b"EXISTS\r\n"
R_NOT_FOUND: Final = b"NOT_FOUND\r\n"
R_DELETED: Final = b"DELETED\r\n"
R_TOUCHED: Final = b"TOUCHED\r\n"
R_OK: Final = b"OK\r\n"
R_END: Final = b"END\r\n"
R_RESET: Final = b"RESET\r\n"
R_BAD_FORMAT: Final = b"CLIENT_ERROR bad command line format\r\n"
R_FLUSH_REFUSED: Final = b"CLIENT_ERROR flush_all not allowed\r\n"
R_BAD_CHUNK: Final = b"CLIENT_ERROR bad data chunk\r\n"
R_TOO_LARGE: Final = b"SERVER_ERROR object too large for cache\r\n"
R_OUT_OF_MEMORY: Final = b"SERVER_ERROR out of memory storing object\r\n"
R_NON_NUMERIC: Final = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
R_BAD_DELTA: Final = b"CLIENT_ERROR invalid numeric delta argument\r\n"
R_BAD_EXPTIME: Final = b"CLIENT_ERROR invalid exptime argument\r\n"
R_DELETE_USAGE: Final = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"


_SMALL_DECIMALS: Final = tuple(b"%d" % n for n in range(1024))  # flags and lengths, pre-rendered


def decimal(n: int) -> bytes:
    """``n`` in ASCII decimal (small numbers from a table: no formatting per item)."""
    return _SMALL_DECIMALS[n] if 0 <= n < 1024 else b"%d" % n


def value_line(key: bytes, flags: int, value: bytes, cas: int | None) -> bytes:
    """One ``VALUE`` entry of a get reply, data block included."""
    if cython.compiled:  # one allocation, the pieces copied in C
        if cas is None:
            return _value_block(key, flags, value, 0, False)
        return _value_block(key, flags, value, cas, True)
    if cas is None:
        return b"".join((b"VALUE ", key, b" ", decimal(flags), b" ", decimal(len(value)), b"\r\n", value, b"\r\n"))
    return b"".join((b"VALUE ", key, b" ", decimal(flags), b" ", decimal(len(value)), b" ", b"%d" % cas, b"\r\n",
                     value, b"\r\n"))


def _value_block(key: bytes, flags: int, value: bytes, cas: int, with_cas: bool) -> bytes:
    """value_line in C (compiled only): ``VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n``."""
    data_at = cython.declare(Py_ssize_t)
    value_len = len(value)
    block = value_block_shell(key, flags, value_len, cas, with_cas, b"", cython.address(data_at))
    memcpy(PyBytes_AS_STRING(block) + data_at, cython.cast(cython.p_char, value), value_len)
    return block


def value_block_shell(key: bytes, flags: int, value_len: int, cas: int, with_cas: bool, tail: bytes, data_at: Any) -> bytes:
    """(compiled only) A new ``VALUE <key> <flags> <value_len>[ <cas>]\r\n....\r\n<tail>``
    whose ``value_len`` data bytes, at ``*data_at``, the caller fills in before anyone else
    sees the object (an item store copies its value straight in)."""
    key_len = len(key)
    head = value_header_size(key_len, flags, value_len, cas, with_cas)
    tail_len = len(tail)
    block = PyBytes_FromStringAndSize(cython.NULL, head + value_len + 2 + tail_len)
    out = PyBytes_AS_STRING(block)
    write_value_header(out, cython.cast(cython.p_char, key), key_len, flags, value_len, cas, with_cas)
    data_at[0] = head
    out[head + value_len] = 13
    out[head + value_len + 1] = 10
    memcpy(out + head + value_len + 2, cython.cast(cython.p_char, tail), tail_len)
    return block


def value_header_size(key_len: int, flags: int, value_len: int, cas: int, with_cas: bool) -> int:
    """(compiled only) The length of ``VALUE <key> <flags> <value_len>[ <cas>]\r\n``."""
    size = 6 + key_len + 1 + _decimal_length(flags) + 1 + _decimal_length(value_len) + 2
    return size + 1 + _decimal_length(cas) if with_cas else size


def write_value_header(out: Any, key: Any, key_len: int, flags: int, value_len: int, cas: int, with_cas: bool) -> int:
    """(compiled only) Write ``VALUE <key> <flags> <value_len>[ <cas>]\r\n`` at ``out``;
    returns its length (:func:`value_header_size`)."""
    memcpy(out, b"VALUE ", 6)
    memcpy(out + 6, key, key_len)
    at = 6 + key_len
    out[at] = 32
    at += 1 + _put_decimal(out + at + 1, flags)
    out[at] = 32
    at += 1 + _put_decimal(out + at + 1, value_len)
    if with_cas:
        out[at] = 32
        at += 1 + _put_decimal(out + at + 1, cas)
    out[at] = 13
    out[at + 1] = 10
    return at + 2


def _decimal_length(n: int) -> int:
    """Digits of ``n`` in decimal (compiled only)."""
    count = 1
    while n >= 10:
        n //= 10
        count += 1
    return count


def _put_decimal(out: Any, n: int) -> int:
    """Write ``n`` in decimal at ``out`` (compiled only); returns the number of digits."""
    reversed_digits = cython.declare(cython.char[20])
    count = 0
    while True:
        reversed_digits[count] = 48 + n % 10
        n //= 10
        count += 1
        if n == 0:
            break
    for i in range(count):
        out[i] = reversed_digits[count - 1 - i]
    return count


def _small_decimal(text: bytes) -> int:
    """``text`` as a number if it is 1 to 9 ASCII digits, else -1 (compiled only: the common
    case of a storage command's flags, exptime and length, without an int object per try)."""
    n = len(text)
    if _plain_decimal(cython.cast(cython.p_uchar, cython.cast(cython.p_char, text)), 0, n, cython.address(value)) != n:
        return -1
    return value


def _plain_decimal(p: Any, at: int, end: int, out: Any) -> int:
    """(compiled only) The 1 to 9 ASCII digits at ``p[at:]`` up to ``end`` or a space, their
    value stored at ``out``; returns where they stop, or -1 if there are none, too many, or
    another byte among them."""
    start = at
    value = 0
    while at < end and p[at] != 32:
        c = p[at]
        if c < 48 or c > 57 or at - start == 9:
            return -1
        value = value * 10 + (c - 48)
        at += 1
    if at == start:
        return -1
    out[0] = value
    return at


def plain_set_line(p: Any, end: int, line: Any) -> bool:
    """(compiled only) Whether the ``end`` bytes at ``p`` are a ``set`` command line in its
    plainest form, ``set <key> <flags> <exptime> <bytes>[ noreply]``: single spaces, a key of
    1 to 250 bytes, each number 1 to 9 digits, no NUL byte. Its fields then are in ``line``
    (a SetLine; its ``value_at`` is left alone). Such a line means the same to the tokenizer's
    path, in one C pass with no token objects; anything else (the errors, numbers that wrap,
    the other spellings) is False and goes that way, to get memcached's exact answers."""
    if end < 4 or p[0] != 115 or p[1] != 101 or p[2] != 116 or p[3] != 32:  # "set "
        return False
    if memchr(p, 0, end):  # the tokenizer would end the line there
        return False
    key_end = cython.cast(cython.p_uchar, memchr(p + 4, 32, end - 4))
    if not key_end:
        return False
    line.key_at = 4
    line.key_len = key_end - p - 4
    if line.key_len == 0 or line.key_len > C_KEY_MAX_LENGTH:
        return False
    at = _plain_decimal(p, line.key_at + line.key_len + 1, end, cython.address(number))
    if at < 0 or at == end:
        return False
    line.flags = number
    at = _plain_decimal(p, at + 1, end, cython.address(number))
    if at < 0 or at == end:
        return False
    line.exptime = number
    at = _plain_decimal(p, at + 1, end, cython.address(number))
    if at < 0:
        return False
    line.length = number
    line.noreply = at < end
    return at == end or (end - at == 8 and memcmp(p + at + 1, b"noreply", 7) == 0)


def whole_plain_set(data: bytes, max_item_size: int, line: Any) -> bool:
    """(compiled only) Whether ``data`` is exactly one :func:`plain_set_line` ending in CRLF
    and its whole data block, of a size the parser accepts: the session's fast path for a
    ``set`` that is a read by itself (the caller checks that the parser holds nothing). Its
    fields are then in ``line``, the value at ``line.value_at``."""
    n = len(data)
    p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, data))
    newline = cython.cast(cython.p_uchar, memchr(p, 10, n))
    if not newline:
        return False
    line_end = newline - p - 1
    if line_end < 0 or p[line_end] != 13 or not plain_set_line(p, line_end, line):
        return False
    line.value_at = line_end + 2
    return (
        n - line.value_at == line.length + 2 and p[n - 2] == 13 and p[n - 1] == 10
        and not item_too_large(line.key_len, line.flags, line.length, max_item_size)
    )


def plain_set_parts(line: bytes) -> tuple[bytes, int, int, int, bool] | None:
    """:func:`plain_set_line` in Python (the interpreted parser's): ``(key, flags, exptime,
    length, noreply)`` of a ``set`` line in its plainest form, else None."""
    parts = line.split(b" ")
    n = len(parts)
    if (n != 5 and (n != 6 or parts[5] != _NOREPLY)) or parts[0] != b"set" or 0 in line:
        return None
    key, flags, exptime, length = parts[1], parts[2], parts[3], parts[4]
    if not (
        0 < len(key) <= KEY_MAX_LENGTH and len(flags) < 10 and len(exptime) < 10 and len(length) < 10
        and flags.isdigit() and exptime.isdigit() and length.isdigit()
    ):
        return None
    return key, int(flags), int(exptime), int(length), n == 6


def plain_set_fields(data: bytes, max_item_size: int) -> tuple[bytes, int, int, bytes, bool] | None:
    """:func:`whole_plain_set` in Python (the interpreted session's): ``(key, flags, exptime,
    value, noreply)`` when ``data`` is exactly one plain ``set`` with its data block that the
    parser would read the same way, else None."""
    if data[:4] != b"set ":
        return None
    line_end = data.find(b"\n") - 1
    if line_end < 4 or data[line_end] != 13:
        return None
    parts = plain_set_parts(data[:line_end])
    if parts is None:
        return None
    key, flags, exptime, length, noreply = parts
    value_at = line_end + 2
    if len(data) != value_at + length + 2 or data[-2:] != b"\r\n" or item_too_large(len(key), flags, length, max_item_size):
        return None
    return key, flags, exptime, data[value_at:-2], noreply


def number_line(n: int) -> bytes:
    return b"%d\r\n" % n


# ----- commands ------------------------------------------------------------------------------
# (compiled, ascii.pxd's C enum defines these numbers: keep the two lists the same)
if not cython.compiled:
    GET: Final = 0        # (GET, keys: list[bytes], with_cas: bool)
    GAT: Final = 1        # (GAT, keys, with_cas, exptime: int)
    STORE: Final = 2      # (STORE, op: bytes, key, flags, exptime, value: bytes, cas: int, noreply)
    DELETE: Final = 3     # (DELETE, key, noreply)
    ARITH: Final = 4      # (ARITH, incr: bool, key, delta: int, noreply)
    TOUCH: Final = 5      # (TOUCH, key, exptime, noreply)
    FLUSH: Final = 6      # (FLUSH, delay: int, noreply)
    VERSION: Final = 7    # (VERSION,)
    VERBOSITY: Final = 8  # (VERBOSITY, level: int, noreply)
    QUIT: Final = 9       # (QUIT,)
    STATS: Final = 10     # (STATS, args: list[bytes])
    REPLY: Final = 11     # (REPLY, reply: bytes): answer with these bytes, nothing to execute
    TOO_LARGE: Final = 12  # (TOO_LARGE, op, key, noreply): item swallowed; a set drops the old item
    CLOSE: Final = 13     # (CLOSE,): close the connection now (line too long, an HTTP request line)
    META: Final = 14      # (META, verb: bytes, key, flags: MetaFlags | None, value: bytes | None)
    SHUTDOWN: Final = 15  # (SHUTDOWN, mode: bytes | None): "shutdown [graceful]"; the server decides if it may
    FLUSH_REFUSED: Final = 16  # (FLUSH_REFUSED, noreply): flush_all under -F
    WATCH: Final = 17     # (WATCH, streams: int (-1: an unknown name), noreply): see kvshard.protocol.watch
    ITEM_ADMIN: Final = 18  # (ITEM_ADMIN, tokens): cache_memlimit, lru_crawler, lru (kvshard.item_commands), slabs (kvshard.slab_mover)

STORE_OPS: Final = frozenset((b"set", b"add", b"replace", b"append", b"prepend", b"cas"))

_NOREPLY: Final = b"noreply"
_ASCII_DIGITS = frozenset(b"0123456789")


def item_total_size(key_length: int, flags: int, value_length: int) -> int:
    """What memcached 1.6 allocates for an item: header + key + NUL + flags suffix + value +
    CRLF (its ``ITEM_ntotal``, which ``me`` reports as ``size``)."""
    return _ITEM_HEADER + key_length + 1 + (4 if flags else 0) + value_length + 2


def item_too_large(key_length: int, flags: int, value_length: int, max_item_size: int) -> bool:
    """memcached 1.6's size check."""
    return item_total_size(key_length, flags, value_length) > max_item_size


def tokenize(text: bytes) -> list[bytes]:
    """memcached's tokenizer: split on spaces, runs collapsing (tabs are no separators); the
    text is a C string to memcached, so a NUL byte ends it."""
    if cython.compiled:  # one pass in C, a bytes object made per token and nothing else
        p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, text))
        n = len(text)
        hit = cython.cast(cython.p_uchar, memchr(p, 0, n))  # (memchr: SIMD, not a loop per byte)
        if hit:
            n = hit - p
        tokens = []
        i = 0
        while i < n:
            if p[i] == 32:
                i += 1
                continue
            hit = cython.cast(cython.p_uchar, memchr(p + i, 32, n - i))
            end = n if not hit else hit - p
            tokens.append(PyBytes_FromStringAndSize(cython.cast(cython.p_char, p) + i, end - i))
            i = end
        return tokens
    if 0 in text:
        text = text[: text.index(0)]
    tokens = text.split(b" ")
    if b"" in tokens:
        tokens = [t for t in tokens if t]
    return tokens


def _unknown_command(name: bytes, tokens: list[bytes]) -> tuple[Any, ...]:
    """An unknown command: ERROR, or a hang-up with no reply (not even to the commands before
    it in the same read) when it looks like an HTTP request line, memcached's defence against a
    browser made to talk to it. memcached 1.6.18 hangs up when the command has two bytes or
    more, does not start with one of its command letters (a c d g i m s t: those answer ERROR
    within their own branch), and its last token starts with ``HTTP/``."""
    if len(name) >= 2 and name[0] not in _COMMAND_LETTERS and tokens[-1].startswith(b"HTTP/"):
        return (CLOSE,)
    return (REPLY, R_ERROR)


def _key_ok(key: bytes) -> bool:
    # tokens never contain a space or a newline; every other byte may be part of a key
    if cython.compiled:
        return len(key) <= C_KEY_MAX_LENGTH
    return len(key) <= KEY_MAX_LENGTH


def single_get_key(data: bytes) -> bytes | None:
    """The key if ``data`` is exactly one plain ``get <key>\\r\\n`` that the parser would
    accept, else None (the caller then feeds the parser). Only a fast path: anything unusual
    (several keys, a stray space or CR, an over-long key) answers None."""
    if cython.compiled:  # in C: the key ends at the final CR, at no space, LF or NUL before it
        n = len(data)
        if n < 7 or n > C_KEY_MAX_LENGTH + 6:
            return None
        p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, data))
        if p[0] != 103 or p[1] != 101 or p[2] != 116 or p[3] != 32 or p[n - 2] != 13 or p[n - 1] != 10:
            return None  # not "get " ... "\r\n"
        # (a bytes object's buffer ends with a NUL, so strcspn stops at the end at the latest)
        if strcspn(cython.cast(cython.p_char, p) + 4, b" \r\n") != n - 6:
            return None
        return bytes_slice(data, 4, n - 2)
    if data[-2:] != b"\r\n" or data[:4] != b"get " or len(data) > KEY_MAX_LENGTH + 6:
        return None
    key = data[4:-2]
    if not key:
        return None
    # a space, CR, LF or NUL inside means more than one plain key (or a C string cut short)
    if 32 in key or 10 in key or 13 in key or 0 in key:
        return None
    return key


class AsciiParser:
    """Incremental parser for one connection. Feed bytes; get command tuples."""

    __slots__ = ("max_item_size", "flush_enabled", "_buf", "_chunks", "_chunks_len", "_want", "_pending", "_closed")

    def __init__(self, max_item_size: int = 1 << 20, flush_enabled: bool = True) -> None:
        self.max_item_size = max_item_size
        self.flush_enabled = flush_enabled  # False with -F: flush_all is refused
        self._buf = b""
        self._chunks: list[bytes] = []  # a data block being collected (DATA state)
        self._chunks_len = 0
        self._want = 0  # bytes still owed to the data block (0 = LINE state)
        self._pending: tuple[Any, ...] | None = None  # the storage header awaiting its data
        self._closed = False

    @property
    def idle(self) -> bool:
        """Nothing held back: the next byte fed starts a new command line."""
        return self.is_idle()

    def is_idle(self) -> bool:
        """:attr:`idle`, as a method (a direct call for the compiled connection)."""
        return not self._buf and not self._want and not self._closed

    @property
    def reading_data(self) -> bool:
        """Inside a storage command's data block."""
        return bool(self._want)

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a line or data block."""
        return len(self._buf) + self._chunks_len

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        """Consume ``data``; return the commands it completed, in order."""
        out: list[tuple[Any, ...]] = []
        if self._closed or not data:
            return out
        if self._want:  # DATA state carried over from an earlier read
            want = self._want
            if len(data) < want:
                self._chunks.append(data)
                self._chunks_len += len(data)
                self._want = want - len(data)
                return out
            self._chunks.append(bytes_slice(data, 0, want))
            block = b"".join(self._chunks)
            self._chunks = []
            self._chunks_len = 0
            self._want = 0
            self._finish_block(block, out)
            buf, pos = data, want
        else:
            buf, pos = (self._buf + data if self._buf else data), 0
            self._buf = b""
        end = len(buf)
        while pos < end:
            want = self._want
            if want:  # DATA state entered in this buffer
                if end - pos < want:
                    self._chunks = [bytes_slice(buf, pos, end)]
                    self._chunks_len = end - pos
                    self._want = want - (end - pos)
                    return out
                self._want = 0
                self._finish_block(bytes_slice(buf, pos, pos + want), out)
                pos += want
                continue
            nl = find_newline(buf, pos, end)
            if nl < 0:
                break
            line = bytes_slice(buf, pos, nl - 1 if nl > pos and buf[nl - 1] == 13 else nl)
            pos = nl + 1
            cmd = self._command(line)
            if cmd is not None:
                out.append(cmd)
                if cmd[0] == QUIT:
                    self._closed = True
                    return out
        if pos < end:
            rest = bytes_slice(buf, pos, end)
            if len(rest) > MAX_LINE and not self._long_get_ok(rest):
                self._closed = True
                out.append((CLOSE,))
                return out
            self._buf = rest
        return out

    @staticmethod
    def _long_get_ok(rest: bytes) -> bool:
        stripped = rest.lstrip(b" ")
        if len(rest) - len(stripped) > 100 or len(rest) > MAX_GET_LINE:
            return False
        return stripped.startswith(b"get ") or stripped.startswith(b"gets ")

    def _finish_block(self, block: bytes, out: list[tuple[Any, ...]]) -> None:
        """A whole data block (value + CRLF) arrived for the pending storage header."""
        header = self._pending
        self._pending = None
        assert header is not None
        op = header[0]
        if op == TOO_LARGE:
            out.append(header)
        elif op == REPLY:  # the data of a command already answered with an error: dropped
            pass
        elif len(block) < 2 or block[len(block) - 2] != 13 or block[len(block) - 1] != 10:
            if op == META or not header[7]:  # an ms always hears of a bad chunk, q or not
                out.append((REPLY, R_BAD_CHUNK))
        elif op == META:
            out.append((META, header[1], header[2], header[3], bytes_slice(block, 0, len(block) - 2)))
        else:
            out.append((STORE, header[1], header[2], header[3], header[4], bytes_slice(block, 0, len(block) - 2),
                        header[6], header[7]))

    # ----- one line -------------------------------------------------------------------------

    def _command(self, line: bytes) -> tuple[Any, ...] | None:
        if self._plain_set(line):  # the commonest storage line, in one pass (compiled, in C)
            return None
        tokens = tokenize(line)
        if not tokens:
            return (REPLY, R_ERROR)
        name = tokens[0]
        n = len(tokens)
        if name == b"get" or name == b"gets":
            if n < 2:
                return (REPLY, R_ERROR)
            keys = tokens[1:]
            for key in keys:
                if len(key) > KEY_MAX_LENGTH:
                    return (REPLY, R_BAD_FORMAT)
            return (GET, keys, name == b"gets")
        if len(name) == 2 and name[0] == 109:  # m: the meta commands
            return self._meta(name, tokens)
        if name in STORE_OPS:
            return self._storage(name, tokens)
        if name == b"delete":
            return self._delete(tokens)
        if name == b"incr" or name == b"decr":
            if n not in (3, 4):
                return (REPLY, R_ERROR)
            noreply = tokens[-1] == _NOREPLY
            if not _key_ok(tokens[1]):
                return (REPLY, R_BAD_FORMAT) if not noreply else (REPLY, b"")
            delta = strtoull(tokens[2])
            if delta is None:
                return (REPLY, b"" if noreply else R_BAD_DELTA)
            return (ARITH, name == b"incr", tokens[1], delta, noreply)
        if name == b"touch":
            if n not in (3, 4):
                return (REPLY, R_ERROR)
            noreply = tokens[-1] == _NOREPLY
            if not _key_ok(tokens[1]):
                return (REPLY, b"" if noreply else R_BAD_FORMAT)
            exptime = strtol32(tokens[2])
            if exptime is None:
                return (REPLY, b"" if noreply else R_BAD_EXPTIME)
            return (TOUCH, tokens[1], exptime, noreply)
        if name == b"gat" or name == b"gats":
            if n < 2:
                return (REPLY, R_ERROR)
            exptime = strtol32(tokens[1])
            if exptime is None:
                return (REPLY, R_BAD_EXPTIME)
            keys = tokens[2:]
            for key in keys:
                if not _key_ok(key):
                    return (REPLY, R_BAD_FORMAT)
            return (GAT, keys, name == b"gats", exptime)
        if name == b"flush_all":
            if n > 3:
                return (REPLY, R_ERROR)
            noreply = tokens[-1] == _NOREPLY
            if not self.flush_enabled:  # -F: refused before its delay is even read, as memcached
                return (FLUSH_REFUSED, noreply)
            delay = 0
            if n != (2 if noreply else 1):  # a delay token is there
                parsed = strtol32(tokens[1])
                if parsed is None:
                    return (REPLY, b"" if noreply else R_BAD_EXPTIME)
                delay = parsed
            return (FLUSH, delay, noreply)
        if name == b"version":
            return (VERSION,)
        if name == b"verbosity":
            if n not in (2, 3):
                return (REPLY, R_ERROR)
            noreply = tokens[-1] == _NOREPLY
            level = strtoul32(tokens[1])
            if level is None:
                return (REPLY, b"" if noreply else R_BAD_FORMAT)
            return (VERBOSITY, level, noreply)
        if name == b"quit":
            return (QUIT,)
        if name == b"shutdown":
            return (SHUTDOWN, tokens[1] if n == 2 else None if n == 1 else b"")
        if name == b"stats":
            return (STATS, tokens[1:])
        if name == b"watch":  # -W, pipelining and a full watcher list are checked before the names
            return (WATCH, watch_flags(tokens[1:]), n > 1 and tokens[-1] == _NOREPLY)
        if name == b"lru_crawler" or name == b"lru" or (name == b"cache_memlimit" and n in (2, 3)):
            return (ITEM_ADMIN, tokens)  # kvshard.item_commands
        if name == b"slabs" and n >= 3 and (tokens[1] == b"automove" or (n == 4 and tokens[1] == b"reassign")):
            return (ITEM_ADMIN, tokens)  # kvshard.slab_mover
        if name == b"cache_memlimit":
            return (REPLY, R_ERROR)
        if name in ADMIN_COMMANDS:  # slabs: see ascii_admin
            return (REPLY, admin_reply(tokens))
        return _unknown_command(name, tokens)

    def _storage(self, name: bytes, tokens: list[bytes]) -> tuple[Any, ...] | None:
        n = len(tokens)
        is_cas = name == b"cas"
        if n not in ((6, 7) if is_cas else (5, 6)):
            return (REPLY, R_ERROR)
        noreply = tokens[-1] == _NOREPLY
        key = tokens[1]
        if not _key_ok(key):
            return (REPLY, b"" if noreply else R_BAD_FORMAT)
        f, e, l = tokens[2], tokens[3], tokens[4]
        if cython.compiled:
            flags, exptime, length = _small_decimal(f), _small_decimal(e), _small_decimal(l)
            small = flags >= 0 and exptime >= 0 and length >= 0
        else:
            small = len(f) < 10 and len(e) < 10 and len(l) < 10 and f.isdigit() and e.isdigit() and l.isdigit()
            if small:
                flags, exptime, length = int(f), int(e), int(l)
        if not small:  # not plain small numbers: memcached's conversions, with their wrapping
            flags, exptime, length = strtoul32(f), strtol32(e), strtol32(l)  # type: ignore[assignment]
            if flags is None or exptime is None or length is None:
                return (REPLY, b"" if noreply else R_BAD_FORMAT)
        cas = 0
        if is_cas:
            parsed = strtoull(tokens[5])
            if parsed is None:
                return (REPLY, b"" if noreply else R_BAD_FORMAT)
            cas = parsed
        if length < 0 or length > MAX_VALUE_LENGTH:  # refused at once: no 2 GiB wait for data
            return (REPLY, b"" if noreply else R_BAD_FORMAT)
        self._await_block(name, key, flags, exptime, length, cas, noreply)
        return None

    def _plain_set(self, line: bytes) -> bool:
        """A set line in its plainest form (:func:`plain_set_line` in C, or
        :func:`plain_set_parts`) awaits its block; False for any other line."""
        if cython.compiled:
            if not plain_set_line(cython.cast(cython.p_uchar, cython.cast(cython.p_char, line)), len(line),
                                  cython.address(fields)):
                return False
            key = bytes_slice(line, fields.key_at, fields.key_at + fields.key_len)
            self._await_block(b"set", key, fields.flags, fields.exptime, fields.length, 0, fields.noreply)
            return True
        if not line.startswith(b"set "):  # (the other commands, with no call)
            return False
        parts = plain_set_parts(line)
        if parts is None:
            return False
        key, flags, exptime, length, noreply = parts
        self._await_block(b"set", key, flags, exptime, length, 0, noreply)
        return True

    def _await_block(self, name: bytes, key: bytes, flags: int, exptime: int, length: int, cas: int,
                     noreply: bool) -> None:
        """A valid storage header: the DATA state, for ``length`` bytes and CRLF."""
        self._want = length + 2
        if item_too_large(len(key), flags, length, self.max_item_size):
            self._pending = (TOO_LARGE, name, key, noreply)
        else:
            self._pending = (STORE, name, key, flags, exptime, None, cas, noreply)

    def _meta(self, name: bytes, tokens: list[bytes]) -> tuple[Any, ...] | None:
        verb = name[1:]
        if verb == b"n":
            return (REPLY, meta.R_MN)
        if verb == meta.META_DEBUG:
            key = meta.debug_key(tokens)
            return (REPLY, R_BAD_FORMAT) if key is None else (META, verb, key, None, None)
        if verb not in (meta.META_GET, meta.META_SET, meta.META_DELETE, meta.META_ARITH) or len(tokens) < 2:
            return (REPLY, R_ERROR)
        if verb == meta.META_SET:
            return self._meta_set(tokens)
        checked = meta.check_line(verb, tokens) or meta.check_flags(verb, tokens)
        if type(checked) is bytes:
            return (REPLY, checked)
        key, flags = checked  # type: ignore[misc]
        return (META, verb, key, flags, None)

    def _meta_set(self, tokens: list[bytes]) -> tuple[Any, ...] | None:
        """``ms <key> <datalen> <flag>*``: errors found before the data length is known leave
        the data to be parsed as commands (as memcached does); later ones swallow it."""
        error = meta.check_line(meta.META_SET, tokens)
        if error is not None or len(tokens) == 2:
            return (REPLY, error or R_BAD_FORMAT)
        length = strtol32(tokens[2])
        if length is None or length < 0:
            return (REPLY, R_BAD_FORMAT)
        self._want = length + 2
        checked = meta.check_flags(meta.META_SET, tokens)
        if type(checked) is bytes:
            self._pending = (REPLY, b"")
            return (REPLY, checked)
        key, flags = checked  # type: ignore[misc]
        if item_too_large(len(key), flags.client_flags, length, self.max_item_size):
            self._pending = (TOO_LARGE, b"set", key, False)  # the old item goes, in any mode
        else:
            self._pending = (META, meta.META_SET, key, flags, None)
        return None

    @staticmethod
    def _delete(tokens: list[bytes]) -> tuple[Any, ...]:
        n = len(tokens)
        if n < 2 or n > 4:
            return (REPLY, R_ERROR)
        noreply = tokens[-1] == _NOREPLY
        if n > 2:
            hold_is_zero = tokens[2] == b"0"
            valid = (n == 3 and (hold_is_zero or noreply)) or (n == 4 and hold_is_zero and noreply)
            if not valid:
                return (REPLY, b"" if noreply else R_DELETE_USAGE)
        if not _key_ok(tokens[1]):
            return (REPLY, b"" if noreply else R_BAD_FORMAT)
        return (DELETE, tokens[1], noreply)
