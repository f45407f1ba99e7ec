"""A multi-key get's shares (kvshard.packed_blocks) and the cache's packed answer: compiled and
with KVSHARD_NO_EXTENSIONS=1 the same bytes come out."""

from __future__ import annotations

import random

import pytest

from kvshard.cache import Cache
from kvshard.packed_blocks import merge_blocks, pack_blocks, unpack_blocks
from kvshard.protocol.ascii import value_line


def test_merge_puts_every_owner_s_blocks_back_in_key_order() -> None:
    rng = random.Random(5)
    for _ in range(300):
        shards = rng.randint(1, 5)
        owners = [rng.randrange(shards) for _ in range(rng.randint(1, 12))]
        blocks = [rng.randbytes(rng.choice((0, 1, 30, 300))) for _ in owners]
        parts: list[bytes | None] = [None] * shards
        for owner in set(owners):
            parts[owner] = pack_blocks([b for b, o in zip(blocks, owners) if o == owner])
        assert merge_blocks(owners, parts, b"END\r\n") == b"".join(blocks) + b"END\r\n"


def test_merge_refuses_parts_that_do_not_match_their_keys() -> None:
    good = pack_blocks([b"one", b"two"])
    for parts in (
        [good[:-1], pack_blocks([b"x"])],  # cut short
        [good + pack_blocks([b"extra"]), pack_blocks([b"x"])],  # one block too many
        [good + b"\0", pack_blocks([b"x"])],  # trailing bytes
        [good, None],  # an owner that sent nothing
    ):
        with pytest.raises(ValueError):
            merge_blocks([0, 1, 0], parts, b"END\r\n")
    with pytest.raises(ValueError):
        merge_blocks([0, 2], [good, good], b"")  # no such owner


def test_the_cache_packs_what_get_block_answers() -> None:
    cache = Cache(4 << 20, 0, 1)
    cache.set_item(b"a", 0, 0, b"alpha")
    cache.set_item(b"flags", 4294967295, 0, b"")
    cache.set_item(b"big", 7, 0, bytes(range(256)) * 2000)  # chunked: bigger than the largest chunk
    cache.set_item(b"gone", 0, -1, b"expired already")
    keys = [b"a", b"missing", b"flags", b"big", b"a", b"gone"]
    for with_cas in (False, True):
        expected = []
        for key in keys:
            item = cache.get(key)
            expected.append(b"" if item is None else value_line(key, item[1], item[0][item[4]:-2], item[3] if with_cas else None))
        packed = cache.get_blocks_packed(keys, with_cas)
        assert unpack_blocks(packed, len(keys)) == expected
        assert packed == pack_blocks(expected)
    assert b" 4294967295 0 " in expected[2]  # gets: flags, length and the CAS unique


def test_packed_gets_count_hits_and_misses_as_single_gets() -> None:
    cache = Cache(1 << 20, 0, 1)
    cache.set_item(b"a", 0, 0, b"1")
    cache.get_blocks_packed([b"a", b"b", b"a"], False)
    counts = cache.counters()
    assert (counts["get_hits"], counts["get_misses"]) == (2, 1)
