"""Expiry times and flush_all.

This module has its own server (the ``server`` fixture is module scoped), so ``flush_all`` here
cannot wipe other modules' keys. Times are whole seconds and memcached's clock ticks once a
second, so waits are a little over the whole number of seconds that must pass.
"""

from __future__ import annotations

import time
from typing import Callable

import pytest

from .conftest import Keys
from .wire import Wire, storage, value

THIRTY_DAYS = 60 * 60 * 24 * 30


def test_negative_exptime_is_already_expired(conn: Wire, keys: Keys) -> None:
    """A negative exptime stores (STORED) an item that is immediately invisible."""
    k = keys()
    conn.call(storage(b"set", k, b"v", exptime=-1), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")
    conn.call(storage(b"replace", k, b"r"), b"NOT_STORED\r\n")
    conn.call(storage(b"add", k, b"a"), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"a") + b"END\r\n")


def test_absolute_exptime_in_the_past(conn: Wire, keys: Keys) -> None:
    """An exptime over 30 days is a unix time; one in the past means already expired."""
    k = keys()
    conn.call(storage(b"set", k, b"v", exptime=int(time.time()) - 100), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")
    conn.call(b"incr " + k + b" 1\r\n", b"NOT_FOUND\r\n")


def test_absolute_exptime_in_the_future(conn: Wire, keys: Keys) -> None:
    """A unix time an hour ahead keeps the item."""
    k = keys()
    conn.call(storage(b"set", k, b"v", exptime=int(time.time()) + 3600), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"v") + b"END\r\n")


def test_thirty_day_boundary(conn: Wire, keys: Keys) -> None:
    """Exactly 30 days (2592000) is still relative; one second more is a unix time in January
    1970, long past."""
    relative, absolute = keys(), keys()
    conn.call(storage(b"set", relative, b"r", exptime=THIRTY_DAYS), b"STORED\r\n")
    conn.call(storage(b"set", absolute, b"a", exptime=THIRTY_DAYS + 1), b"STORED\r\n")
    conn.call(b"get " + relative + b" " + absolute + b"\r\n", value(relative, b"r") + b"END\r\n")


def test_touch_and_gat_with_negative_exptime_expire(conn: Wire, keys: Keys) -> None:
    """``touch k -1`` expires the item; ``gat -1 k`` returns it one last time, then it is gone."""
    t, g = keys(), keys()
    conn.call(storage(b"set", t, b"1") + storage(b"set", g, b"2"), b"STORED\r\n" * 2)
    conn.call(b"touch " + t + b" -1\r\n", b"TOUCHED\r\n")
    conn.call(b"get " + t + b"\r\n", b"END\r\n")
    conn.call(b"gat -1 " + g + b"\r\n", value(g, b"2") + b"END\r\n")
    conn.call(b"get " + g + b"\r\n", b"END\r\n")
    conn.call(b"touch " + t + b" 100\r\n", b"NOT_FOUND\r\n")


def test_relative_expiry(conn: Wire, keys: Keys) -> None:
    """Relative exptimes count from the store (or the last touch/gat): after 2 s, items set to
    live 2 s are gone, items touched to 100 s live on, items touched down to 2 s are gone."""
    plain, touched_up, touched_down, gat_up, gat_down, forever = (keys() for _ in range(6))
    conn.call(
        storage(b"set", plain, b"p", exptime=2)
        + storage(b"set", touched_up, b"tu", exptime=2)
        + storage(b"set", touched_down, b"td", exptime=100)
        + storage(b"set", gat_up, b"gu", exptime=2)
        + storage(b"set", gat_down, b"gd", exptime=100)
        + storage(b"set", forever, b"f", exptime=0),
        b"STORED\r\n" * 6,
    )
    conn.call(b"touch " + touched_up + b" 100\r\ntouch " + touched_down + b" 2\r\n", b"TOUCHED\r\n" * 2)
    conn.call(b"gat 100 " + gat_up + b"\r\n", value(gat_up, b"gu") + b"END\r\n")
    assert conn.request(b"gats 2 " + gat_down + b"\r\n").startswith(b"VALUE " + gat_down + b" 0 2 ")
    everything = b"get " + b" ".join([plain, touched_up, touched_down, gat_up, gat_down, forever]) + b"\r\n"
    conn.call(
        everything,
        value(plain, b"p")
        + value(touched_up, b"tu")
        + value(touched_down, b"td")
        + value(gat_up, b"gu")
        + value(gat_down, b"gd")
        + value(forever, b"f")
        + b"END\r\n",
    )
    time.sleep(2.1)
    conn.call(everything, value(touched_up, b"tu") + value(gat_up, b"gu") + value(forever, b"f") + b"END\r\n")
    conn.call(b"incr " + plain + b" 1\r\n", b"NOT_FOUND\r\n")
    conn.call(storage(b"add", plain, b"again"), b"STORED\r\n")


