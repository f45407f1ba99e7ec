"""Storage commands: set, add, replace, append, prepend, cas, and delete."""

from __future__ import annotations

import pytest

from .conftest import Keys
from .wire import Wire, parse_values, storage, value

ALL_BYTES = bytes(range(256))


def gets_cas(conn: Wire, key: bytes) -> int:
    """The CAS unique of ``key`` (which must exist), via ``gets``."""
    (item,) = parse_values(conn.request(b"gets " + key + b"\r\n"))
    assert item.cas is not None
    return item.cas


def test_set_then_get(conn: Wire, keys: Keys) -> None:
    """``set`` answers STORED and ``get`` returns the value with its flags and length."""
    k = keys()
    conn.call(b"set " + k + b" 5 0 5\r\nhello\r\n", b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", b"VALUE " + k + b" 5 5\r\nhello\r\nEND\r\n")


def test_set_overwrites_value_and_flags(conn: Wire, keys: Keys) -> None:
    """A second ``set`` replaces data, flags and length."""
    k = keys()
    conn.call(storage(b"set", k, b"first value", flags=1), b"STORED\r\n")
    conn.call(storage(b"set", k, b"2nd", flags=2), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"2nd", 2) + b"END\r\n")


def test_add_only_stores_missing_keys(conn: Wire, keys: Keys) -> None:
    """``add`` stores a new key; on an existing key it answers NOT_STORED and changes nothing."""
    k = keys()
    conn.call(storage(b"add", k, b"one", flags=1), b"STORED\r\n")
    conn.call(storage(b"add", k, b"two", flags=2), b"NOT_STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"one", 1) + b"END\r\n")


def test_replace_only_stores_existing_keys(conn: Wire, keys: Keys) -> None:
    """``replace`` of a missing key is NOT_STORED and does not create it; of an existing one
    it replaces data and flags."""
    k = keys()
    conn.call(storage(b"replace", k, b"nope"), b"NOT_STORED\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")
    conn.call(storage(b"set", k, b"old", flags=3), b"STORED\r\n")
    conn.call(storage(b"replace", k, b"newer", flags=4), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"newer", 4) + b"END\r\n")


@pytest.mark.parametrize("command", [b"append", b"prepend"])
def test_append_prepend_missing_key_is_not_stored(conn: Wire, keys: Keys, command: bytes) -> None:
    """``append``/``prepend`` never create a key."""
    k = keys()
    conn.call(storage(command, k, b"data"), b"NOT_STORED\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


def test_append_and_prepend_keep_flags(conn: Wire, keys: Keys) -> None:
    """``append``/``prepend`` add bytes at the ends; the flags they carry are ignored."""
    k = keys()
    conn.call(storage(b"set", k, b"ab", flags=5), b"STORED\r\n")
    conn.call(storage(b"append", k, b"cd", flags=9), b"STORED\r\n")
    conn.call(storage(b"prepend", k, b"zz", flags=7), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"zzabcd", 5) + b"END\r\n")


def test_append_binary_and_empty_pieces(conn: Wire, keys: Keys) -> None:
    """Appending an empty block changes nothing; binary pieces are joined byte for byte."""
    k = keys()
    conn.call(storage(b"set", k, b""), b"STORED\r\n")
    conn.call(storage(b"append", k, b""), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"") + b"END\r\n")
    conn.call(storage(b"append", k, b"\r\n"), b"STORED\r\n")
    conn.call(storage(b"prepend", k, b"\x00END"), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"\x00END\r\n") + b"END\r\n")


def test_cas_stores_only_with_the_current_unique(conn: Wire, keys: Keys) -> None:
    """``cas`` with the unique from ``gets`` is STORED; reusing that unique afterwards is
    EXISTS and leaves the value alone."""
    k = keys()
    conn.call(storage(b"set", k, b"a"), b"STORED\r\n")
    unique = gets_cas(conn, k)
    conn.call(storage(b"cas", k, b"b", flags=1, cas=unique), b"STORED\r\n")
    conn.call(storage(b"cas", k, b"c", flags=2, cas=unique), b"EXISTS\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"b", 1) + b"END\r\n")
    conn.call(storage(b"cas", k, b"d", cas=gets_cas(conn, k)), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"d") + b"END\r\n")


