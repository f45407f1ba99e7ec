"""``stats detail on|off|dump`` and ``-D``: per-prefix counts, byte for byte as memcached 1.6.18.

The prefix counts are server-wide, so this module has its servers to itself and every test
starts from ``stats reset`` (which forgets them). The prefixes are chosen so that memcached's
prefix table (256 buckets by MurmurHash3) lists them in a known order: ``dv``, ``ic`` and ``pp``
share bucket 0 (listed newest first), ``b`` is in bucket 3, ``zz`` in 24, ``a`` in 178.
"""

from __future__ import annotations

import pytest

from kvshard.protocol import binary as b
from tests.servers import Server

from .binwire import BinWire, Packet, req, store_extras
from .conftest import server_with
from .test_ascii_stats import read_stats
from .wire import Wire, storage, value

USAGE = b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"


def prefix(name: bytes, get: int = 0, hit: int = 0, set_: int = 0, delete: int = 0) -> bytes:
    return b"PREFIX %b get %d hit %d set %d del %d\r\n" % (name, get, hit, set_, delete)


def fresh(conn: Wire) -> None:
    """No prefix counted yet, detail on."""
    conn.call(b"stats reset\r\n", b"RESET\r\n")
    conn.call(b"stats detail on\r\n", b"OK\r\n")


def dump(conn: Wire, expected: bytes) -> None:
    conn.call(b"stats detail dump\r\n", expected + b"END\r\n")


@pytest.mark.parametrize("line", [b"stats detail", b"stats detail foo", b"stats detail ON", b"stats detail dumps"])
def test_a_bad_subcommand_gets_the_usage(conn: Wire, line: bytes) -> None:
    conn.call(line + b"\r\n", USAGE)


def test_on_off_and_settings(conn: Wire) -> None:
    """Extra tokens after on/off are ignored; ``stats settings`` follows the switch."""
    conn.call(b"stats detail on please\r\n", b"OK\r\n")
    assert read_stats(conn, b" settings")["detail_enabled"] == "yes"
    conn.call(b"stats detail off\r\n", b"OK\r\n")
    settings = read_stats(conn, b" settings")
    assert (settings["detail_enabled"], settings["stat_key_prefix"]) == ("no", ":")


def test_gets_hits_sets_and_deletes_are_counted(conn: Wire) -> None:
    fresh(conn)
    conn.call(storage(b"set", b"a:1", b"1") + storage(b"set", b"a:2", b"2") + storage(b"add", b"a:1", b"x"),
              b"STORED\r\nSTORED\r\nNOT_STORED\r\n")
    conn.call(storage(b"append", b"b:1", b"x") + storage(b"prepend", b"a:2", b"0"), b"NOT_STORED\r\nSTORED\r\n")
    conn.call(storage(b"replace", b"b:1", b"x") + b"cas b:1 0 0 1 1\r\nx\r\n", b"NOT_STORED\r\nNOT_FOUND\r\n")
    conn.call(b"get a:1 a:2 b:1 a:3\r\n", value(b"a:1", b"1") + value(b"a:2", b"02") + b"END\r\n")
    conn.call(b"gets zz:1\r\n", b"END\r\n")
    conn.call(b"gat 0 a:1 zz:1\r\n", value(b"a:1", b"1") + b"END\r\n")
    conn.call(b"delete a:2\r\ndelete zz:9\r\n", b"DELETED\r\nNOT_FOUND\r\n")
    dump(conn, prefix(b"b", get=1, set_=3) + prefix(b"zz", get=2, delete=1) + prefix(b"a", get=4, hit=3, set_=4, delete=1))


def test_what_is_not_counted(conn: Wire) -> None:
    """incr/decr, touch, the meta commands and keys without the delimiter count nothing."""
    fresh(conn)
    conn.call(storage(b"set", b"nodelim", b"1") + b"get nodelim\r\ndelete nodelim\r\n",
              b"STORED\r\n" + value(b"nodelim", b"1") + b"END\r\nDELETED\r\n")
    conn.call(b"incr b:n 1\r\ndecr b:n 1\r\ntouch b:n 0\r\n", b"NOT_FOUND\r\nNOT_FOUND\r\nNOT_FOUND\r\n")
    conn.call(b"ms b:m 1\r\nx\r\nmg b:m v\r\nma b:m\r\nmd b:m\r\n", b"HD\r\nVA 1\r\nx\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nHD\r\n")
    dump(conn, b"")


