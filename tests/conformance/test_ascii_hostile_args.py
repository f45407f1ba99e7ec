"""Hostile arguments, byte for byte as memcached 1.6.18: numbers with signs C's ``strtoull``
still takes, and the administration commands (``cache_memlimit``, ``slabs``, ``lru``,
``lru_crawler``) with bad and good arguments.

Both servers run with the crawler off (``-o no_lru_crawler``, so its commands answer as a
disabled crawler does) and the LRU maintainer off (``-o no_lru_maintainer``), so ``lru
mode|temp_ttl`` are refused while ``lru tune`` still stores its numbers; slab reassignment is on,
as memcached 1.6's default, and :func:`test_slab_reassignment_off` has it off. Every setting
memcached stores kvshard stores too (the segmented LRU and the slab mover are both there), so
both answer alike.
"""

from __future__ import annotations

import pytest

from tests.servers import server_kinds, start_server

from kvshard.protocol.ascii import R_BAD_DELTA as BAD_DELTA
from kvshard.protocol.ascii import R_ERROR as ERROR
from kvshard.protocol.ascii import R_OK as OK

from .conftest import Keys, server_with
from .test_ascii_errors import BAD_FORMAT
from .test_ascii_stats import read_stats
from .wire import Wire, storage, value

server = server_with("-o", "no_lru_crawler,no_lru_maintainer")

TOO_SMALL = b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
REASSIGN_OFF = b"CLIENT_ERROR slab reassignment disabled\r\n"
CRAWLER_OFF = b"CLIENT_ERROR lru crawler disabled\r\n"


@pytest.mark.parametrize("delta, answer", [
    (b"-0", b"5\r\n"),
    (b"+0", b"5\r\n"),
    (b"-9223372036854775809", b"9223372036854775812\r\n"),  # 2**64 - that: 2**63 - 1, plus 5
    (b"-18446744073709551615", b"6\r\n"),  # 2**64 - that: 1
    (b"-18446744073709551616", BAD_DELTA),  # out of range
    (b"-1", BAD_DELTA),  # 2**64 - 1 reads as negative: refused
    (b"-9223372036854775808", BAD_DELTA),
])
def test_incr_delta_with_a_sign(conn: Wire, keys: Keys, delta: bytes, answer: bytes) -> None:
    k = keys()
    conn.call(storage(b"set", k, b"5"), b"STORED\r\n")
    conn.call(b"incr " + k + b" " + delta + b"\r\n", answer)


def test_decr_by_minus_zero(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(storage(b"set", k, b"5") + b"decr " + k + b" -0\r\n", b"STORED\r\n5\r\n")


@pytest.mark.parametrize("flags, shown", [(b"-0", 0), (b"-9223372036854775809", 4294967295)])
def test_storage_flags_with_a_sign(conn: Wire, keys: Keys, flags: bytes, shown: int) -> None:
    k = keys()
    conn.call(b"set " + k + b" " + flags + b" 0 1\r\nx\r\n", b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"x", shown) + b"END\r\n")


@pytest.mark.parametrize("line", [b"set %s -4294967296 0 1", b"set %s 0 0 -9223372036854775809", b"set %s -1 0 1"])
def test_storage_numbers_refused(conn: Wire, keys: Keys, line: bytes) -> None:
    conn.call(line % keys() + b"\r\nx\r\n", BAD_FORMAT + ERROR)


def test_cas_unique_minus_zero(conn: Wire, keys: Keys) -> None:
    conn.call(b"cas " + keys() + b" 0 0 1 -0\r\nx\r\n", b"NOT_FOUND\r\n")


