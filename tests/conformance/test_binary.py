"""The binary protocol, every opcode, against kvshard and (where installed) memcached.

Expected packets are written out in full (opcode, status, opaque, extras, key, value); CAS
values are checked by their relations, since the two servers number items differently.
"""

from __future__ import annotations

import struct

import pytest

from kvshard.protocol import binary as b
from tests.servers import Server

from .binwire import BinWire, Packet, arith_extras, req, store_extras
from .conftest import Keys

OPQ = 0x01020304
NOT_FOUND = b"Not found"
EXISTS = b"Data exists for key."


def ok(op: int, cas: int = 0, extras: bytes = b"", key: bytes = b"", value: bytes = b"") -> Packet:
    return Packet(op, b.ST_OK, OPQ, cas, extras, key, value)


def err(op: int, status: int, message: bytes) -> Packet:
    return Packet(op, status, OPQ, 0, value=message)


def assert_packets(got: list[Packet], expected: list[Packet]) -> None:
    assert len(got) == len(expected), got
    for g, e in zip(got, expected):
        assert g.same(e), (g, e)


def set_(bw: BinWire, key: bytes, value: bytes, flags: int = 0, exptime: int = 0) -> int:
    packet = bw.one(req(b.OP_SET, key, store_extras(flags, exptime), value))
    assert packet.status == b.ST_OK and packet.cas
    return packet.cas


FLAGS = struct.pack(">I", 0xDEADBEEF)


# ----- retrieval -----------------------------------------------------------------------------

def test_get_family_hit(bw: BinWire, keys: Keys) -> None:
    k = keys()
    cas = set_(bw, k, b"hello", 0xDEADBEEF)
    got = bw.call(
        req(b.OP_GET, k), req(b.OP_GETQ, k), req(b.OP_GETK, k), req(b.OP_GETKQ, k),
    )
    assert_packets(got, [
        ok(b.OP_GET, 1, FLAGS, value=b"hello"), ok(b.OP_GETQ, 1, FLAGS, value=b"hello"),
        ok(b.OP_GETK, 1, FLAGS, k, b"hello"), ok(b.OP_GETKQ, 1, FLAGS, k, b"hello"),
    ])
    assert all(p.cas == cas for p in got)


def test_get_family_miss(bw: BinWire, keys: Keys) -> None:
    """GET says "Not found"; GETK echoes the key instead; the quiet ones say nothing."""
    k = keys()
    got = bw.call(req(b.OP_GET, k), req(b.OP_GETQ, k), req(b.OP_GETK, k), req(b.OP_GETKQ, k))
    assert_packets(got, [
        err(b.OP_GET, b.ST_NOT_FOUND, NOT_FOUND), Packet(b.OP_GETK, b.ST_NOT_FOUND, OPQ, 0, key=k),
    ])


def test_quiet_multi_get_across_shards_keeps_order(bw: BinWire, keys: Keys) -> None:
    ks = [keys() for _ in range(20)]
    for i, k in enumerate(ks):
        if i % 3:
            set_(bw, k, b"v%d" % i)
    got = bw.call(*(req(b.OP_GETKQ, k, opaque=i) for i, k in enumerate(ks)))
    assert [(p.opaque, p.key, p.value) for p in got] == [
        (i, k, b"v%d" % i) for i, k in enumerate(ks) if i % 3
    ]


# ----- storage --------------------------------------------------------------------------------

def test_set_returns_a_fresh_cas_and_flags_and_expiry_are_kept(bw: BinWire, keys: Keys) -> None:
    k = keys()
    first = set_(bw, k, b"a", 0xFFFFFFFF, 100)
    second = set_(bw, k, b"b", 0xFFFFFFFF, 100)
    assert second != first
    assert_packets([bw.one(req(b.OP_GETK, k))], [ok(b.OP_GETK, 1, b"\xff" * 4, k, b"b")])


def test_add_replace(bw: BinWire, keys: Keys) -> None:
    k, missing = keys(), keys()
    set_(bw, k, b"x")
    got = bw.call(
        req(b.OP_ADD, k, store_extras(), b"y"), req(b.OP_REPLACE, missing, store_extras(), b"y"),
        req(b.OP_ADD, missing, store_extras(), b"new"), req(b.OP_REPLACE, k, store_extras(), b"z"),
        req(b.OP_ADDQ, k, store_extras(), b"q"), req(b.OP_REPLACEQ, k, store_extras(), b"zq"),
    )
    assert_packets(got, [
        err(b.OP_ADD, b.ST_EXISTS, EXISTS), err(b.OP_REPLACE, b.ST_NOT_FOUND, NOT_FOUND),
        ok(b.OP_ADD, 1), ok(b.OP_REPLACE, 1), err(b.OP_ADDQ, b.ST_EXISTS, EXISTS),
    ])
    assert bw.one(req(b.OP_GET, k)).value == b"zq"


