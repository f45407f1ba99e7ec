"""One shard's cache alone, with a fake clock."""

from __future__ import annotations

import pytest

from kvshard import cache as c
from kvshard.counters import CLASS_COUNTERS, GET_HITS
from kvshard.slab_arena import HEADER, class_sizes

SMALL_PAGE = 4096  # unit tests fill a page quickly


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make(limit: int = 1 << 20, shard: int = 0, shards: int = 1, page_size: int = 1 << 20) -> tuple[c.Cache, Clock]:
    clock = Clock()
    return c.Cache(limit, shard, shards, clock, page_size=page_size), clock


def per_page(key: bytes, value: bytes) -> int:
    """Items of this key and value size that one small page holds."""
    sizes = class_sizes(48, 1.25, SMALL_PAGE)
    return SMALL_PAGE // next(size for size in sizes if size >= HEADER + len(key) + len(value))


def test_storage_commands() -> None:
    cache, _ = make()
    assert cache.store(b"add", b"k", 1, 0, b"v") == c.STORED
    assert cache.store(b"add", b"k", 1, 0, b"w") == c.NOT_STORED
    assert cache.store(b"replace", b"nope", 0, 0, b"w") == c.NOT_STORED
    assert cache.store(b"append", b"k", 9, 0, b"+") == c.STORED
    assert cache.store(b"prepend", b"k", 9, 0, b"-") == c.STORED
    item = cache.get(b"k")
    assert item is not None and c.item_value(item) == b"-v+" and item[1] == 1  # flags kept
    assert cache.store(b"cas", b"k", 0, 0, b"x", item[3] + 1) == c.EXISTS
    assert cache.store(b"cas", b"k", 0, 0, b"x", item[3]) == c.STORED
    assert cache.store(b"cas", b"gone", 0, 0, b"x", 1) == c.NOT_FOUND
    assert cache.delete(b"k") == c.STORED and cache.delete(b"k") == c.NOT_FOUND
    assert cache.stats.cas_badval == 1 and cache.stats.cas_hits == 1


def test_without_cas_every_item_has_cas_zero_and_cas_never_matches() -> None:
    """-C: as memcached's, a stored, appended, incremented or meta-chosen CAS is 0; ``cas``
    answers EXISTS (the item is there) or NOT_FOUND; another store's CAS is dropped."""
    cache = c.Cache(1 << 20, 0, 1, Clock(), cas_enabled=False)
    assert cache.store(b"set", b"k", 0, 0, b"1") == c.STORED and cache.cas_of(b"k") == 0
    assert cache.arith(True, b"k", 1) == 2 and cache.cas_of(b"k") == 0
    assert cache.store(b"set", b"e", 0, 0, b"v", new_cas=77) == c.STORED and cache.cas_of(b"e") == 0
    assert cache.store(b"cas", b"k", 0, 0, b"x", 0) == c.EXISTS
    assert cache.store(b"cas", b"k", 0, 0, b"x", 5) == c.EXISTS
    assert cache.store(b"cas", b"none", 0, 0, b"x", 5) == c.NOT_FOUND
    assert cache.store(b"append", b"k", 0, 0, b"0", 5) == c.STORED  # a binary append's CAS is dropped
    assert cache.store(b"set", b"k", 0, 0, b"y", 5) == c.STORED
    assert (cache.stats.cas_badval, cache.stats.cas_misses, cache.stats.cas_hits) == (2, 1, 0)
    item = cache.peek(b"k")
    assert item is not None and cache.amend(b"k", item, cas=9)[3] == 0 and cache.new_cas() == 0


def test_a_cas_of_zero_never_matches() -> None:
    cache, _ = make()
    assert cache.store(b"set", b"k", 0, 0, b"1", new_cas=0) == c.STORED
    assert cache.store(b"cas", b"k", 0, 0, b"x", 0) == c.EXISTS


def test_cas_unique_across_shards() -> None:
    a, _ = make(shard=0, shards=2)
    b, _ = make(shard=1, shards=2)
    seen = set()
    for i in range(100):
        for cache in (a, b):
            cache.store(b"set", b"k%d" % i, 0, 0, b"v")
            item = cache.get(b"k%d" % i)
            assert item is not None and item[3] == cache.last_cas()  # (the binary set's reply)
            seen.add(item[3])
            assert cache.set_item(b"s%d" % i, 0, 0, b"v") == c.STORED and cache.last_cas() == cache.cas_of(b"s%d" % i)
            seen.add(cache.last_cas())
    assert len(seen) == 400
    off = c.Cache(1 << 20, 0, 1, Clock(), cas_enabled=False)
    assert off.set_item(b"k", 0, 0, b"v") == c.STORED and off.last_cas() == 0


