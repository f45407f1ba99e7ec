"""Retrieval commands: get, gets (CAS uniques), gat, gats, and touch."""

from __future__ import annotations

import re
from typing import Callable

import pytest

from .conftest import Keys
from .wire import Wire, parse_values, storage, value


def cas_of(conn: Wire, key: bytes) -> int:
    """CAS unique of an existing key, checked to be a plain decimal number."""
    reply = conn.request(b"gets " + key + b"\r\n")
    m = re.fullmatch(rb"VALUE (\S+) (\d+) (\d+) ([0-9]+)\r\n.*\r\nEND\r\n", reply, re.DOTALL)
    assert m is not None and m.group(1) == key, reply
    return int(m.group(4))


def test_get_miss_is_just_end(conn: Wire, keys: Keys) -> None:
    """A miss sends no VALUE block, only END."""
    conn.call(b"get " + keys() + b"\r\n", b"END\r\n")


def test_multi_get_keeps_order_and_skips_misses(conn: Wire, keys: Keys) -> None:
    """Hits come back in request order, misses are left out, one END closes the reply."""
    a, b, c, d, e = (keys() for _ in range(5))
    conn.call(
        storage(b"set", a, b"A", flags=1) + storage(b"set", c, b"CC", flags=3) + storage(b"set", e, b""),
        b"STORED\r\n" * 3,
    )
    conn.call(
        b"get " + b" ".join([e, b, c, d, a]) + b"\r\n",
        value(e, b"") + value(c, b"CC", 3) + value(a, b"A", 1) + b"END\r\n",
    )


def test_multi_get_all_misses(conn: Wire, keys: Keys) -> None:
    """Many misses still give a single END."""
    conn.call(b"get " + b" ".join(keys() for _ in range(20)) + b"\r\n", b"END\r\n")


def test_repeated_key_is_returned_each_time(conn: Wire, keys: Keys) -> None:
    """A key named twice in one get is returned twice."""
    k, miss = keys(), keys()
    conn.call(storage(b"set", k, b"d"), b"STORED\r\n")
    conn.call(b"get " + b" ".join([k, miss, k]) + b"\r\n", value(k, b"d") * 2 + b"END\r\n")


def test_gets_reports_a_decimal_cas_unique(conn: Wire, keys: Keys) -> None:
    """``gets`` adds a decimal CAS unique to each VALUE line; it is stable while the item is
    not modified, and the same for a key repeated in one request."""
    k, miss = keys(), keys()
    conn.call(storage(b"set", k, b"data", flags=9), b"STORED\r\n")
    reply = conn.request(b"gets " + b" ".join([k, miss, k]) + b"\r\n")
    items = parse_values(reply)
    assert [(i.key, i.flags, i.data) for i in items] == [(k, 9, b"data")] * 2
    assert items[0].cas is not None and items[0].cas == items[1].cas
    first_line = reply[: reply.index(b"\r\n")]
    assert re.fullmatch(rb"VALUE " + re.escape(k) + rb" 9 4 (0|[1-9][0-9]*)", first_line), first_line
    assert cas_of(conn, k) == items[0].cas


def test_gets_miss_is_just_end(conn: Wire, keys: Keys) -> None:
    """``gets`` of missing keys is END alone."""
    conn.call(b"gets " + keys() + b" " + keys() + b"\r\n", b"END\r\n")


@pytest.mark.parametrize(
    ("update", "reply"),
    [
        (lambda k: storage(b"set", k, b"12"), b"STORED\r\n"),
        (lambda k: storage(b"replace", k, b"13"), b"STORED\r\n"),
        (lambda k: storage(b"append", k, b"4"), b"STORED\r\n"),
        (lambda k: storage(b"prepend", k, b"5"), b"STORED\r\n"),
        (lambda k: b"incr " + k + b" 1\r\n", b"12\r\n"),
        (lambda k: b"decr " + k + b" 1\r\n", b"10\r\n"),
    ],
    ids=["set", "replace", "append", "prepend", "incr", "decr"],
)
def test_cas_unique_changes_on_every_update(
    conn: Wire, keys: Keys, update: Callable[[bytes], bytes], reply: bytes
) -> None:
    """Each kind of update gives the item a new CAS unique; the old one then fails, the new
    one is accepted by ``cas``."""
    k = keys()
    conn.call(storage(b"set", k, b"11"), b"STORED\r\n")
    before = cas_of(conn, k)
    conn.call(update(k), reply)
    after = cas_of(conn, k)
    assert after != before
    conn.call(storage(b"cas", k, b"old", cas=before), b"EXISTS\r\n")
    conn.call(storage(b"cas", k, b"new", cas=after), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"new") + b"END\r\n")