def test_meta_numbers_minus_zero(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 1 F-0\r\nx\r\nmg " + k + b" f v\r\n", b"HD\r\nVA 1 f0\r\nx\r\n")
    conn.call(b"ma " + keys() + b" D-0\r\n", b"NF\r\n")


def test_verbosity_minus_zero(conn: Wire) -> None:
    conn.call(b"verbosity -0\r\n", OK)
    assert read_stats(conn, b" settings")["verbosity"] == "0"


@pytest.mark.parametrize("line, answer", [
    (b"cache_memlimit", ERROR),
    (b"cache_memlimit abc", ERROR),
    (b"cache_memlimit -1", ERROR),
    (b"cache_memlimit 1x", ERROR),
    (b"cache_memlimit 1 2 3", ERROR),
    (b"cache_memlimit 0", TOO_SMALL),
    (b"cache_memlimit -0", TOO_SMALL),
    (b"cache_memlimit 7", TOO_SMALL),
    (b"cache_memlimit 4294967296", TOO_SMALL),  # read into 32 bits: 0
    (b"cache_memlimit 1000000001", b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"),
    (b"cache_memlimit 100", OK),
    (b"cache_memlimit 100 extra", OK),  # a third word that is not noreply is not read
    (b"cache_memlimit 100 noreply", b""),
    (b"cache_memlimit abc noreply", b""),
    (b"slabs", ERROR),
    (b"slabs bogus", ERROR),
    (b"slabs bogus x y", ERROR),
    (b"slabs automove", ERROR),
    (b"slabs automove abc", BAD_FORMAT),
    (b"slabs automove -1", BAD_FORMAT),
    (b"slabs automove 1x", BAD_FORMAT),
    (b"slabs automove 3", ERROR),
    (b"slabs automove 0", OK),
    (b"slabs automove -0", OK),
    (b"slabs automove 0 noreply", b""),
    (b"slabs automove abc noreply", b""),
    (b"slabs automove ratio", ERROR),
    (b"slabs automove ratio abc", ERROR),
    (b"slabs automove ratio 0.5 x", OK),
    (b"slabs automove ratio 0.8", OK),
    (b"slabs automove 2", OK),
    (b"slabs automove 1", OK),
    (b"slabs reassign", ERROR),
    (b"slabs reassign 1", ERROR),
    (b"slabs reassign a b", BAD_FORMAT),
    (b"slabs reassign +1 1", b"SAME src and dst class are identical\r\n"),
    (b"slabs reassign 1 99", b"BADCLASS invalid src or dst class id\r\n"),
    (b"slabs reassign 1 2 3", ERROR),
    (b"lru", ERROR),
    (b"lru bogus", ERROR),
    (b"lru tune", ERROR),
    (b"lru tune a b c d", ERROR),
    (b"lru tune 10 20 0.1", ERROR),
    (b"lru tune 50 40 0.1 2", b"ERROR hot and warm pcts must not exceed 80\r\n"),
    (b"lru tune 10 20 0 2", b"ERROR hot/warm age factors must be greater than 0\r\n"),
    (b"lru tune 10 20 0.1 -2", b"ERROR hot/warm age factors must be greater than 0\r\n"),
    (b"lru tune 50 40 0.1 2 noreply", b""),
    (b"lru tune 10 20 0.1 2", OK),  # stored even without the maintainer, as memcached does
    (b"lru mode flat", ERROR),  # no LRU maintainer
    (b"lru mode abc", ERROR),
    (b"lru temp_ttl 10", ERROR),
    (b"lru temp_ttl abc", ERROR),
    (b"lru_crawler", ERROR),
    (b"lru_crawler bogus", ERROR),
    (b"lru_crawler crawl", ERROR),
    (b"lru_crawler crawl 1", CRAWLER_OFF),
    (b"lru_crawler crawl abc", CRAWLER_OFF),
    (b"lru_crawler metadump all", CRAWLER_OFF),
    (b"lru_crawler metadump", ERROR),
    (b"lru_crawler mgdump 1", ERROR),  # a later memcached's
    (b"lru_crawler sleep abc", BAD_FORMAT),
    (b"lru_crawler sleep -1", BAD_FORMAT),
    (b"lru_crawler sleep 1000001", b"CLIENT_ERROR sleep must be one second or less\r\n"),
    (b"lru_crawler tocrawl abc", BAD_FORMAT),
    (b"lru_crawler tocrawl -5", BAD_FORMAT),
    (b"lru_crawler sleep 1 noreply", ERROR),  # no noreply here
    (b"lru_crawler disable", OK),  # none runs
    (b"lru_crawler sleep 100", OK),
    (b"lru_crawler tocrawl 5", OK),
])
def test_administration_commands(conn: Wire, line: bytes, answer: bytes) -> None:
    conn.call(line + b"\r\n", answer)


@pytest.mark.parametrize("kind", server_kinds())
def test_slab_reassignment_off(kind: str) -> None:
    """-o no_slab_reassign: reassign is refused before its numbers are read; automove is
    still set, as memcached sets it (nothing moves: kvshard.slab_mover)."""
    with start_server(kind, "-o", "no_slab_reassign") as off, Wire.connect(off.address) as conn:
        for line, answer in ((b"slabs reassign a b", REASSIGN_OFF), (b"slabs reassign 1 2", REASSIGN_OFF),
                             (b"slabs reassign 1 2 3", ERROR), (b"slabs automove 1", OK),
                             (b"slabs automove 3", ERROR), (b"slabs automove ratio 0.5 x", OK)):
            conn.call(line + b"\r\n", answer)