def test_cas_missing_key_is_not_found(conn: Wire, keys: Keys) -> None:
    """``cas`` on a key that does not exist (never did, or was deleted) is NOT_FOUND."""
    k = keys()
    conn.call(storage(b"cas", k, b"x", cas=1), b"NOT_FOUND\r\n")
    conn.call(storage(b"set", k, b"x"), b"STORED\r\n")
    unique = gets_cas(conn, k)
    conn.call(b"delete " + k + b"\r\n", b"DELETED\r\n")
    conn.call(storage(b"cas", k, b"y", cas=unique), b"NOT_FOUND\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


def test_cas_with_stale_unique_after_other_update(conn: Wire, keys: Keys) -> None:
    """Any update in between (here an ``append``) makes an old unique fail with EXISTS."""
    k = keys()
    conn.call(storage(b"set", k, b"1"), b"STORED\r\n")
    unique = gets_cas(conn, k)
    conn.call(storage(b"append", k, b"2"), b"STORED\r\n")
    conn.call(storage(b"cas", k, b"3", cas=unique), b"EXISTS\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"12") + b"END\r\n")


@pytest.mark.parametrize("flags", [0, 1, 255, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1])
def test_flags_round_trip(conn: Wire, keys: Keys, flags: int) -> None:
    """Flags are an opaque 32-bit number, returned as stored."""
    k = keys()
    conn.call(storage(b"set", k, b"v", flags=flags), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", b"VALUE %s %d 1\r\nv\r\nEND\r\n" % (k, flags))


@pytest.mark.parametrize(
    ("flags", "stored"), [(2**32, 0), (2**32 + 7, 7), (2**64 - 1, 2**32 - 1)], ids=["2^32", "2^32+7", "2^64-1"]
)
def test_flags_wider_than_32_bits_are_truncated(conn: Wire, keys: Keys, flags: int, stored: int) -> None:
    """memcached quirk: flags that fit in 64 bits are accepted and cut to their low 32 bits."""
    k = keys()
    conn.call(storage(b"set", k, b"v", flags=flags), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", b"VALUE %s %d 1\r\nv\r\nEND\r\n" % (k, stored))


def test_flags_beyond_64_bits_are_rejected(conn: Wire, keys: Keys) -> None:
    """Flags of 2**64 are a bad command line; the data line is then read as a command."""
    k = keys()
    conn.call(storage(b"set", k, b"v", flags=2**64), b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


def test_zero_length_value(conn: Wire, keys: Keys) -> None:
    """A zero-byte value is stored and returned as an empty data block."""
    k = keys()
    conn.call(b"set " + k + b" 3 0 0\r\n\r\n", b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", b"VALUE " + k + b" 3 0\r\n\r\nEND\r\n")


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n",
        b"line1\r\nline2\r\n",
        b"\r\nEND\r\n",
        b"x\r\nVALUE fake 0 1\r\ny\r\nEND\r\n",
        b"\nset a 0 0 1\r\n",
        b"\x00\x01\xff\xfe",
        ALL_BYTES * 4,
    ],
    ids=["crlf", "lines", "end-marker", "fake-value", "command-inside", "nul-and-high", "all-bytes"],
)
def test_binary_values_round_trip(conn: Wire, keys: Keys, data: bytes) -> None:
    """The data block is exactly <bytes> long whatever it contains, CRLF and NUL included."""
    k = keys()
    conn.call(storage(b"set", k, data, flags=42), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, data, 42) + b"END\r\n")


def test_large_value_below_item_limit(conn: Wire, keys: Keys) -> None:
    """A 500 000-byte value (well under the 1 MB item limit) round-trips."""
    k = keys()
    data = (ALL_BYTES * 1954)[:500_000]
    conn.call(storage(b"set", k, data), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, data) + b"END\r\n")


def test_key_of_250_bytes_works(conn: Wire, keys: Keys) -> None:
    """250 bytes is the longest key."""
    k = keys.sized(250)
    conn.call(storage(b"set", k, b"long"), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"long") + b"END\r\n")
    conn.call(b"delete " + k + b"\r\n", b"DELETED\r\n")


def test_unknown_token_in_noreply_position_is_ignored(conn: Wire, keys: Keys) -> None:
    """memcached quirk: a sixth token other than ``noreply`` is ignored and the reply is sent."""
    k = keys()
    conn.call(b"set " + k + b" 0 0 1 garbage\r\nx\r\n", b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"x") + b"END\r\n")


