"""The sans-IO binary codec alone: framing, splits, swallowing, refusals."""

from __future__ import annotations

import struct

from kvshard.protocol import binary as b
from tests.conformance.binwire import req, store_extras

STREAM = (
    req(b.OP_SET, b"a", store_extras(1, 2), b"hello", cas=9, opaque=1)
    + req(b.OP_GETKQ, b"a", opaque=2)
    + req(0x50, b"zz", opaque=3) + b"\0\0"          # unknown: skipped, plus 2 bytes more
    + req(b.OP_SET, b"big", store_extras(), b"x" * 200, opaque=4)
    + req(b.OP_INCREMENT, b"n", struct.pack(">QQI", 1, 2, 3), opaque=5)
    + req(b.OP_NOOP, opaque=6)
)


def parse(data: bytes, max_item: int = 100) -> list[b.Request]:
    return b.BinaryParser(max_item).feed(data)


def test_stream() -> None:
    got = parse(STREAM)
    assert [(r.opcode, r.opaque) for r in got] == [
        (b.OP_SET, 1), (b.OP_GETKQ, 2), (b.UNKNOWN, 3), (b.TOO_LARGE, 4), (b.OP_INCREMENT, 5), (b.OP_NOOP, 6),
    ]
    assert got[0] == b.Request(b.OP_SET, b"a", store_extras(1, 2), b"hello", 9, 1)
    assert got[2].value == b.error(0x50, b.ST_UNKNOWN, 3)
    assert got[3].key == b"big" and got[3].extras == bytes((b.OP_SET,))


def test_every_split_point_gives_the_same_requests() -> None:
    whole = parse(STREAM)
    for cut in range(1, len(STREAM)):
        parser = b.BinaryParser(100)
        assert parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]) == whole, cut


def test_byte_by_byte() -> None:
    parser = b.BinaryParser(100)
    got = []
    for i in range(len(STREAM)):
        got += parser.feed(STREAM[i : i + 1])
    assert got == parse(STREAM)


def test_refusals_close() -> None:
    (bad_magic,) = parse(req(b.OP_NOOP, magic=0x81) + req(b.OP_NOOP))
    assert bad_magic.opcode == b.CLOSE and bad_magic.value == b""
    (invalid,) = parse(req(b.OP_GET, b"k", b"\0\0\0\0", opaque=7) + req(b.OP_NOOP))
    assert invalid.opcode == b.CLOSE and invalid.value == b.error(b.OP_GET, b.ST_INVALID, 7)
    short = req(b.OP_GET, b"k1")
    short = short[:8] + struct.pack(">I", 1) + short[12:]
    (unknown,) = parse(short)
    assert unknown.value == b.error(b.OP_GET, b.ST_UNKNOWN, 0x01020304)


def test_response_layout() -> None:
    packet = b.response(b.OP_GETK, b.ST_OK, 0xAABBCCDD, 5, b"\0\0\0\1", b"key", b"value")
    assert packet[:24] == struct.pack(">BBHBBHIIQ", 0x81, b.OP_GETK, 3, 4, 0, 0, 12, 0xAABBCCDD, 5)
    assert packet[24:] == b"\0\0\0\1keyvalue"
    assert b.error(b.OP_SET, b.ST_EXISTS, 1).endswith(b"Data exists for key.")


def test_single_get_fast_path_agrees_with_the_parser() -> None:
    """single_get accepts exactly the lone GET packets the parser would turn into one GET
    request, with the same key and opaque; anything else is left to the parser."""
    one = req(b.OP_GET, b"key-1", opaque=77)
    assert b.single_get(one) == (b"key-1", 77)
    (parsed,) = parse(one)
    assert (parsed.opcode, parsed.key, parsed.opaque) == (b.OP_GET, b"key-1", 77)
    refused = [
        req(b.OP_GET, b"k") + req(b.OP_NOOP),             # two packets
        req(b.OP_GET, b"key")[:-1],                        # cut short
        req(b.OP_GETK, b"k"),                              # another opcode
        req(b.OP_GET, b"k", extras=b"\0\0\0\0"),           # extras: Invalid arguments
        req(b.OP_GET),                                     # no key
        req(b.OP_GET, b"k" * 251),                         # key too long
        req(b.OP_GET, b"k", magic=0x81),                   # bad magic
    ]
    for data in refused:
        assert b.single_get(data) is None, data


def test_get_hit_is_the_general_response() -> None:
    assert b.get_hit(5, 99, 7, b"value") == b.response(b.OP_GET, b.ST_OK, 5, 99, struct.pack(">I", 7), b"", b"value")
    assert b.get_hit(5, 99, 7, memoryview(b"xxvaluexx")[2:-2]) == b.get_hit(5, 99, 7, b"value")


def test_parser_idle() -> None:
    p = b.BinaryParser(100)
    assert p.idle
    p.feed(req(b.OP_GET, b"key")[:10])
    assert not p.idle
    p.feed(req(b.OP_GET, b"key")[10:])
    assert p.idle


def test_big_body_over_many_reads_is_joined_once() -> None:
    """A value far larger than a read arrives in pieces: the request is the same as from one
    read, and the pieces wait in a list (no re-concatenation per read)."""
    value = bytes(range(256)) * 1200  # 300 KiB
    packet = b.HEADER.pack(b.REQUEST_MAGIC, b.OP_SET, 3, 8, 0, 0, 8 + 3 + len(value), 9, 0) + b"\0" * 8 + b"big" + value
    trailer = b.HEADER.pack(b.REQUEST_MAGIC, b.OP_NOOP, 0, 0, 0, 0, 0, 10, 0)
    whole = b.BinaryParser().feed(packet + trailer)
    parser = b.BinaryParser()
    got: list[b.Request] = []
    data = packet + trailer
    for start in range(0, len(data), 7000):
        got.extend(parser.feed(data[start : start + 7000]))
        if start + 7000 < len(packet):
            assert not parser.idle and len(parser._buf) < 7000  # pieces are kept aside, not re-joined
    assert got == whole and [r.opcode for r in got] == [b.OP_SET, b.OP_NOOP] and got[0].value == value


def test_header_only_is_a_response_without_a_body() -> None:
    for opcode, status, opaque, cas in ((b.OP_SET, b.ST_OK, 7, 0), (b.OP_SETQ, b.ST_UNKNOWN, 2**32 - 1, 2**64 - 1),
                                        (b.OP_ADD, b.ST_EXISTS, 0, 0x0102030405060708)):
        assert b.header_only(opcode, status, opaque, cas) == b.response(opcode, status, opaque, cas)
