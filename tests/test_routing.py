"""Key routing: compiled or interpreted, the owner of a key is the formula in kvshard.routing's
docstring, computed here with Python's integers (a key must land on the same shard in every
process and every build), and keys spread evenly over the shards."""

from __future__ import annotations

import random

import pytest

from kvshard.counters import CLASS_COUNTERS, CacheCounters, ConnectionCounters
from kvshard.routing import key_mix, owner_of


_MASK64 = (1 << 64) - 1


def expected_mix(key: bytes) -> int:
    """The docstring's formula, independently: the key as a little-endian number modulo
    2**61 - 1, then MurmurHash3's fmix64."""
    x = int.from_bytes(key, "little") % ((1 << 61) - 1)
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        x ^= x >> 33
        x = x * multiplier & _MASK64
    return x ^ (x >> 33)


def expected_owner(key: bytes, shards: int) -> int:
    """The mix's top 32 bits modulo the shards."""
    return (expected_mix(key) >> 32) % shards


def test_owner_follows_the_formula() -> None:
    rng = random.Random(17)
    keys = [b"", b"a", b"key:00000001", bytes(range(256)), b"\xff" * 250, b"\x00" * 64]
    keys += [bytes([255]) * n for n in range(1, 80)]  # every word at its largest: the folds' edge
    keys += [rng.randbytes(rng.randrange(1, 300)) for _ in range(2000)]
    for key in keys:
        assert key_mix(key) == expected_mix(key), key  # (compiled: 16 words between folds)
        for shards in (1, 2, 3, 4, 7, 64, 1024):
            assert owner_of(key, shards) == expected_owner(key, shards), (key, shards)


@pytest.mark.parametrize("keys", [
    [b"key:%d" % i for i in range(20000)],  # short keys differing in their last bytes
    [b"%064d" % i for i in range(20000)],  # memaslap-like 64-byte keys
])
def test_keys_spread_evenly(keys: list[bytes]) -> None:
    for shards in (2, 3, 8):
        counts = [0] * shards
        for key in keys:
            counts[owner_of(key, shards)] += 1
        expected = len(keys) / shards  # each count within 5 standard deviations of a fair split
        assert all(abs(count - expected) < 5 * (expected * (1 - 1 / shards)) ** 0.5 for count in counts), counts


@pytest.mark.parametrize("key", [bytearray(b"key:1"), memoryview(b"key:22")])
def test_other_byte_buffers_route_like_bytes(key: bytes) -> None:
    assert owner_of(key, 5) == owner_of(bytes(key), 5) == expected_owner(bytes(key), 5)


def test_counters_reset_and_read_by_name() -> None:
    cache = CacheCounters()
    cache.get_misses += 2
    cache.add("incr_misses", 3)
    assert cache.as_dict()["get_misses"] == 2 and cache.as_dict()["incr_misses"] == 3
    # then the ones counted per slab class (tests/test_cache.py), summed
    assert list(cache.as_dict()) == [*CacheCounters.NAMES, *CLASS_COUNTERS]
    cache.reset()
    assert set(cache.as_dict().values()) == {0}
    conns = ConnectionCounters()
    conns.curr_connections = 4
    conns.bytes_read += 10
    conns.reset()
    assert conns.as_dict() == dict.fromkeys(("curr_connections", *ConnectionCounters.NAMES), 0) | {"curr_connections": 4}


def test_the_last_key_remembered_is_only_reused_for_that_same_bytes_object() -> None:
    """key_mix remembers the last bytes object it mixed (a local request is routed, then
    looked up); equal keys, other keys and a changed buffer are each right."""
    key = b"key:%d" % 1
    assert owner_of(key, 1024) == owner_of(key, 1024) == expected_owner(key, 1024)
    other = b"key:%d" % 2
    assert owner_of(other, 1024) == expected_owner(other, 1024)
    buffer = bytearray(other)
    buffer[-1] = ord("3")
    assert owner_of(buffer, 1024) == expected_owner(b"key:3", 1024)
    buffer[-1] = ord("4")
    assert owner_of(buffer, 1024) == expected_owner(b"key:4", 1024)


def test_a_mix_sent_with_a_key_is_answered_without_mixing_it_again() -> None:
    """remember_mix (a forwarded get's owner is given the router's mix): key_mix answers what
    it was given for that key, and other keys are still mixed."""
    from kvshard.routing import remember_mix

    key = b"key:%d" % 5
    remember_mix(key, 12345)
    assert key_mix(key) == 12345  # (given, not computed: a real mix is not 12345)
    remember_mix(key, expected_mix(key))
    assert key_mix(key) == expected_mix(key)
    other = b"key:%d" % 6
    assert key_mix(other) == expected_mix(other)


def test_mixes_sent_with_keys_are_answered_for_those_keys() -> None:
    """pack_mixes / remember_mixes (a forwarded multi-key get's keys and their mixes): each
    key gets its own mix back, and a count that does not match is refused."""
    from kvshard.routing import pack_mixes, remember_mix, remember_mixes

    keys = [b"mk:%d" % i for i in range(5)]
    packed = pack_mixes(keys)
    assert len(packed) == 40
    for key in keys:
        remember_mix(key, 1)
    received = [bytes(bytearray(k)) for k in keys]  # (other objects, equal keys: what the owner tokenizes)
    remember_mixes(received, packed)
    assert [key_mix(k) for k in received] == [expected_mix(k) for k in keys]
    with pytest.raises(ValueError):
        remember_mixes(received[:4], packed)
