"""The item chunk's layout (kvshard.slab_arena): a 32-byte header, the client's flags only when
they are not 0, a chain head's ``more``, expiry in whole seconds; and what that does to the
class an item lands in, as ``stats slabs`` and ``stats items`` show it."""

from __future__ import annotations

import pytest

from kvshard import cache as c
from kvshard.slab_arena import FLAG_BYTES, HEADER, MEMCACHED_ITEM_STRUCT, MORE_BYTES, SlabArena, class_sizes, key_hash
from tests.servers import start_server

from .conformance.wire import Wire, storage

PAGE = 1 << 20
VALUE_100 = b"v" * 100


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _stat_lines(conn: Wire, group: bytes) -> dict[str, str]:
    conn.send(b"stats " + group + b"\r\n")
    text = conn.recv_until(b"END\r\n").decode()
    return dict(line.split(" ", 2)[1:] for line in text.splitlines() if line.startswith("STAT "))


def test_header_is_32_bytes_and_the_classes_stay_memcacheds() -> None:
    assert HEADER == 32 and MEMCACHED_ITEM_STRUCT == 48 and FLAG_BYTES == MORE_BYTES == 4
    sizes = class_sizes()
    assert sizes[:5] == [96, 120, 152, 192, 240]  # memcached 1.6's -n 48 -f 1.25
    arena = SlabArena(4 * PAGE)
    assert arena.item_size(16, 100) == 148 and arena.item_size(16, 100, 7) == 152
    assert arena.item_size(20, 100) == 152 and arena.item_size(20, 100, 7) == 156
    assert sizes[arena.item_class(20, 100)] == 152 and sizes[arena.item_class(20, 100, 7)] == 192


def test_flags_take_bytes_only_when_not_0_as_stats_slabs_shows() -> None:
    """A 16-byte key and a 100-byte value land in the 152-byte class (memcached's: 192); a 20-byte
    key too, but with flags it needs 4 more bytes and lands in the 192-byte class."""
    with start_server("kvshard") as server, Wire.connect(server.address) as conn:
        for i in range(3):
            conn.call(storage(b"set", b"layout:16:%06d" % i, VALUE_100), b"STORED\r\n")
        conn.call(storage(b"set", b"layout:20:no-flags:0", VALUE_100), b"STORED\r\n")
        conn.call(storage(b"set", b"layout:20:flags:0001", VALUE_100, flags=1), b"STORED\r\n")
        conn.call(b"get layout:20:flags:0001\r\n",
                  b"VALUE layout:20:flags:0001 1 100\r\n" + VALUE_100 + b"\r\nEND\r\n")
        slabs, items = _stat_lines(conn, b"slabs"), _stat_lines(conn, b"items")
    sizes = {int(name.split(":")[0]): int(v) for name, v in slabs.items() if name.endswith(":chunk_size")}
    used = {sizes[c]: int(slabs[f"{c}:used_chunks"]) for c in sizes}
    assert used == {152: 4, 192: 1}
    numbers = {sizes[c]: int(items[f"items:{c}:number"]) for c in sizes}
    assert numbers == {152: 4, 192: 1}


