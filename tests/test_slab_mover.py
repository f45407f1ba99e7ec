"""Slab pages moving between classes: the mover's state machine and replies on one shard's cache
with a real event loop (kvshard.slab_mover), and memcached's automove algorithm
(kvshard.slab_automove). (The arena's page clearing is tests/test_slab_arena.py's.) Runs
compiled and interpreted (scripts/test.sh)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kvshard import cache as c
from kvshard import slab_mover as sm
from kvshard.slab_arena import HEADER, POOL, SlabArena
from kvshard.slab_automove import NO_MOVE, Automove

from .test_cache import Clock
from .test_crawler import loop, settle  # noqa: F401 (loop: the fixture)

PAGE = 1 << 20
VALUE = b"v" * 150  # with a 6-byte key: a chunk of the class below
KEY = b"k%05d"


def _class_of(arena: SlabArena, key: bytes, value: bytes) -> int:
    return arena.class_for(HEADER + len(key) + len(value))


# ----- the mover ------------------------------------------------------------------------------


def _mover(loop: asyncio.AbstractEventLoop, limit: int = 8 << 20, **settings: Any) -> tuple[c.Cache, sm.SlabMover]:
    cache = c.Cache(limit, 0, 1, Clock())
    return cache, sm.SlabMover(cache, loop, sm.MoverSettings(**settings))


def _cache_fill(cache: c.Cache, n: int, value: bytes = VALUE) -> int:
    for i in range(n):
        assert cache.store(b"set", KEY % i, 0, 0, value) == c.STORED
    return cache.arena.clsid(cache.arena.find(KEY % 0)) + 1  # memcached's class id


def test_reassign_answers_in_memcacheds_order(loop: asyncio.AbstractEventLoop) -> None:
    cache, mover = _mover(loop)
    largest = cache.arena.class_count
    assert mover.reassign(1, 1) == sm.SAME and mover.reassign(-1, -1) == sm.SAME
    assert mover.reassign(largest + 1, 1) == sm.BADCLASS and mover.reassign(1, -1) == sm.BADCLASS
    assert mover.reassign(-1, 1) == sm.BADCLASS  # no class has a page to spare
    assert mover.reassign(1, 2) == sm.NOSPARE and mover.reassign(0, 2) == sm.NOSPARE
    clsid = _cache_fill(cache, 3 * _per_page(cache) + 100)  # 4 pages, the last one mostly uncut
    assert mover.reassign(clsid, largest) == sm.OK and mover.running
    assert mover.reassign(clsid, 2) == sm.BUSY and mover.reassign(3, 3) == sm.BUSY  # BUSY first
    loop.run_until_complete(asyncio.sleep(0))  # one turn of the loop: a slice
    assert mover.running and cache.stats.slab_reassign_rescues + cache.stats.slab_reassign_evictions_nomem > 0
    settle(loop, mover)
    assert cache.stats.slabs_moved == 1 and cache.arena.class_pages(largest - 1) == 1
    stats = cache.stats
    assert stats.slab_reassign_rescues > 0 and stats.slab_reassign_evictions_nomem > 0  # (the uncut chunks)
    assert stats.slab_reassign_rescues + stats.slab_reassign_evictions_nomem == _per_page(cache)
    assert len(cache) == 3 * _per_page(cache) + 100 - stats.slab_reassign_evictions_nomem
    assert mover.reassign(clsid, 0) == sm.OK
    settle(loop, mover)
    assert cache.arena.class_pages(POOL) == 1 and mover.reassign(0, 5) == sm.NOSPARE  # the pool keeps one too
    cache.stats.reset()
    assert cache.stats.slabs_moved == 0 == cache.stats.slab_reassign_evictions_nomem


def _per_page(cache: c.Cache, value: bytes = VALUE) -> int:
    return PAGE // cache.arena.sizes[_class_of(cache.arena, KEY % 0, value)]


def test_any_source_is_the_next_class_with_a_page_to_spare(loop: asyncio.AbstractEventLoop) -> None:
    cache, mover = _mover(loop, limit=16 << 20)
    small = _cache_fill(cache, 2 * _per_page(cache, b"v"), b"v")
    for i in range(2 * _per_page(cache)):
        assert cache.store(b"set", b"b%05d" % i, 0, 0, VALUE) == c.STORED
    larger = cache.arena.clsid(cache.arena.find(b"b00000")) + 1
    picked = []
    for _ in range(2):
        before = {clsid: cache.arena.class_pages(clsid - 1) for clsid in (small, larger)}
        assert mover.reassign(-1, 30) == sm.OK
        settle(loop, mover)
        picked += [clsid for clsid in before if cache.arena.class_pages(clsid - 1) < before[clsid]]
    assert picked == [small, larger]  # in turn, from after the last one picked
    assert mover.reassign(-1, 30) == sm.BADCLASS  # every other class is down to one page
    assert cache.arena.class_pages(29) == 2 and mover.reassign(-1, small) == sm.OK  # 30 has one to spare


def test_a_pool_page_moves_to_a_class_at_the_next_turn(loop: asyncio.AbstractEventLoop) -> None:
    cache, mover = _mover(loop)
    clsid = _cache_fill(cache, 4 * _per_page(cache))
    for _ in range(2):
        assert mover.reassign(clsid, 0) == sm.OK
        settle(loop, mover)
    assert cache.arena.class_pages(POOL) == 2
    assert mover.reassign(0, 20) == sm.OK and mover.running
    settle(loop, mover)
    assert cache.arena.class_pages(POOL) == 1 and cache.arena.class_pages(19) == 1
    assert cache.stats.slabs_moved == 3


def test_without_reassignment_nothing_moves_on_its_own(loop: asyncio.AbstractEventLoop) -> None:
    cache, mover = _mover(loop, reassign=False, automove=2)
    _cache_fill(cache, 9 * _per_page(cache))  # evicts
    mover.tick()
    assert not mover.running and cache.stats.slabs_moved == 0


def test_automove_2_moves_a_page_to_a_class_that_evicts(loop: asyncio.AbstractEventLoop) -> None:
    cache, mover = _mover(loop, limit=4 << 20, automove=2)
    small = _cache_fill(cache, 4 * _per_page(cache, b"v") + 5, b"v")  # every page to the small class
    assert cache.stats.evictions == 5
    mover.tick()
    assert not mover.running  # the small class evicted, and no other class has a page to spare
    for i in range(3000):
        cache.store(b"set", b"big%05d" % i, 0, 0, b"B" * 2000)  # its first page, then evictions
    big = cache.arena.clsid(cache.arena.find(b"big02999")) + 1
    assert cache.arena.class_pages(big - 1) == 1
    mover.tick()
    assert mover.running
    settle(loop, mover)
    assert cache.arena.class_pages(big - 1) == 2 and cache.arena.class_pages(small - 1) < 4


def test_automove_1_gives_a_page_of_free_chunks_to_the_pool(loop: asyncio.AbstractEventLoop) -> None:
    cache, mover = _mover(loop, automove=1, window=3)
    n = 6 * _per_page(cache)
    clsid = _cache_fill(cache, n)
    for i in range(n):
        assert cache.delete(KEY % i) == c.STORED
    for _ in range(3):  # the window still has the run that saw the pages given
        mover.tick()
        assert not mover.running
    mover.tick()
    assert mover.running
    settle(loop, mover)  # and again at once after each move, while the class has pages of free chunks
    assert cache.arena.class_pages(POOL) == 4 and cache.arena.class_pages(clsid - 1) == 2
    assert cache.stats.slabs_moved == 4


def test_settings_from_options_apply_in_order() -> None:
    s = sm.settings_from_options([])
    assert (s.reassign, s.automove, s.ratio, s.window) == (True, 1, 0.8, 30)
    s = sm.settings_from_options([("no_slab_reassign", None), ("slab_automove", "2x"), ("slab_automove_ratio", "0.5"),
                                  ("slab_automove_window", "7")])
    assert (s.reassign, s.automove, s.ratio, s.window) == (False, 2, 0.5, 7)
    assert sm.settings_from_options([("slab_automove", None)]).automove == 1
    assert sm.settings_from_options([("slab_automove", "2"), ("no_slab_automove", None)]).automove == 0


def test_shards_answers_merge() -> None:
    assert sm.merge_reassign([sm.NOSPARE, sm.OK]) == b"OK\r\n"
    assert sm.merge_reassign([sm.BADCLASS, sm.BUSY]) == sm.REPLIES[sm.BUSY]
    assert sm.merge_reassign([sm.BADCLASS, sm.NOSPARE]) == sm.REPLIES[sm.NOSPARE]
    assert sm.merge_reassign([sm.SAME, sm.SAME]) == b"SAME src and dst class are identical\r\n"


# ----- the automove algorithm -------------------------------------------------------------------


def _figures(**by_id: dict[str, int]) -> list[dict[str, int]]:
    out = []
    for clsid in range(1, 6):
        f = {"id": clsid, "evicted": 0, "outofmemory": 0, "total_pages": 0, "total_chunks": 0, "used_chunks": 0,
             "age": 0, "chunks_per_page": 100}
        f.update(by_id.get(f"c{clsid}", {}))
        out.append(f)
    return out


def test_automove_frees_a_clean_class_with_pages_of_free_chunks() -> None:
    a = Automove(3, 0.8, _figures(c2={"total_pages": 4, "total_chunks": 400, "used_chunks": 100}))
    grown = _figures(c2={"total_pages": 5, "total_chunks": 500, "used_chunks": 100})
    assert a.run(grown) == NO_MOVE  # a page given this run: dirty
    assert a.run(grown) == NO_MOVE and a.run(grown) == NO_MOVE
    assert a.run(grown) == (2, 0)  # the dirty run left the window
    few_free = _figures(c2={"total_pages": 5, "total_chunks": 500, "used_chunks": 260})
    assert a.run(few_free) == NO_MOVE  # 240 free: not more than 2.5 pages' worth


def test_automove_moves_from_the_oldest_to_the_youngest_evicting_class() -> None:
    a = Automove(3, 0.8, _figures())
    evicted = 0
    decisions = []
    for _ in range(6):
        evicted += 10
        decisions.append(a.run(_figures(c1={"total_pages": 3, "total_chunks": 300, "used_chunks": 300, "age": 1000},
                                        c4={"total_pages": 1, "total_chunks": 100, "used_chunks": 100, "age": 10,
                                            "evicted": evicted})))
    assert decisions[:3] == [NO_MOVE] * 3  # the window fills first
    assert decisions[3:] == [(1, 4)] * 3
    # within the ratio: no move
    b = Automove(3, 0.8, _figures())
    for _ in range(5):
        evicted += 10
        decision = b.run(_figures(c1={"total_pages": 3, "total_chunks": 300, "used_chunks": 300, "age": 100},
                                  c4={"total_pages": 1, "total_chunks": 100, "used_chunks": 100, "age": 90,
                                      "evicted": evicted}))
    assert decision == NO_MOVE