def test_expiry_rules() -> None:
    cache, clock = make()
    cache.store(b"set", b"rel", 0, 10, b"v")
    cache.store(b"set", b"neg", 0, -1, b"v")
    cache.store(b"set", b"abs_past", 0, int(clock.now) - 5, b"v")
    cache.store(b"set", b"abs_future", 0, int(clock.now) + 100, b"v")
    cache.store(b"set", b"thirty_days", 0, c.RELATIVE_EXPTIME_LIMIT, b"v")
    cache.store(b"set", b"thirty_days_plus", 0, c.RELATIVE_EXPTIME_LIMIT + 1, b"v")
    assert cache.get(b"neg") is None and cache.get(b"abs_past") is None
    assert cache.get(b"thirty_days_plus") is None  # an absolute time in 1970
    assert cache.get(b"rel") and cache.get(b"abs_future") and cache.get(b"thirty_days")
    clock.now += 10
    assert cache.get(b"rel") is None
    clock.now += 100
    assert cache.get(b"abs_future") is None
    assert cache.stats.get_expired >= 3


def test_an_active_item_is_kept_and_an_item_read_once_is_not() -> None:
    """memcached's segmented LRU: a hit does not move an item; one hit twice (ACTIVE) that
    reaches HOT's tail goes to WARM instead of COLD, where the evictions are; one hit once
    (FETCHED) does not. Without the maintainer, WARM keeps it; its juggle then moves it to COLD
    (WARM is over its 40% of the class), and it goes in turn."""
    n = per_page(b"key-00000", b"x" * 100)
    cache, _ = make(limit=SMALL_PAGE, page_size=SMALL_PAGE)  # one page for this class
    for i in range(n):
        cache.store(b"set", b"key-%05d" % i, 0, 0, b"x" * 100)
    assert cache.get(b"key-00000") and cache.get(b"key-00000")  # hit twice: active
    assert cache.get(b"key-00001")  # hit once: only fetched
    cache.store(b"set", b"key-%05d" % n, 0, 0, b"x" * 100)
    assert cache.peek(b"key-00000") is not None  # moved to WARM, its ACTIVE mark spent
    assert cache.peek(b"key-00001") is None  # the oldest item that was not active went
    assert cache.stats.evictions == 1 and len(cache) == n
    assert cache.peek(b"key-00000")[6] & c.ACTIVE == 0
    for i in range(n + 1, 2 * n):  # evict key-00002 .. key-<n>, each through COLD
        cache.store(b"set", b"key-%05d" % i, 0, 0, b"x" * 100)
    assert cache.peek(b"key-00000") is not None and cache.stats.evictions == n
    cls = cache.arena.clsid(cache.arena.find(b"key-00000"))
    # the maintainer's juggle: HOT holds more than its 20% of the class, so its oldest go to
    # COLD; WARM's one item is under its 40% and not older than COLD's tail: it stays
    assert cache.arena.juggle(cls, 500) > 0
    figures = {f["id"]: f for f in cache.arena.class_stats()}[cls + 1]
    assert figures["number_warm"] == 1 and figures["number_cold"] > figures["number_hot"] > 0
    cache.store(b"set", b"key-last", 0, 0, b"x" * 100)  # COLD's tail goes: key-<n+1>
    assert cache.peek(b"key-00000") is not None and cache.stats.evictions == n + 1
    assert [cache.peek(b"key-%05d" % i) is not None for i in range(2, 2 * n)] == [i > n + 1 for i in range(2, 2 * n)]


def test_stats_count_evictions_and_tail_reclaims() -> None:
    cache, clock = make(limit=2 * SMALL_PAGE, page_size=SMALL_PAGE)
    n = 2 * per_page(b"k00", b"v")
    for i in range(n):
        cache.store(b"set", b"k%02d" % i, 0, 5 if i == 0 else 0, b"v")
    clock.now += 10
    cache.store(b"set", b"new", 0, 0, b"v")  # the tail item had expired: reclaimed
    cache.store(b"set", b"ne2", 0, 0, b"v")  # then one is evicted
    assert (cache.stats.reclaimed, cache.stats.evictions, cache.stats.total_items) == (1, 1, n + 2)


def test_item_bigger_than_memory() -> None:
    cache, _ = make(limit=1 << 20)
    cache.store(b"set", b"k", 0, 0, b"small")
    assert cache.store(b"set", b"k", 0, 0, b"x" * (3 << 20)) == c.NO_MEMORY
    assert cache.get(b"k") is None  # the old value does not survive a failed overwrite


def test_incr_decr_semantics() -> None:
    cache, _ = make()
    cache.store(b"set", b"n", 0, 0, b"10")
    assert cache.arith(False, b"n", 1) == 9
    item = cache.get(b"n")
    assert item is not None and c.item_value(item) == b"9 "  # length kept, space padded
    assert item[0] == b"VALUE n 0 2\r\n9 \r\n"
    assert cache.arith(True, b"n", 100) == 109
    assert c.item_value(cache.get(b"n")) == b"109"  # type: ignore[arg-type]
    cache.store(b"set", b"max", 0, 0, b"18446744073709551615")
    assert cache.arith(True, b"max", 2) == 1
    assert cache.arith(False, b"max", 5) == 0
    cache.store(b"set", b"lead", 0, 0, b" 12")
    assert cache.arith(True, b"lead", 1) == 13
    for bad in (b"abc", b"12a", b"", b"-5", b"99999999999999999999999"):
        cache.store(b"set", b"bad", 0, 0, bad)
        assert cache.arith(True, b"bad", 1) == c.NON_NUMERIC, bad
    assert cache.arith(True, b"missing", 1) is None
    cache.store(b"set", b"trail", 0, 0, b"7 junk")
    assert cache.arith(True, b"trail", 1) == 8  # strtoull stops at the blank


