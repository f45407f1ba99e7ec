"""Per-prefix counts (``stats detail``) alone: which keys have a prefix, merging the shards'
counts, memcached's order and its MurmurHash3."""

from __future__ import annotations

import pytest

from kvshard.prefix_stats import PrefixStats, dump, murmur3_32


@pytest.mark.parametrize(("data", "expected"), [
    (b"", 0), (b"hello", 0x248BFA47), (b"The quick brown fox jumps over the lazy dog", 0x2E4FF723),
])
def test_murmur3_known_values(data: bytes, expected: int) -> None:
    assert murmur3_32(data) == expected


def test_which_keys_have_a_prefix() -> None:
    stats = PrefixStats(b"#")
    for key in (b"a#1", b"a#b#c", b"#x", b"none", b"a:1", b"n\0ul#1"):
        stats.record_set(key)
    assert sorted((p, sets) for p, _g, _h, sets, _d, _t in stats.snapshot()) == [(b"", 1), (b"a", 2)]
    with pytest.raises(ValueError):
        PrefixStats(b"::")


def test_shards_merge_and_order() -> None:
    """Counts add up per prefix; by memcached's bucket, and in a bucket newest first (by the
    first time any shard saw the prefix)."""
    one, two = PrefixStats(), PrefixStats()
    one.record_get(b"dv:1", True)
    two.record_get(b"dv:2", False)
    two.record_delete(b"ic:1")
    one.record_set(b"a:1")
    one.record_set(b"pp:1")
    assert dump([one.snapshot(), two.snapshot()]) == (
        b"PREFIX pp get 0 hit 0 set 1 del 0\r\n"
        b"PREFIX ic get 0 hit 0 set 0 del 1\r\n"
        b"PREFIX dv get 2 hit 1 set 0 del 0\r\n"
        b"PREFIX a get 0 hit 0 set 1 del 0\r\n"
        b"END\r\n"
    )
    one.clear()
    assert dump([one.snapshot()]) == b"END\r\n"
