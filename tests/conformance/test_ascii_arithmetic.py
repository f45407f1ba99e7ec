"""incr and decr: 64-bit unsigned counters stored as decimal text."""

from __future__ import annotations

import pytest

from .conftest import Keys
from .wire import Wire, storage, value

MAX64 = 2**64 - 1


@pytest.mark.parametrize("command", [b"incr", b"decr"])
def test_missing_key_is_not_found(conn: Wire, keys: Keys, command: bytes) -> None:
    """incr/decr of a missing key is NOT_FOUND and creates nothing."""
    k = keys()
    conn.call(command + b" " + k + b" 1\r\n", b"NOT_FOUND\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


def test_incr_and_decr_return_the_new_value(conn: Wire, keys: Keys) -> None:
    """The reply is the new value in decimal; the stored value follows."""
    k = keys()
    conn.call(storage(b"set", k, b"5", flags=3), b"STORED\r\n")
    conn.call(b"incr " + k + b" 7\r\n", b"12\r\n")
    conn.call(b"decr " + k + b" 2\r\n", b"10\r\n")
    conn.call(b"incr " + k + b" 0\r\n", b"10\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"10", 3) + b"END\r\n")


def test_incr_wraps_at_2_to_the_64(conn: Wire, keys: Keys) -> None:
    """incr is modulo 2**64: 2**64-1 + 1 is 0, + 2**64-1 is one less."""
    k = keys()
    conn.call(storage(b"set", k, b"%d" % MAX64), b"STORED\r\n")
    conn.call(b"incr " + k + b" 1\r\n", b"0\r\n")
    conn.call(b"incr " + k + b" 5\r\n", b"5\r\n")
    conn.call(b"incr " + k + b" %d\r\n" % MAX64, b"4\r\n")


def test_incr_wrapped_value_keeps_its_length(conn: Wire, keys: Keys) -> None:
    """memcached quirk: the wrapped 0 is written in place over the 20-digit number, padded
    with spaces to the old length."""
    k = keys()
    conn.call(storage(b"set", k, b"%d" % MAX64), b"STORED\r\n")
    conn.call(b"incr " + k + b" 1\r\n", b"0\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"0" + b" " * 19) + b"END\r\n")


def test_decr_floors_at_zero(conn: Wire, keys: Keys) -> None:
    """decr never goes below 0."""
    k = keys()
    conn.call(storage(b"set", k, b"3"), b"STORED\r\n")
    conn.call(b"decr " + k + b" 10\r\n", b"0\r\n")
    conn.call(b"decr " + k + b" 1\r\n", b"0\r\n")
    conn.call(b"decr " + k + b" %d\r\n" % MAX64, b"0\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"0") + b"END\r\n")


def test_decr_shrinking_value_is_space_padded(conn: Wire, keys: Keys) -> None:
    """memcached quirk: a shorter result is written in place, padded with spaces to the old
    length (b"10" - 1 reads back as b"9 "); the flags stay."""
    k = keys()
    conn.call(storage(b"set", k, b"10", flags=8), b"STORED\r\n")
    conn.call(b"decr " + k + b" 1\r\n", b"9\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"9 ", 8) + b"END\r\n")
    conn.call(b"decr " + k + b" 9\r\n", b"0\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"0 ", 8) + b"END\r\n")


def test_padded_value_still_counts(conn: Wire, keys: Keys) -> None:
    """A space-padded value is still a number; incr back to two digits fills the padding."""
    k = keys()
    conn.call(storage(b"set", k, b"1000"), b"STORED\r\n")
    conn.call(b"decr " + k + b" 995\r\n", b"5\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"5   ") + b"END\r\n")
    conn.call(b"incr " + k + b" 5\r\n", b"10\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"10  ") + b"END\r\n")


def test_incr_growing_value_gets_longer(conn: Wire, keys: Keys) -> None:
    """A longer result makes the value longer (no truncation); the flags stay."""
    k = keys()
    conn.call(storage(b"set", k, b"99", flags=6), b"STORED\r\n")
    conn.call(b"incr " + k + b" 1\r\n", b"100\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"100", 6) + b"END\r\n")
    conn.call(b"incr " + k + b" %d\r\n" % (MAX64 - 100), b"%d\r\n" % MAX64)
    conn.call(b"get " + k + b"\r\n", value(k, b"%d" % MAX64, 6) + b"END\r\n")


def test_counter_made_by_append(conn: Wire, keys: Keys) -> None:
    """A number built by append/prepend counts like any other."""
    k = keys()
    conn.call(storage(b"set", k, b"2"), b"STORED\r\n")
    conn.call(storage(b"append", k, b"0"), b"STORED\r\n")
    conn.call(storage(b"prepend", k, b"1"), b"STORED\r\n")
    conn.call(b"incr " + k + b" 1\r\n", b"121\r\n")


@pytest.mark.parametrize(
    "data",
    [b"abc", b"12abc", b"", b"-5", b"1.5", b"18446744073709551616"],
    ids=["letters", "digits-then-letters", "empty", "negative", "decimal-point", "2^64"],
)
@pytest.mark.parametrize("command", [b"incr", b"decr"])
def test_non_numeric_value(conn: Wire, keys: Keys, command: bytes, data: bytes) -> None:
    """A value that is not a 64-bit unsigned decimal cannot be changed; it stays as it was."""
    k = keys()
    conn.call(storage(b"set", k, data), b"STORED\r\n")
    conn.call(command + b" " + k + b" 1\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, data) + b"END\r\n")


@pytest.mark.parametrize(
    "delta",
    [b"abc", b"-1", b"18446744073709551616", b"1x", b"0x1"],
    ids=["letters", "negative", "2^64", "suffix", "hex"],
)
@pytest.mark.parametrize("command", [b"incr", b"decr"])
def test_invalid_delta(conn: Wire, keys: Keys, command: bytes, delta: bytes) -> None:
    """A delta that is not a 64-bit unsigned decimal is refused (before the key is looked up)."""
    k, missing = keys(), keys()
    conn.call(storage(b"set", k, b"7"), b"STORED\r\n")
    conn.call(command + b" " + k + b" " + delta + b"\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n")
    conn.call(command + b" " + missing + b" " + delta + b"\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"7") + b"END\r\n")


@pytest.mark.parametrize("line", [b"incr", b"incr {k}", b"decr {k}", b"incr {k} 1 noreply extra"])
def test_wrong_number_of_tokens_is_error(conn: Wire, keys: Keys, line: bytes) -> None:
    """incr/decr without a delta, or with too many tokens, is a plain ERROR."""
    k = keys()
    conn.call(storage(b"set", k, b"1"), b"STORED\r\n")
    conn.call(line.replace(b"{k}", k) + b"\r\n", b"ERROR\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"1") + b"END\r\n")