def test_cas_on_storage_commands(bw: BinWire, keys: Keys) -> None:
    """A CAS in the header: missing key -> not found, other CAS -> exists, same CAS -> the
    command runs (even an add)."""
    k, missing = keys(), keys()
    cas = set_(bw, k, b"v")
    got = bw.call(
        req(b.OP_SET, missing, store_extras(), b"x", cas=cas),
        req(b.OP_SET, k, store_extras(), b"x", cas=cas + 1000),
        req(b.OP_REPLACE, k, store_extras(), b"x", cas=cas + 1000),
        req(b.OP_APPEND, k, b"", b"x", cas=cas + 1000),
        req(b.OP_ADD, missing, store_extras(), b"x", cas=cas),
    )
    assert_packets(got, [
        err(b.OP_SET, b.ST_NOT_FOUND, NOT_FOUND), err(b.OP_SET, b.ST_EXISTS, EXISTS),
        err(b.OP_REPLACE, b.ST_EXISTS, EXISTS), err(b.OP_APPEND, b.ST_EXISTS, EXISTS),
        err(b.OP_ADD, b.ST_NOT_FOUND, NOT_FOUND),
    ])
    added = bw.one(req(b.OP_ADD, k, store_extras(), b"by-add", cas=cas))
    assert added.status == b.ST_OK and added.cas not in (0, cas)
    appended = bw.one(req(b.OP_APPEND, k, b"", b"+", cas=added.cas))
    assert appended.status == b.ST_OK
    assert bw.one(req(b.OP_GET, k)).value == b"by-add+"


def test_append_prepend(bw: BinWire, keys: Keys) -> None:
    k, missing = keys(), keys()
    set_(bw, k, b"mid", 7)
    got = bw.call(
        req(b.OP_APPEND, k, b"", b">"), req(b.OP_PREPEND, k, b"", b"<"),
        req(b.OP_APPENDQ, k, b"", b"]"), req(b.OP_PREPENDQ, k, b"", b"["),
        req(b.OP_APPEND, missing, b"", b"x"), req(b.OP_PREPENDQ, missing, b"", b"x"),
        req(b.OP_GET, k),
    )
    assert_packets(got, [
        ok(b.OP_APPEND, 1), ok(b.OP_PREPEND, 1),
        err(b.OP_APPEND, b.ST_NOT_STORED, b"Not stored."),
        err(b.OP_PREPENDQ, b.ST_NOT_STORED, b"Not stored."),
        ok(b.OP_GET, 1, struct.pack(">I", 7), value=b"[<mid>]"),
    ])


def test_quiet_set_says_nothing_on_success(bw: BinWire, keys: Keys) -> None:
    k = keys()
    assert bw.call(req(b.OP_SETQ, k, store_extras(1), b"q")) == []
    assert bw.one(req(b.OP_GET, k)).value == b"q"


def test_too_large_value_is_refused_and_swallowed(bw: BinWire, keys: Keys) -> None:
    """"Too large." even for SETQ; the connection goes on; a refused set drops the old item."""
    k = keys()
    set_(bw, k, b"old")
    big = b"x" * (1024 * 1024 + 10)
    got = bw.call(req(b.OP_SETQ, k, store_extras(), big), req(b.OP_GET, k))
    assert_packets(got, [
        err(b.OP_SETQ, b.ST_TOO_LARGE, b"Too large."), err(b.OP_GET, b.ST_NOT_FOUND, NOT_FOUND),
    ])


# ----- delete, arithmetic, touch -------------------------------------------------------------

def test_delete(bw: BinWire, keys: Keys) -> None:
    k, k2 = keys(), keys()
    cas = set_(bw, k, b"v")
    set_(bw, k2, b"v")
    got = bw.call(
        req(b.OP_DELETE, k, cas=cas + 1000), req(b.OP_DELETE, k, cas=cas), req(b.OP_DELETE, k),
        req(b.OP_DELETEQ, k2), req(b.OP_DELETEQ, k2),
    )
    assert_packets(got, [
        err(b.OP_DELETE, b.ST_EXISTS, EXISTS), ok(b.OP_DELETE), err(b.OP_DELETE, b.ST_NOT_FOUND, NOT_FOUND),
        err(b.OP_DELETEQ, b.ST_NOT_FOUND, NOT_FOUND),
    ])


def counter(value: int) -> bytes:
    return struct.pack(">Q", value)