def test_touch_and_gat_keep_the_cas_unique(conn: Wire, keys: Keys) -> None:
    """Changing only the expiry (touch, gat, gats) leaves the CAS unique alone."""
    k = keys()
    conn.call(storage(b"set", k, b"v"), b"STORED\r\n")
    before = cas_of(conn, k)
    conn.call(b"touch " + k + b" 1000\r\n", b"TOUCHED\r\n")
    conn.call(b"gat 2000 " + k + b"\r\n", value(k, b"v") + b"END\r\n")
    assert cas_of(conn, k) == before
    conn.call(storage(b"cas", k, b"w", cas=before), b"STORED\r\n")


def test_touch(conn: Wire, keys: Keys) -> None:
    """``touch`` answers TOUCHED for an existing key and NOT_FOUND otherwise; data unchanged."""
    k = keys()
    conn.call(b"touch " + k + b" 100\r\n", b"NOT_FOUND\r\n")
    conn.call(storage(b"set", k, b"v", flags=2), b"STORED\r\n")
    conn.call(b"touch " + k + b" 100\r\n", b"TOUCHED\r\n")
    conn.call(b"touch " + k + b" 0\r\n", b"TOUCHED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"v", 2) + b"END\r\n")


def test_gat_returns_values_like_get(conn: Wire, keys: Keys) -> None:
    """``gat <exptime> <key>*`` answers like ``get``: hits in order, misses skipped, END."""
    a, miss, b = keys(), keys(), keys()
    conn.call(storage(b"set", a, b"A", flags=1) + storage(b"set", b, b"BB"), b"STORED\r\n" * 2)
    conn.call(b"gat 100 " + b" ".join([b, miss, a]) + b"\r\n", value(b, b"BB") + value(a, b"A", 1) + b"END\r\n")
    conn.call(b"gat 100 " + miss + b"\r\n", b"END\r\n")


def test_gats_returns_cas_uniques(conn: Wire, keys: Keys) -> None:
    """``gats`` answers like ``gets`` and its unique is accepted by ``cas``."""
    k = keys()
    conn.call(storage(b"set", k, b"v", flags=4), b"STORED\r\n")
    (item,) = parse_values(conn.request(b"gats 100 " + k + b"\r\n"))
    assert (item.key, item.flags, item.data) == (k, 4, b"v") and item.cas is not None
    conn.call(storage(b"cas", k, b"w", cas=item.cas), b"STORED\r\n")


def test_gat_without_keys_is_just_end(conn: Wire) -> None:
    """memcached quirk: ``gat <exptime>`` with no key answers END (``gat`` alone is ERROR)."""
    conn.call(b"gat 100\r\n", b"END\r\n")
    conn.call(b"gat\r\n", b"ERROR\r\n")


@pytest.mark.parametrize("command", [b"get", b"gets"])
def test_long_multi_get_line(conn: Wire, keys: Keys, command: bytes) -> None:
    """A get line far over 2048 bytes (here ~25 kB, 600 keys) is served in full."""
    names = [keys() for _ in range(600)]
    hits = {3: b"three", 299: b"", 599: b"last"}
    conn.call(b"".join(storage(b"set", names[i], d) for i, d in hits.items()), b"STORED\r\n" * len(hits))
    line = command + b" " + b" ".join(names) + b"\r\n"
    assert len(line) > 20000
    items = parse_values(conn.request(line))
    assert [(i.key, i.data) for i in items] == [(names[i], d) for i, d in hits.items()]
    assert all((i.cas is not None) == (command == b"gets") for i in items)


def test_long_multi_get_line_arriving_in_pieces(conn: Wire, keys: Keys) -> None:
    """A >2048-byte get line whose first 3000 bytes arrive before its newline still works."""
    names = [keys() for _ in range(100)]
    conn.call(storage(b"set", names[0], b"first") + storage(b"set", names[-1], b"end"), b"STORED\r\n" * 2)
    line = b"get " + b" ".join(names) + b"\r\n"
    conn.send(line[:3000])
    conn.call(line[3000:], value(names[0], b"first") + value(names[-1], b"end") + b"END\r\n")
