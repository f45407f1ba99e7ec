"""Bad input: the exact error replies, and that the connection stays usable (or is closed
where memcached closes it)."""

from __future__ import annotations

from typing import Callable

import pytest

from .conftest import Keys
from .wire import Wire, storage, value

BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
ITEM_SIZE_MAX = 1024 * 1024


@pytest.mark.parametrize(
    "line",
    [
        b"bogus",
        b"bogus with args",
        b"GET x",
        b"Set x 0 0 1",
        b"",
        b"   ",
        b"get",
        b"gets",
        b"delete",
        b"touch x",
        b"STATS",
        b"QUIT",
    ],
    ids=[
        "unknown",
        "unknown-args",
        "upper-get",
        "mixed-case-set",
        "empty",
        "spaces",
        "get-no-key",
        "gets-no-key",
        "delete-no-key",
        "touch-no-time",
        "upper-stats",
        "upper-quit",
    ],
)
def test_unknown_or_incomplete_command_is_error(conn: Wire, line: bytes) -> None:
    """Unknown commands (names are case sensitive), empty lines and commands missing their
    arguments get ERROR and the connection goes on."""
    conn.call(line + b"\r\n", b"ERROR\r\n")


def test_bare_newline_is_an_empty_command(conn: Wire) -> None:
    """A lone ``\\n`` is an empty line: ERROR."""
    conn.call(b"\n", b"ERROR\r\n")