def test_incr_decr(bw: BinWire, keys: Keys) -> None:
    k, k2, text = keys(), keys(), keys()
    set_(bw, text, b"abc")
    got = bw.call(
        req(b.OP_INCREMENT, k, arith_extras(5)),                  # missing, no create
        req(b.OP_INCREMENT, k, arith_extras(5, 100, 0)),          # created with the initial
        req(b.OP_INCREMENT, k, arith_extras(5, 100, 0)),
        req(b.OP_DECREMENT, k, arith_extras(1000, 0, 0)),         # floors at 0
        req(b.OP_DECREMENT, k2, arith_extras(1, 42, 0)),          # decr creates too
        req(b.OP_INCREMENT, text, arith_extras(1, 0, 0)),
        req(b.OP_INCREMENTQ, k2, arith_extras(1, 0, 0)),
        req(b.OP_DECREMENTQ, keys(), arith_extras(1)),
        req(b.OP_GETK, k2),
    )
    assert_packets(got, [
        err(b.OP_INCREMENT, b.ST_NOT_FOUND, NOT_FOUND),
        ok(b.OP_INCREMENT, 1, value=counter(100)), ok(b.OP_INCREMENT, 1, value=counter(105)),
        ok(b.OP_DECREMENT, 1, value=counter(0)), ok(b.OP_DECREMENT, 1, value=counter(42)),
        err(b.OP_INCREMENT, b.ST_NON_NUMERIC, b"Non-numeric server-side value for incr or decr"),
        err(b.OP_DECREMENTQ, b.ST_NOT_FOUND, NOT_FOUND),
        ok(b.OP_GETK, 1, b"\0" * 4, k2, b"43"),
    ])


def test_incr_wraps_and_keeps_length_like_ascii(bw: BinWire, keys: Keys) -> None:
    k, k2 = keys(), keys()
    set_(bw, k, b"18446744073709551615")
    set_(bw, k2, b"100")
    got = bw.call(
        req(b.OP_INCREMENT, k, arith_extras(2, 0, 0)), req(b.OP_DECREMENT, k2, arith_extras(1, 0, 0)),
        req(b.OP_GET, k2),
    )
    assert_packets(got, [
        ok(b.OP_INCREMENT, 1, value=counter(1)), ok(b.OP_DECREMENT, 1, value=counter(99)),
        ok(b.OP_GET, 1, b"\0" * 4, value=b"99 "),
    ])


def test_incr_with_cas(bw: BinWire, keys: Keys) -> None:
    k = keys()
    cas = set_(bw, k, b"5")
    assert bw.one(req(b.OP_INCREMENT, k, arith_extras(1, 0, 0), cas=cas + 1000)).status == b.ST_EXISTS
    packet = bw.one(req(b.OP_INCREMENT, k, arith_extras(1, 0, 0), cas=cas))
    assert packet.status == b.ST_OK and packet.value == counter(6) and packet.cas not in (0, cas)


def test_touch_and_gat(bw: BinWire, keys: Keys) -> None:
    k, missing = keys(), keys()
    cas = set_(bw, k, b"val", 0xDEADBEEF)
    ttl = struct.pack(">I", 100)
    got = bw.call(
        req(b.OP_TOUCH, k, ttl), req(b.OP_TOUCH, missing, ttl),
        req(b.OP_GAT, k, ttl), req(b.OP_GATK, k, ttl), req(b.OP_GATQ, k, ttl), req(b.OP_GATKQ, k, ttl),
        req(b.OP_GAT, missing, ttl), req(b.OP_GATK, missing, ttl),
        req(b.OP_GATQ, missing, ttl), req(b.OP_GATKQ, missing, ttl),
    )
    assert_packets(got, [
        ok(b.OP_TOUCH, 1, FLAGS), err(b.OP_TOUCH, b.ST_NOT_FOUND, NOT_FOUND),
        ok(b.OP_GAT, 1, FLAGS, value=b"val"), ok(b.OP_GATK, 1, FLAGS, k, b"val"),
        ok(b.OP_GATQ, 1, FLAGS, value=b"val"), ok(b.OP_GATKQ, 1, FLAGS, k, b"val"),
        err(b.OP_GAT, b.ST_NOT_FOUND, NOT_FOUND), Packet(b.OP_GATK, b.ST_NOT_FOUND, OPQ, 0, key=missing),
    ])
    assert got[0].cas == cas


def test_touch_with_past_expiry_removes(bw: BinWire, keys: Keys) -> None:
    k = keys()
    set_(bw, k, b"v")
    # unsigned: 0xffffffff is a Unix time in 2106, not -1
    assert bw.one(req(b.OP_TOUCH, k, struct.pack(">I", 0xFFFFFFFF))).status == b.ST_OK
    assert bw.one(req(b.OP_GET, k)).status == b.ST_OK
    # past 30 days an exptime is absolute: 30 days + 1 s is in 1970, already gone
    assert bw.one(req(b.OP_TOUCH, k, struct.pack(">I", 30 * 86400 + 1))).status == b.ST_OK
    assert bw.one(req(b.OP_GET, k)).status == b.ST_NOT_FOUND