def test_touch_and_flush() -> None:
    cache, clock = make()
    cache.store(b"set", b"k", 0, 5, b"v")
    assert cache.touch(b"k", 100) is not None
    clock.now += 50
    assert cache.get(b"k") is not None
    assert cache.touch(b"missing", 1) is None
    cache.flush()
    assert len(cache) == 0 and cache.used == 0 and cache.get(b"k") is None


def test_get_block_is_the_rendered_item_and_its_tail() -> None:
    cache, _ = make(limit=8 << 20)
    for key, value, flags in ((b"small", b"v", 0), (b"empty", b"", 7), (b"big", bytes(range(256)) * 3000, 2**32 - 1)):
        assert cache.store(b"set", key, flags, 0, value) == c.STORED
        assert cache.get_block(key) == c.render(key, flags, value)[0]
        assert cache.get_block(key, b"END\r\n") == c.render(key, flags, value)[0] + b"END\r\n"
        assert cache.get(key)[0] == c.render(key, flags, value)[0]
    assert cache.get_block(b"missing", b"END\r\n") is None
    assert cache.stats.get_hits == 9 and cache.stats.get_misses == 1


def test_eviction_kinds_are_counted_and_survive_a_stats_reset() -> None:
    cache, clock = make(limit=2 * SMALL_PAGE, page_size=SMALL_PAGE)
    cache.arena.segmented = False  # flat: every item in COLD, evicted ACTIVE or not
    n = 2 * per_page(b"k00", b"v")
    for i in range(n):
        cache.store(b"set", b"k%02d" % i, 0, 5 if i == 0 else 0, b"v")
    for i in range(1, n):
        ref = cache.arena.find(b"k%02d" % i)
        cache.arena.set_marks(ref, c.FETCHED | c.ACTIVE)  # (a flat LRU's hits never set ACTIVE)
    clock.now += 10
    cache.store(b"set", b"new", 0, 0, b"v")  # k00 expired unfetched: reclaimed
    assert (cache.stats.expired_unfetched, cache.stats.evictions) == (1, 0)
    cache.stats.reset()
    cache.store(b"set", b"ne2", 0, 0, b"v")  # an ACTIVE item at COLD's tail goes
    assert (cache.stats.evicted_active, cache.stats.evicted_unfetched, cache.stats.evictions) == (1, 0, 1)
    assert cache.stats.expired_unfetched == 0


def test_commands_are_counted_in_the_class_of_their_item() -> None:
    cache, _ = make(limit=8 << 20)
    arena = cache.arena
    cache.store(b"set", b"small", 0, 0, b" " * 99 + b"5")
    cache.store(b"set", b"big", 0, 0, b"B" * 5000)
    small = arena.clsid(arena.find(b"small"))
    big = arena.clsid(arena.find(b"big"))
    assert cache.get(b"small") and cache.get(b"big") and cache.get(b"big") and cache.get(b"nope") is None
    assert cache.arith(True, b"small", 1) == 6 and cache.arith(False, b"small", 2) == 4
    cas = cache.cas_of(b"big")
    assert cache.store(b"cas", b"big", 0, 0, b"C" * 5000, cas + 1) == c.EXISTS
    assert cache.store(b"cas", b"big", 0, 0, b"C" * 5000, cas) == c.STORED
    assert cache.touch(b"small", 100) and cache.delete(b"big") == c.STORED
    counts = {cls: cache.stats.class_counts(cls) for cls in (small, big)}
    assert counts[small] == dict(get_hits=1, cmd_set=1, delete_hits=0, incr_hits=1, decr_hits=1, cas_hits=0,
                                 cas_badval=0, touch_hits=1)
    assert counts[big] == dict(get_hits=2, cmd_set=3, delete_hits=1, incr_hits=0, decr_hits=0, cas_hits=1,
                               cas_badval=1, touch_hits=0)
    totals = cache.counters()
    for name in CLASS_COUNTERS:
        assert totals[name] == counts[small][name] + counts[big][name] == getattr(cache.stats, name)
    assert cache.stats.total(GET_HITS) == 3
    cache.stats.reset()
    assert all(v == 0 for v in cache.stats.class_counts(big).values()) and cache.stats.get_hits == 0
    with pytest.raises(AttributeError):
        cache.stats.no_such_counter  # noqa: B018
    assert arena.sizes[small] < arena.sizes[big]