@pytest.mark.parametrize("flags", [0, 1, 0xFFFF, 0xFFFFFFFF])
@pytest.mark.parametrize("size", [0, 100, PAGE // 2 - HEADER - 20, PAGE // 2, 3 * PAGE + 17])
def test_flags_and_values_round_trip_in_one_chunk_and_in_chains(flags: int, size: int) -> None:
    arena = SlabArena(16 * PAGE)
    key = b"round:trip:key"
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    ref = arena.store(key, value, flags, 0, 7, 8)
    assert ref and arena.find(key) == ref
    assert (arena.flags(ref), arena.cas(ref), arena.marks(ref), arena.key(ref)) == (flags, 7, 8, key)
    assert arena.value(ref) == value and arena.nbytes(ref) == size
    chunk = arena.item_size(len(key), size, flags)
    assert arena.bytes == chunk == HEADER + len(key) + size + (FLAG_BYTES if flags else 0) + (
        MORE_BYTES if chunk > arena.chunk_max else 0)
    assert arena.item_hash(ref) == key_hash(key)  # hashed where the key lies in the arena
    arena.set_marks(ref, 31)  # the marks share a byte with the state and HAS_FLAGS
    assert (arena.marks(ref), arena.flags(ref), arena.is_item(ref), arena.value(ref)) == (31, flags, True, value)
    arena.unlink(ref)
    assert arena.find(key) == 0 and arena.bytes == 0 and arena.count == 0


def test_a_chain_that_exactly_fills_its_head_and_one_more_byte() -> None:
    arena = SlabArena(8 * PAGE)
    key = b"k"
    fits = arena.chunk_max - HEADER - len(key)
    assert arena.chunks_needed(1, fits) == 1 and arena.chunks_needed(1, fits + 1) == 2
    assert arena.chunks_needed(1, fits - FLAG_BYTES, 5) == 1 and arena.chunks_needed(1, fits - FLAG_BYTES + 1, 5) == 2
    for flags, n in ((0, fits), (0, fits + 1), (5, fits - FLAG_BYTES), (5, fits - FLAG_BYTES + 1)):
        value = bytes((i * 7) & 255 for i in range(n))
        ref = arena.store(key, value, flags, 0, 1)
        assert arena.value(ref) == value and arena.flags(ref) == flags


def test_cache_round_trips_flags_and_chains_and_incr_keeps_flags() -> None:
    cache = c.Cache(16 * PAGE, clock=Clock(1_700_000_000.0))
    big = b"0123456789" * 70_000
    assert cache.store(b"set", b"big", 0xDEADBEEF, 0, big) == c.STORED
    assert cache.get_value(b"big")[::2] == (0xDEADBEEF, big)
    assert cache.get_block(b"big") == b"VALUE big 3735928559 700000\r\n" + big + b"\r\n"
    assert cache.store(b"set", b"n", 42, 0, b"100") == c.STORED
    assert cache.arith(True, b"n", 5) == 105
    assert cache.get_value(b"n")[::2] == (42, b"105")


def test_expiry_is_in_whole_seconds_as_memcacheds() -> None:
    """An exptime turns into a Unix second; the item is gone once that second begins, and its
    TTL counts down as the seconds turn, not from the moment it was stored."""
    clock = Clock(1_700_000_000.7)
    cache = c.Cache(4 * PAGE, clock=clock)
    assert cache.expire_at(1) == 1_700_000_001 and cache.expire_at(0) == 0 and cache.expire_at(-1) == 1
    assert cache.expire_at(2_000_000_000) == 2_000_000_000 and cache.expire_at(2**40) == 0xFFFFFFFF
    cache.store(b"set", b"short", 0, 1, b"v")
    cache.store(b"set", b"long", 0, 100, b"v")
    assert cache.get(b"short")[2] == 1_700_000_001 and cache.remaining(cache.get(b"long")[2]) == 100
    clock.now = 1_700_000_000.999
    assert cache.get(b"short") is not None and cache.remaining(cache.get(b"long")[2]) == 100
    clock.now = 1_700_000_001.0  # a new second: 0.3 s after the store, the 1-second item is gone
    assert cache.get(b"short") is None and cache.remaining(cache.get(b"long")[2]) == 99


def test_an_index_growth_ends_on_lookups_and_on_grow_index_without_more_stores() -> None:
    """The index doubles at 70% and moves its old array across a few slots per insert; lookups
    and grow_index (the LRU maintainer's wake-ups) move it too, so it is freed though stores
    stop right after the growth began."""
    for finish in ("lookups", "grow_index"):
        arena = SlabArena(64 * PAGE)
        n = 0
        while arena.index_slots() == 1024:
            assert arena.store(b"grow:%06d" % n, b"v", 0, 0, n + 1)
            n += 1
        assert arena.index_slots() == 2048 + 1024 and arena.grow_index(0)  # growing: both arrays live
        if finish == "lookups":
            for i in range(n):
                assert arena.find(b"grow:%06d" % i)
        else:
            assert not arena.grow_index(1 << 20)
        assert arena.index_slots() == 2048 and not arena.grow_index(0)
        assert all(arena.value(arena.find(b"grow:%06d" % i)) == b"v" for i in range(n))


def test_the_index_starts_at_hashpower_slots_split_over_the_shards() -> None:
    """-o hashpower sizes the index as memcached's hash table (2**16 buckets when not given),
    split over the shards and rounded up to a power of two; a growth still doubles it."""
    from kvshard.cache import Cache
    from kvshard.memcached_options import index_slots

    assert index_slots({}, 2) == 1 << 15
    assert index_slots({"hashpower": "20"}, 4) == 1 << 18
    assert Cache(1 << 22).arena.index_slots() == 1024  # (no size asked: the least)
    assert Cache(1 << 22, index_slots=index_slots({}, 2)).arena.index_slots() == 1 << 15
    assert Cache(1 << 22, index_slots=3000).arena.index_slots() == 4096
    cache = Cache(32 << 20, index_slots=2048)
    for i in range(1434):  # 70% of 2048 slots, and one more
        cache.set_item(b"key:%d" % i, 0, 0, b"v")
    assert cache.arena.index_slots() == 4096 + 2048  # growing: both arrays live
    assert all(cache.get(b"key:%d" % i) is not None for i in range(1434))