# ----- the rest ---------------------------------------------------------------------------------

def test_noop_version(bw: BinWire) -> None:
    (noop, version) = bw.call(req(b.OP_NOOP), req(b.OP_VERSION))
    assert noop.same(ok(b.OP_NOOP))
    assert version.status == b.ST_OK and version.value.startswith(b"1.6.")


def test_stat(bw: BinWire) -> None:
    packets = bw.call(req(b.OP_STAT))
    names = [p.key for p in packets]
    assert names[0] == b"pid" and b"curr_items" in names and b"threads" in names
    assert packets[-1].same(ok(b.OP_STAT))  # the empty packet ends the list
    settings = bw.call(req(b.OP_STAT, b"settings"))
    assert (b"maxbytes", b"67108864") in [(p.key, p.value) for p in settings]
    assert_packets(bw.call(req(b.OP_STAT, b"nosuchgroup")), [err(b.OP_STAT, b.ST_NOT_FOUND, NOT_FOUND)])


def test_quit(server: Server) -> None:
    wire = BinWire(server.address)
    assert wire.closes_after(req(b.OP_QUIT) + req(b.OP_NOOP)) == [ok(b.OP_QUIT)]
    wire.close()
    wire = BinWire(server.address)
    assert wire.closes_after(req(b.OP_QUITQ) + req(b.OP_NOOP)) == []
    wire.close()


def test_unknown_opcode_answers_and_goes_on(bw: BinWire) -> None:
    """Answered; then memcached skips the body and as many bytes again as the key and
    extras (here: the two filler bytes), and the connection goes on."""
    assert_packets(bw.call(req(0x50)), [err(0x50, b.ST_UNKNOWN, b"Unknown command")])
    assert_packets(bw.call(req(0x50, b"k1") + b"\0\0"), [err(0x50, b.ST_UNKNOWN, b"Unknown command")])
    assert_packets(bw.call(req(0x1B, extras=b"\0\0\0\1") + b"\0" * 4), [err(0x1B, b.ST_UNKNOWN, b"Unknown command")])


@pytest.mark.parametrize("bad", [
    req(b.OP_GET, b"k", b"\0\0\0\0"),          # extras on a get
    req(b.OP_GET),                             # no key
    req(b.OP_GET, b"a" * 251),                 # key too long
    req(b.OP_GET, b"k", value=b"zz"),          # value on a get
    req(b.OP_SET, b"k", b"", b"v"),            # set without extras
    req(b.OP_INCREMENT, b"k", b"\0" * 4),      # short incr extras
    req(b.OP_NOOP, b"k"),
    req(b.OP_QUIT, b"k"),
    req(b.OP_STAT, extras=b"\0\0\0\0"),
    req(b.OP_FLUSH, extras=b"\0" * 8),
    req(b.OP_TOUCH, b"k"),                     # touch without its exptime
])
def test_invalid_arguments_close_the_connection(server: Server, bad: bytes) -> None:
    wire = BinWire(server.address)
    got = wire.closes_after(bad + req(b.OP_NOOP))
    assert len(got) == 1 and got[0].status == b.ST_INVALID and got[0].value == b"Invalid arguments"
    wire.close()


def test_body_shorter_than_key_closes(server: Server) -> None:
    wire = BinWire(server.address)
    packet = req(b.OP_GET, b"k1")
    packet = packet[:8] + struct.pack(">I", 1) + packet[12:]  # total body 1 < key length 2
    got = wire.closes_after(packet + req(b.OP_NOOP))
    assert [(p.status, p.value) for p in got] == [(b.ST_UNKNOWN, b"Unknown command")]
    wire.close()


def test_bad_magic_closes_silently(server: Server) -> None:
    wire = BinWire(server.address)
    assert wire.closes_after(req(b.OP_NOOP) + req(b.OP_NOOP, magic=0x81)) == [ok(b.OP_NOOP)]
    wire.close()


def test_requests_split_byte_by_byte(bw: BinWire, keys: Keys) -> None:
    k = keys()
    data = req(b.OP_SET, k, store_extras(3), b"split") + req(b.OP_GETK, k)
    for i in range(len(data)):
        bw.send(data[i : i + 1])
    first, second = bw.read_packet(), bw.read_packet()
    assert first is not None and first.same(ok(b.OP_SET, 1))
    assert second is not None and second.same(ok(b.OP_GETK, 1, struct.pack(">I", 3), k, b"split"))
