"""``-C``: no CAS, byte for byte as memcached 1.6.18 -C.

Every item's CAS is 0 wherever it shows (``gets``, ``mg c``, ``me``, binary responses); a
``cas`` command (and ``ms`` with ``C``) never matches: ``EXISTS`` when the item is there,
``NOT_FOUND`` when not; the CAS of a binary store or of a meta append is dropped (the store
goes ahead); a binary DELETE or INCREMENT with a CAS does not match the item's 0.
"""

from __future__ import annotations

import struct

import pytest

from kvshard.protocol import binary as b

from .binwire import BinWire, Packet, arith_extras, req, store_extras
from .conftest import server_with
from .test_ascii_stats import read_stats
from .wire import Wire, storage

COUNTERS = ("cas_misses", "cas_hits", "cas_badval")

server = server_with("-C")


def cas_counters(conn: Wire) -> dict[str, int]:
    stats = read_stats(conn)
    return {name: int(stats[name]) for name in COUNTERS}


def test_settings_say_so(conn: Wire) -> None:
    assert read_stats(conn, b" settings")["cas_enabled"] == "no"


def test_gets_shows_zero_also_after_incr(conn: Wire) -> None:
    conn.call(storage(b"set", b"nocas:g", b"5") + b"gets nocas:g\r\n", b"STORED\r\nVALUE nocas:g 0 1 0\r\n5\r\nEND\r\n")
    conn.call(b"incr nocas:g 10\r\ngets nocas:g\r\n", b"15\r\nVALUE nocas:g 0 2 0\r\n15\r\nEND\r\n")
    conn.call(b"gats 0 nocas:g\r\n", b"VALUE nocas:g 0 2 0\r\n15\r\nEND\r\n")


@pytest.mark.parametrize("unique", [b"0", b"1", b"18446744073709551615"])
def test_cas_never_matches(conn: Wire, unique: bytes) -> None:
    key = b"nocas:c" + unique
    conn.call(storage(b"set", key, b"a"), b"STORED\r\n")
    before = cas_counters(conn)
    conn.call(b"cas " + key + b" 0 0 1 " + unique + b"\r\nb\r\n", b"EXISTS\r\n")
    conn.call(b"cas " + key + b"x 0 0 1 " + unique + b"\r\nb\r\n", b"NOT_FOUND\r\n")
    conn.call(b"get " + key + b"\r\n", b"VALUE " + key + b" 0 1\r\na\r\nEND\r\n")
    after = cas_counters(conn)
    assert after == {"cas_misses": before["cas_misses"] + 1, "cas_hits": before["cas_hits"],
                     "cas_badval": before["cas_badval"] + 1}


def test_meta_commands(conn: Wire) -> None:
    conn.call(b"ms nocas:m 1\r\nx\r\nmg nocas:m c v\r\n", b"HD\r\nVA 1 c0\r\nx\r\n")
    conn.call(b"ms nocas:m 1 C0\r\ny\r\nms nocas:m 1 C7\r\ny\r\n", b"EX\r\nEX\r\n")
    conn.call(b"ms nocas:m 1 C7 MA\r\ny\r\nmg nocas:m v\r\n", b"HD\r\nVA 2\r\nxy\r\n")
    conn.call(b"md nocas:m C7\r\nma nocas:n N0 J5\r\nma nocas:n c\r\n", b"EX\r\nHD\r\nHD c0\r\n")
    conn.send(b"me nocas:m\r\n")
    assert b" cas=0 " in conn.recv_line()


def test_binary_cas_is_zero_and_a_store_drops_its_cas(bw: BinWire) -> None:
    key = b"nocas:b"
    replies = bw.call(
        req(b.OP_SET, key=key, extras=store_extras(), value=b"1"),
        req(b.OP_GET, key=key),
        req(b.OP_SET, key=key, extras=store_extras(), value=b"2", cas=12345),
        req(b.OP_ADD, key=key + b"new", extras=store_extras(), value=b"3", cas=12345),
        req(b.OP_APPEND, key=key, value=b"0", cas=12345),
        req(b.OP_GET, key=key),
    )
    assert replies == [
        Packet(b.OP_SET, b.ST_OK, 0x01020304, 0),
        Packet(b.OP_GET, b.ST_OK, 0x01020304, 0, extras=struct.pack(">I", 0), value=b"1"),
        Packet(b.OP_SET, b.ST_OK, 0x01020304, 0),
        Packet(b.OP_ADD, b.ST_OK, 0x01020304, 0),
        Packet(b.OP_APPEND, b.ST_OK, 0x01020304, 0),
        Packet(b.OP_GET, b.ST_OK, 0x01020304, 0, extras=struct.pack(">I", 0), value=b"20"),
    ]


def test_binary_delete_and_incr_with_a_cas_do_not_match(bw: BinWire) -> None:
    key = b"nocas:d"
    replies = bw.call(
        req(b.OP_SET, key=key, extras=store_extras(), value=b"1"),
        req(b.OP_INCREMENT, key=key, extras=arith_extras(1), cas=1),
        req(b.OP_DELETE, key=key, cas=1),
        req(b.OP_INCREMENT, key=key, extras=arith_extras(1)),
        req(b.OP_DELETE, key=key),
    )
    assert [(p.opcode, p.status, p.cas) for p in replies] == [
        (b.OP_SET, b.ST_OK, 0), (b.OP_INCREMENT, b.ST_EXISTS, 0), (b.OP_DELETE, b.ST_EXISTS, 0),
        (b.OP_INCREMENT, b.ST_OK, 0), (b.OP_DELETE, b.ST_OK, 0),
    ]