# -- flush_all --------------------------------------------------------------------------------


@pytest.mark.parametrize("line", [b"flush_all", b"flush_all 0"])
def test_flush_all_immediate(conn: Wire, keys: Keys, line: bytes) -> None:
    """``flush_all`` (or with delay 0) answers OK and invalidates every item at once; items
    stored right after it (same second) are kept."""
    a, b = keys(), keys()
    conn.call(storage(b"set", a, b"1") + storage(b"set", b, b"2"), b"STORED\r\n" * 2)
    conn.call(line + b"\r\n", b"OK\r\n")
    conn.call(b"get " + a + b" " + b + b"\r\n", b"END\r\n")
    conn.call(storage(b"add", a, b"new"), b"STORED\r\n")
    conn.call(b"get " + a + b" " + b + b"\r\n", value(a, b"new") + b"END\r\n")


def test_flush_all_from_another_connection(conn: Wire, keys: Keys, connect: Callable[[], Wire]) -> None:
    """A flush on one connection is seen by all."""
    k = keys()
    conn.call(storage(b"set", k, b"v"), b"STORED\r\n")
    connect().call(b"flush_all\r\n", b"OK\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


@pytest.mark.parametrize("line", [b"flush_all noreply", b"flush_all 0 noreply"])
def test_flush_all_noreply(conn: Wire, keys: Keys, line: bytes) -> None:
    """``flush_all noreply`` flushes and sends nothing."""
    k = keys()
    conn.call(storage(b"set", k, b"v"), b"STORED\r\n")
    conn.call(line + b"\r\n", b"")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"flush_all abc", b"CLIENT_ERROR invalid exptime argument\r\n"),
        (b"flush_all 1x", b"CLIENT_ERROR invalid exptime argument\r\n"),
        (b"flush_all abc noreply", b""),
        (b"flush_all 0 0 0", b"ERROR\r\n"),
    ],
    ids=["letters", "suffix", "letters-noreply", "too-many"],
)
def test_flush_all_bad_argument_flushes_nothing(conn: Wire, keys: Keys, line: bytes, reply: bytes) -> None:
    """A malformed delay is refused (silently with noreply) and nothing is flushed."""
    k = keys()
    conn.call(storage(b"set", k, b"v"), b"STORED\r\n")
    conn.call(line + b"\r\n", reply)
    conn.call(b"get " + k + b"\r\n", value(k, b"v") + b"END\r\n")


def test_flush_all_with_delay(conn: Wire, keys: Keys) -> None:
    """``flush_all 3`` answers OK at once, leaves items readable until the delay has passed,
    then invalidates every item stored before the deadline (also those stored after the
    command). Items stored after the deadline are kept.

    (3 s, not 2: memcached's one-second clock makes a delay of N take effect after N-1 to N
    seconds, so a 2 s delay could already have struck right after the command.)"""
    before, after, later = keys(), keys(), keys()
    conn.call(storage(b"set", before, b"b"), b"STORED\r\n")
    conn.call(b"flush_all 3\r\n", b"OK\r\n")
    conn.call(storage(b"set", after, b"a"), b"STORED\r\n")
    conn.call(b"get " + before + b" " + after + b"\r\n", value(before, b"b") + value(after, b"a") + b"END\r\n")
    time.sleep(3.1)
    conn.call(b"get " + before + b" " + after + b"\r\n", b"END\r\n")
    conn.call(storage(b"set", later, b"l"), b"STORED\r\n")
    conn.call(b"get " + later + b"\r\n", value(later, b"l") + b"END\r\n")


def test_flush_all_counts_once_however_many_shards_run_it(conn: Wire) -> None:
    """``cmd_flush`` counts commands: kvshard used to count one per shard."""
    from .test_ascii_stats import read_stats

    before = int(read_stats(conn)["cmd_flush"])
    conn.call(b"flush_all\r\n", b"OK\r\n")
    conn.call(b"flush_all noreply\r\n", b"")
    assert int(read_stats(conn)["cmd_flush"]) == before + 2