def test_extra_spaces_between_tokens(conn: Wire, keys: Keys) -> None:
    """Runs of spaces separate tokens like one space; trailing spaces are ignored."""
    k = keys()
    conn.call(b"set  " + k + b"  7  0  2 \r\nhi\r\n", b"STORED\r\n")
    conn.call(b"get  " + k + b" \r\n", value(k, b"hi", 7) + b"END\r\n")


def test_command_line_may_end_with_bare_newline(conn: Wire, keys: Keys) -> None:
    """Command lines may end with ``\\n`` alone (the data block still needs ``\\r\\n``)."""
    k = keys()
    conn.call(b"set " + k + b" 0 0 2\nhi\r\n", b"STORED\r\n")
    conn.call(b"get " + k + b"\n", value(k, b"hi") + b"END\r\n")


def test_delete(conn: Wire, keys: Keys) -> None:
    """``delete`` answers DELETED once, then NOT_FOUND; the key is gone."""
    k = keys()
    conn.call(storage(b"set", k, b"x"), b"STORED\r\n")
    conn.call(b"delete " + k + b"\r\n", b"DELETED\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")
    conn.call(b"delete " + k + b"\r\n", b"NOT_FOUND\r\n")


def test_delete_with_zero_time(conn: Wire, keys: Keys) -> None:
    """The legacy ``delete <key> 0`` form is accepted."""
    k = keys()
    conn.call(storage(b"set", k, b"x"), b"STORED\r\n")
    conn.call(b"delete " + k + b" 0\r\n", b"DELETED\r\n")
    conn.call(b"delete " + k + b" 0\r\n", b"NOT_FOUND\r\n")


@pytest.mark.parametrize("args", [b" 5", b" 0 0", b" abc"])
def test_delete_with_a_time_is_refused(conn: Wire, keys: Keys, args: bytes) -> None:
    """A delete time other than 0 (or two extra tokens) gets the usage error; the key stays."""
    k = keys()
    conn.call(storage(b"set", k, b"x"), b"STORED\r\n")
    conn.call(
        b"delete " + k + args + b"\r\n",
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
    )
    conn.call(b"get " + k + b"\r\n", value(k, b"x") + b"END\r\n")


def test_delete_usage_error_is_silenced_by_noreply(conn: Wire, keys: Keys) -> None:
    """``delete <key> 5 noreply`` sends nothing back and deletes nothing."""
    k = keys()
    conn.call(storage(b"set", k, b"x"), b"STORED\r\n")
    conn.call(b"delete " + k + b" 5 noreply\r\n", b"")
    conn.call(b"get " + k + b"\r\n", value(k, b"x") + b"END\r\n")


def test_delete_then_add_creates_again(conn: Wire, keys: Keys) -> None:
    """After ``delete`` the key is really gone: ``add`` succeeds."""
    k = keys()
    conn.call(storage(b"set", k, b"x"), b"STORED\r\n")
    conn.call(b"delete " + k + b"\r\n", b"DELETED\r\n")
    conn.call(storage(b"add", k, b"y"), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"y") + b"END\r\n")
