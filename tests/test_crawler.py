"""The LRU crawler (kvshard.crawler), the arena walks (kvshard.item_dumps) and the arena's limit
changes, on one shard's cache with a fake clock and a real event loop."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest

from kvshard import cache as c
from kvshard import crawler as cr
from kvshard.item_dumps import CACHEDUMP_CAP, cachedump_lines, size_histogram
from kvshard.protocol.ascii import item_total_size
from kvshard.slab_arena import HEADER, PAGE_SIZE

from .test_cache import Clock

NOW = 1_700_000_000.0


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make(loop: asyncio.AbstractEventLoop, limit: int = 4 << 20, **options: Any) -> tuple[c.Cache, cr.LruCrawler, Clock]:
    clock = Clock()
    cache = c.Cache(limit, 0, 1, clock)
    return cache, cr.LruCrawler(cache, loop, clock=clock, **options), clock


def settle(loop: asyncio.AbstractEventLoop, worker: Any) -> int:
    """Run the loop until the crawler's run (or the slab mover's move) ends; returns the slices
    it took."""
    slices = 0
    while worker.running:
        loop.run_until_complete(asyncio.sleep(0.001))
        slices += 1
        assert slices < 10_000
    return slices


def test_autoexpire_reclaims_expired_items_nothing_touched(loop: asyncio.AbstractEventLoop) -> None:
    cache, crawler, clock = make(loop)
    for i in range(100):
        cache.store(b"set", b"k%d" % i, 0, 5, b"v")
    cache.store(b"set", b"k0", 0, 0, b"v")  # overwritten: no longer expires
    cache.store(b"set", b"keep", 0, 0, b"v")
    assert cache.get(b"k1") is not None  # fetched once: not counted as expired_unfetched
    crawler.tick()  # the class holds items and was never walked: due now
    settle(loop, crawler)
    assert len(cache) == 101 and cache.stats.crawler_reclaimed == 0
    cls = cache.arena.clsid(cache.arena.find(b"keep"))
    assert crawler.checked[cls] == 101
    clock.now += 6  # (the fake clock is the crawler's monotonic one too)
    crawler.tick()  # due again: the earliest expiry its walk saw has come
    settle(loop, crawler)
    assert len(cache) == 2 and cache.stats.crawler_reclaimed == 99 == crawler.reclaimed[cls]
    assert cache.stats.expired_unfetched == 98 and cache.stats.reclaimed == 0
    assert cache.used == sum(HEADER + len(k) + 1 for k in (b"k0", b"keep"))
    assert cache.stats.crawler_items_checked == 101 + 101 and cache.stats.lru_crawler_starts == 2
    figures = cache.arena.class_stats()[0]
    assert figures["expired_unfetched"] == 98 and figures["reclaimed"] == 0


def test_a_class_is_due_again_when_its_earliest_expiry_comes(loop: asyncio.AbstractEventLoop) -> None:
    cache, crawler, clock = make(loop)
    cache.store(b"set", b"soon", 0, 3, b"v")
    cache.store(b"set", b"never", 0, 0, b"v")
    crawler.tick()
    settle(loop, crawler)
    for _ in range(2):
        clock.now += 1
        crawler.tick()
        assert not crawler.running
    clock.now += 1.5
    crawler.tick()
    settle(loop, crawler)
    assert cache.stats.crawler_reclaimed == 1 and len(cache) == 1
    clock.now += cr.MAX_WAIT - 1  # only items without an expiry: next walk MAX_WAIT later
    crawler.tick()
    assert not crawler.running
    clock.now += 2
    crawler.tick()
    assert crawler.running


def test_work_is_sliced_and_a_moved_cursor_restarts_the_walk(loop: asyncio.AbstractEventLoop) -> None:
    cache, crawler, clock = make(loop, sleep_us=200_000)
    n = 2 * cr.ITEMS_PER_SLICE + 500
    for i in range(n):
        cache.store(b"set", b"k%d" % i, 0, 5, b"v")
    clock.now += 6
    assert crawler.start(cr.EXPIRE, [0]) is True
    loop.run_until_complete(asyncio.sleep(0.05))
    assert cache.stats.crawler_items_checked == cr.ITEMS_PER_SLICE  # one slice, then a pause of sleep_us
    cursor = crawler.cursor
    cache.arena.unlink(cursor)  # the next item to visit goes away between slices
    cache.store(b"set", b"fresh", 0, 5, b"v")  # ... and its chunk is reused by a live item
    assert cache.arena.find(b"fresh") == cursor
    settle(loop, crawler)
    assert len(cache) == 1 and cache.arena.find(b"fresh")
    assert cache.stats.crawler_reclaimed == n - 1 and cache.stats.crawler_items_checked == n


def test_client_runs_are_exclusive_and_an_autoexpire_run_gives_way(loop: asyncio.AbstractEventLoop) -> None:
    cache, crawler, clock = make(loop)
    for i in range(3000):
        cache.store(b"set", b"k%d" % i, 0, 0, b"v")
    crawler.tick()
    assert crawler.running
    dump = crawler.start(cr.METADUMP, [0])
    assert isinstance(dump, asyncio.Future)
    assert crawler.start(cr.EXPIRE, [0]) is None  # busy with a client's metadump
    lines = loop.run_until_complete(dump).splitlines()
    assert len(lines) == 3000 and not crawler.running
    assert crawler.start(cr.EXPIRE, [0]) is True
    settle(loop, crawler)


def test_metadump_lines_are_memcacheds(loop: asyncio.AbstractEventLoop) -> None:
    cache, crawler, clock = make(loop)
    cache.store(b"set", b"a key\x01", 7, 100, b"xyz")
    cache.store(b"set", b"gone", 0, 1, b"v")
    cache.get(b"a key\x01")
    cache.get(b"a key\x01")
    clock.now += 2
    ref = cache.arena.find(b"a key\x01")
    dump = crawler.start(cr.METADUMP, list(range(cache.arena.class_count)))
    text = loop.run_until_complete(dump)
    cas, atime = cache.arena.cas(ref), cache.arena.atime(ref)
    size = item_total_size(6, 7, 3)
    assert text == b"key=a%%20key%%01 exp=%d la=%d cas=%d fetch=yes cls=1 size=%d\n" % (
        int(NOW) + 100, atime, cas, size)
    assert cache.arena.find(b"gone")  # an expired item is skipped, not reclaimed, by a metadump


def test_disable_lets_a_run_finish_then_refuses(loop: asyncio.AbstractEventLoop) -> None:
    cache, crawler, clock = make(loop)
    for i in range(1500):
        cache.store(b"set", b"k%d" % i, 0, 0, b"v")
    assert crawler.start(cr.EXPIRE, [0]) is True
    crawler.disable()
    assert not crawler.enabled and crawler.running
    settle(loop, crawler)
    assert crawler.state == cr.DISABLED and cache.stats.crawler_items_checked == 1500
    assert crawler.start(cr.EXPIRE, [0]) is None
    crawler.tick()
    assert not crawler.running
    assert crawler.enable() and not crawler.enable()


def test_cachedump_lines_newest_first_within_limit_and_cap() -> None:
    cache, _ = c.Cache(4 << 20, 0, 1, Clock()), None
    cache.arena.segmented = False  # new items in COLD, the list memcached's cachedump reads
    cache.store(b"set", b"old", 0, 0, b"12345")
    cache.store(b"set", b"new", 0, 100, b"1")
    meta_binary = cache.create(b"bin", b"v", 0, marks=c.BINARY_KEY)
    assert meta_binary is not None
    arena = cache.arena
    assert cachedump_lines(arena, 0, 0) == [b"ITEM new [1 b; %d s]\r\n" % (int(NOW) + 100), b"ITEM old [5 b; 0 s]\r\n"]
    assert cachedump_lines(arena, 0, 1) == [b"ITEM new [1 b; %d s]\r\n" % (int(NOW) + 100)]
    assert cachedump_lines(arena, 5, 0) == []
    line = len(b"ITEM new [1 b; %d s]\r\n" % (int(NOW) + 100))
    assert cachedump_lines(arena, 0, 0, used=CACHEDUMP_CAP - 6 - line) == [b"ITEM new [1 b; %d s]\r\n" % (int(NOW) + 100)]
    assert cachedump_lines(arena, 0, 0, used=CACHEDUMP_CAP - 5 - line) == []


def test_size_histogram_counts_items_stored_since_a_cas() -> None:
    cache = c.Cache(4 << 20, 0, 1, Clock())
    cache.store(b"set", b"before", 0, 0, b"v")
    floor = cache.cas_floor()
    cache.store(b"set", b"k1", 0, 0, b"v" * 10)
    cache.store(b"set", b"k2", 5, 0, b"v" * 100)
    sizes = size_histogram(cache.arena, floor, 1 << 20)
    expected: dict[int, int] = {}
    for key, flags, n in ((b"k1", 0, 10), (b"k2", 5, 100)):
        bucket = (item_total_size(len(key), flags, n) + 31) // 32 * 32
        expected[bucket] = expected.get(bucket, 0) + 1
    assert sizes == expected
    assert size_histogram(cache.arena, floor, 96) == {}  # buckets past the largest are not kept


def test_a_lower_limit_stops_new_pages_and_stores_evict() -> None:
    cache = c.Cache(8 * PAGE_SIZE, 0, 1, Clock())
    value = b"v" * 900
    for i in range(3000):  # about 3 pages of one class
        assert cache.store(b"set", b"k%d" % i, 0, 0, value) == c.STORED
    pages = cache.arena.pages_used
    assert 2 <= pages < 8
    assert cache.set_limit(PAGE_SIZE) and cache.limit == PAGE_SIZE
    for i in range(3000, 6000):
        assert cache.store(b"set", b"k%d" % i, 0, 0, value) == c.STORED
    assert cache.arena.pages_used == pages and cache.stats.evictions > 0  # the pages stay, stores evict
    assert cache.set_limit(64 * PAGE_SIZE)
    for i in range(6000, 9000):
        cache.store(b"set", b"k%d" % i, 0, 0, value)
    assert cache.arena.pages_used > pages  # room again: new pages
    assert not cache.set_limit(1 << 62) and cache.limit == 64 * PAGE_SIZE  # past what the arena can map