def test_off_keeps_the_counts_and_reset_forgets_them(conn: Wire) -> None:
    fresh(conn)
    conn.call(storage(b"set", b"a:k", b"v"), b"STORED\r\n")
    conn.call(b"stats detail off\r\n", b"OK\r\n")
    conn.call(b"get a:k\r\n", value(b"a:k", b"v") + b"END\r\n")
    dump(conn, prefix(b"a", set_=1))
    conn.call(b"stats reset\r\n", b"RESET\r\n")
    dump(conn, b"")


def test_prefixes_come_in_memcached_table_order(conn: Wire) -> None:
    """By bucket of memcached's prefix table; in a bucket, the newest prefix first."""
    fresh(conn)
    for name in (b"dv", b"b", b"ic", b"a", b"pp"):
        conn.call(b"delete " + name + b":x\r\n", b"NOT_FOUND\r\n")
    dump(conn, b"".join(prefix(name, delete=1) for name in (b"pp", b"ic", b"dv", b"b", b"a")))


def test_an_empty_prefix_and_a_long_one(conn: Wire) -> None:
    fresh(conn)
    long_prefix = b"p" * 200
    conn.call(b"get :x " + long_prefix + b":y\r\n", b"END\r\n")
    dump(conn, prefix(b"", get=1) + prefix(long_prefix, get=1))


def test_a_store_too_large_still_counts(conn: Wire) -> None:
    fresh(conn)
    data = b"x" * (1024 * 1024 + 1)
    conn.call(storage(b"set", b"a:big", data), b"SERVER_ERROR object too large for cache\r\n")
    dump(conn, prefix(b"a", set_=1))


def test_binary_detail_and_binary_commands(bw: BinWire, conn: Wire) -> None:
    """Binary GET (hit or miss) and TOUCH count as gets, SET/APPEND as sets, DELETE as a
    delete; ``detail dump`` answers one stat, ``detailed``, holding the whole dump."""
    fresh(conn)
    assert [p.status for p in bw.call(req(b.OP_STAT, key=b"detail off"))] == [b.ST_OK]
    assert [p.status for p in bw.call(req(b.OP_STAT, key=b"detail on"))] == [b.ST_OK]
    assert [p.status for p in bw.call(req(b.OP_STAT, key=b"detail bogus"))] == [b.ST_NOT_FOUND]
    bw.call(
        req(b.OP_SET, key=b"a:1", extras=store_extras(), value=b"v"), req(b.OP_APPEND, key=b"zz:1", value=b"w"),
        req(b.OP_GET, key=b"a:1"), req(b.OP_GET, key=b"zz:1"), req(b.OP_DELETE, key=b"a:1"),
        req(b.OP_TOUCH, key=b"zz:1", extras=b"\0\0\0\0"),
    )
    replies = bw.call(req(b.OP_STAT, key=b"detail dump", opaque=7))
    dumped = prefix(b"zz", get=2, set_=1) + prefix(b"a", get=1, hit=1, set_=1, delete=1) + b"END\r\n"
    assert replies == [Packet(b.OP_STAT, b.ST_OK, 7, 0, key=b"detailed", value=dumped), Packet(b.OP_STAT, b.ST_OK, 7, 0)]


hash_delimited = server_with("-D", "#")


def test_minus_d_sets_the_delimiter_and_turns_detail_on(hash_delimited: Server) -> None:
    with Wire.connect(hash_delimited.address) as conn:
        settings = read_stats(conn, b" settings")
        assert (settings["detail_enabled"], settings["stat_key_prefix"]) == ("yes", "#")
        conn.call(storage(b"set", b"a:b#c", b"v") + b"get a:b#c x:y\r\n",
                  b"STORED\r\n" + value(b"a:b#c", b"v") + b"END\r\n")
        dump(conn, prefix(b"a:b", get=1, hit=1, set_=1))
