"""Key routing: compiled or interpreted, the owner of a key is crc32(key) % shards, exactly
zlib's CRC-32 (a key must land on the same shard in every process and every build)."""

from __future__ import annotations

import random
import zlib

import pytest

from kvshard.counters import CLASS_COUNTERS, CacheCounters, ConnectionCounters
from kvshard.routing import owner_of


def test_owner_is_zlib_crc32_modulo_shards() -> None:
    rng = random.Random(17)
    keys = [b"", b"a", b"key:00000001", bytes(range(256)), b"\xff" * 250]
    keys += [rng.randbytes(rng.randrange(1, 300)) for _ in range(2000)]
    for key in keys:
        for shards in (1, 2, 3, 4, 7, 64, 1024):
            assert owner_of(key, shards) == zlib.crc32(key) % shards, (key, shards)


@pytest.mark.parametrize("key", [bytearray(b"key:1"), memoryview(b"key:22")])
def test_other_byte_buffers_route_like_bytes(key: bytes) -> None:
    assert owner_of(key, 5) == owner_of(bytes(key), 5) == zlib.crc32(key) % 5


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