@pytest.mark.parametrize(
    "fields",
    [b"abc 0 1", b"0 abc 1", b"0 0 abc", b"0 0 -1", b"-1 0 1", b"1x 0 1", b"0 0 1x"],
    ids=[
        "flags-letters",
        "exptime-letters",
        "length-letters",
        "length-negative",
        "flags-negative",
        "flags-suffix",
        "length-suffix",
    ],
)
def test_malformed_storage_numbers(conn: Wire, keys: Keys, fields: bytes) -> None:
    """A storage line with a bad number is CLIENT_ERROR; the data line that follows is then
    read as a command and gets ERROR. Nothing is stored."""
    k = keys()
    conn.call(b"set " + k + b" " + fields + b"\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


@pytest.mark.parametrize(
    "line",
    [b"set {k} 0 0 1 noreply extra", b"set {k} 0 0", b"add {k} 0 1", b"cas {k} 0 0 1", b"cas {k} 0 0 1 1 noreply x"],
    ids=["too-many", "too-few", "add-too-few", "cas-without-unique", "cas-too-many"],
)
def test_storage_line_with_wrong_token_count(conn: Wire, keys: Keys, line: bytes) -> None:
    """Too many or too few tokens is ERROR; the data line then gets its own ERROR."""
    k = keys()
    conn.call(line.replace(b"{k}", k) + b"\r\nx\r\n", b"ERROR\r\nERROR\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


@pytest.mark.parametrize("unique", [b"abc", b"-1"])
def test_cas_with_malformed_unique(conn: Wire, keys: Keys, unique: bytes) -> None:
    """A non-numeric or negative CAS unique is CLIENT_ERROR (then ERROR for the data line)."""
    k = keys()
    conn.call(storage(b"set", k, b"v"), b"STORED\r\n")
    conn.call(b"cas " + k + b" 0 0 1 " + unique + b"\r\nx\r\n", BAD_FORMAT + b"ERROR\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"v") + b"END\r\n")


def test_key_of_251_bytes_storage(conn: Wire, keys: Keys) -> None:
    """A 251-byte key on a storage command is CLIENT_ERROR; the data line gets ERROR."""
    k = keys.sized(251)
    conn.call(storage(b"set", k, b"v"), BAD_FORMAT + b"ERROR\r\n")
    conn.call(storage(b"add", k, b"v"), BAD_FORMAT + b"ERROR\r\n")
    conn.call(storage(b"cas", k, b"v", cas=1), BAD_FORMAT + b"ERROR\r\n")
    conn.call(storage(b"set", k, b"v", noreply=True), b"ERROR\r\n")


@pytest.mark.parametrize(
    "line",
    [
        b"get {k}",
        b"gets {k}",
        b"get a {k} b",
        b"gat 0 {k}",
        b"gats 0 {k}",
        b"delete {k}",
        b"incr {k} 1",
        b"decr {k} 1",
        b"touch {k} 1",
    ],
    ids=["get", "gets", "get-among-others", "gat", "gats", "delete", "incr", "decr", "touch"],
)
def test_key_of_251_bytes_other_commands(conn: Wire, keys: Keys, line: bytes) -> None:
    """A 251-byte key anywhere is CLIENT_ERROR bad command line format (the whole get fails).

    Sent as the only outstanding request: memcached 1.6.18 drops replies still queued for
    earlier pipelined commands when a get fails this way, which nobody should copy."""
    k = keys.sized(251)
    conn.call(line.replace(b"{k}", k) + b"\r\n", BAD_FORMAT)


def test_data_block_longer_than_announced(conn: Wire, keys: Keys) -> None:
    """<bytes>+2 bytes are read as the block; if they do not end in CRLF it is CLIENT_ERROR bad
    data chunk, and whatever follows up to the next newline is read as a command (ERROR).
    Nothing is stored and an existing value is kept."""
    k = keys()
    conn.call(storage(b"set", k, b"old"), b"STORED\r\n")
    conn.call(b"set " + k + b" 0 0 1\r\nxyz\r\n", BAD_CHUNK + b"ERROR\r\n")
    conn.call(b"set " + k + b" 0 0 2\r\nabcdefgh\r\n", BAD_CHUNK + b"ERROR\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"old") + b"END\r\n")


def test_data_block_overrun_by_one_then_command(conn: Wire, keys: Keys) -> None:
    """One extra byte: the block eats ``ab\\r``, the lone ``\\n`` is an empty command (ERROR),
    and the next command runs normally."""
    k = keys()
    conn.call(b"set " + k + b" 0 0 1\r\nab\r\nget " + k + b"\r\n", BAD_CHUNK + b"ERROR\r\nEND\r\n")


def test_data_block_shorter_than_announced(conn: Wire, keys: Keys) -> None:
    """A short block swallows the start of the next command: ``ab\\r\\nget`` fills 5+2 bytes,
    fails the CRLF check, and the rest of that line is an unknown command."""
    k = keys()
    conn.call(b"set " + k + b" 0 0 5\r\nab\r\nget " + k + b"\r\n", BAD_CHUNK + b"ERROR\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


def test_data_block_needs_crlf(conn: Wire, keys: Keys) -> None:
    """A data block ended by a bare LF is a bad data chunk even though command lines may use
    bare LF."""
    k = keys()
    conn.call(b"set " + k + b" 0 0 1\nz\nget " + k + b"\n", BAD_CHUNK + b"ERROR\r\n")
    conn.call(b"set " + k + b" 0 0 0\r\nX\r\n", BAD_CHUNK + b"ERROR\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


def test_bad_data_chunk_on_cas_and_append(conn: Wire, keys: Keys) -> None:
    """The data-chunk check applies to every storage command; the value is left alone."""
    k = keys()
    conn.call(storage(b"set", k, b"ab"), b"STORED\r\n")
    conn.call(b"cas " + k + b" 0 0 1 1\r\nxyz\r\n", BAD_CHUNK + b"ERROR\r\n")
    conn.call(b"append " + k + b" 0 0 1\r\nxyz\r\n", BAD_CHUNK + b"ERROR\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"ab") + b"END\r\n")


def test_item_too_large(conn: Wire, keys: Keys) -> None:
    """A value over the 1 MB item size is SERVER_ERROR object too large for cache; its data
    block is swallowed (not run as commands), the connection goes on, and a value already
    stored under that key is gone."""
    k = keys()
    conn.call(storage(b"set", k, b"old"), b"STORED\r\n")
    big = b"get " + k + b"\r\n"
    big = (big * (ITEM_SIZE_MAX // len(big) + 1))[: ITEM_SIZE_MAX + 1]
    conn.call(storage(b"set", k, big), TOO_LARGE)
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


def test_item_too_large_with_noreply_and_other_commands(conn: Wire, keys: Keys) -> None:
    """The same with noreply (silent) and with add: the old value is dropped either way."""
    k = keys()
    big = b"x" * (2 * ITEM_SIZE_MAX)
    conn.call(storage(b"set", k, b"old"), b"STORED\r\n")
    conn.call(storage(b"set", k, big, noreply=True), b"")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")
    conn.call(storage(b"add", k, big), TOO_LARGE)
    conn.call(storage(b"set", k, b"small"), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"small") + b"END\r\n")


def test_long_line_without_newline_closes_the_connection(conn: Wire, connect: Callable[[], Wire]) -> None:
    """More than 2048 bytes with no newline that do not start a get: the server hangs up
    without a reply. Other connections are unaffected."""
    conn.send(b"x" * 3000)
    assert conn.wait_closed() == b""
    other = connect()
    other.send(b"version\r\n")
    assert other.recv_line().startswith(b"VERSION ")
    other.sync()


def test_long_storage_line_without_newline_closes(conn: Wire) -> None:
    """The same for a storage command whose key runs on past 2048 bytes."""
    conn.send(b"set " + b"k" * 3000)
    assert conn.wait_closed() == b""


def test_line_just_under_2048_bytes_waits_for_more(conn: Wire) -> None:
    """2000 bytes without newline are kept; once the newline comes it is one unknown command."""
    conn.send(b"x" * 2000)
    assert conn.recv_available(0.2) == b""
    conn.call(b"x" * 40 + b"\r\n", b"ERROR\r\n")


def test_errors_do_not_break_the_connection(conn: Wire, keys: Keys) -> None:
    """After a burst of every kind of bad input the connection still works normally."""
    k = keys()
    burst = b"bogus\r\n\r\nset " + k + b" x 0 1\r\nx\r\nset " + k + b" 0 0 1\r\nxyz\r\nincr " + k + b" abc\r\n"
    conn.call(
        burst,
        b"ERROR\r\nERROR\r\n"
        + BAD_FORMAT
        + b"ERROR\r\n"
        + BAD_CHUNK
        + b"ERROR\r\n"
        + b"CLIENT_ERROR invalid numeric delta argument\r\n",
    )
    conn.call(storage(b"set", k, b"fine"), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"fine") + b"END\r\n")


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"touch {k} abc", b"CLIENT_ERROR invalid exptime argument\r\n"),
        (b"gat abc {k}", b"CLIENT_ERROR invalid exptime argument\r\n"),
        (b"gats abc {k}", b"CLIENT_ERROR invalid exptime argument\r\n"),
        (b"touch {k} 100 noreply x", b"ERROR\r\n"),
    ],
    ids=["touch", "gat", "gats", "touch-too-many"],
)
def test_bad_exptime_on_touch_and_gat(conn: Wire, keys: Keys, line: bytes, reply: bytes) -> None:
    """A non-numeric exptime on touch/gat/gats is CLIENT_ERROR invalid exptime argument."""
    k = keys()
    conn.call(storage(b"set", k, b"v"), b"STORED\r\n")
    conn.call(line.replace(b"{k}", k) + b"\r\n", reply)
    conn.call(b"get " + k + b"\r\n", value(k, b"v") + b"END\r\n")


@pytest.mark.parametrize("length", [b"2147483646", b"2147483647", b"2147483648", b"4294967295", b"-1"])
def test_storage_length_beyond_int_max_is_refused_at_once(conn: Wire, keys: Keys, length: bytes) -> None:
    """A <bytes> over INT_MAX - 2 (or one that wraps negative) is refused without waiting for
    data (kvshard used to wait for 2 GiB); the connection goes on with the next line."""
    conn.call(b"set %b 0 0 %b\r\n" % (keys(), length), BAD_FORMAT)
    conn.call(b"set %b 0 0 %b noreply\r\n" % (keys(), length), b"")


def test_storage_length_just_under_the_limit_waits_for_its_data(conn: Wire, keys: Keys) -> None:
    """2147483645 is accepted as a length (too large to store: the data would be swallowed)."""
    conn.send(b"set %b 0 0 2147483645\r\nversion\r\n" % keys())
    assert conn.recv_available(0.3) == b""


@pytest.mark.parametrize(
    "line",
    [b"GET / HTTP/1.0", b"POST /form HTTP/1.1", b"HEAD / HTTP/1.0", b"OPTIONS * HTTP/1.1", b"GETX / HTTP/2",
     b"bogus HTTP/1.1", b"HTTP/1.1", b"zz HTTP/"],
)
def test_http_request_line_hangs_up_without_a_reply(conn: Wire, line: bytes) -> None:
    """An unknown command ending in an ``HTTP/`` token closes the connection, and the replies
    to the commands before it in the same read are not sent either."""
    conn.send(b"version\r\n" + line + b"\r\nversion\r\n")
    assert conn.wait_closed() == b""


@pytest.mark.parametrize(
    "line, reply",
    [(b"x HTTP/1.1", b"ERROR\r\n"), (b"gx / HTTP/1.1", b"ERROR\r\n"), (b"ab HTTP/1.1", b"ERROR\r\n"),
     (b"bogus / HTTP/1.1 extra", b"ERROR\r\n"), (b"GET / http/1.1", b"ERROR\r\n"), (b"GET / HTTPS/1.1", b"ERROR\r\n"),
     (b"get / HTTP/1.0", b"END\r\n")],
    ids=["one-byte-command", "g-command", "a-command", "not-last-token", "lowercase", "https", "real-get"],
)
def test_lines_that_only_resemble_http_are_answered(conn: Wire, line: bytes, reply: bytes) -> None:
    """memcached hangs up only for commands it sends to its last branch: two bytes or more, not
    starting with one of its command letters, the last token starting with ``HTTP/``."""
    conn.call(line + b"\r\n", reply)
