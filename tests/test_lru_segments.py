"""The segmented LRU (memcached 1.6's HOT/WARM/COLD/TEMP, kvshard.slab_arena) and its maintainer
(kvshard.lru_maintainer): each move by hand-made scenarios, the lists' bookkeeping against a
model under random operations. Runs compiled and interpreted."""

from __future__ import annotations

import asyncio
import random

import pytest

from kvshard import cache as c
from kvshard.lru_maintainer import IDLE, OFF, LruMaintainer, settings_from_options
from kvshard.protocol.ascii_admin import lru_change
from kvshard.slab_arena import COLD_LRU, EVICT, HOT_LRU, LRUS, POOL, TEMP_LRU, WARM_LRU, SlabArena

PAGE = 1 << 20
NOW = 1_700_000_000
LIST_NAMES = {HOT_LRU: "hot", WARM_LRU: "warm", COLD_LRU: "cold", TEMP_LRU: "temp"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def arena_with(n: int, **settings: object) -> tuple[SlabArena, list[int]]:
    """An arena at NOW holding ``n`` items k0000.. of one class (all in HOT unless settings say)."""
    arena = SlabArena(4 * PAGE)
    for name, value in settings.items():
        setattr(arena, name, value)
    arena.now = NOW
    refs = [arena.store(b"k%04d" % i, b"v" * 100, 0, 0, i + 1) for i in range(n)]
    assert all(refs)
    return arena, refs


def where(arena: SlabArena, ref: int) -> str:
    return LIST_NAMES[arena.list_of(ref) & TEMP_LRU]


def figures(arena: SlabArena, ref: int) -> dict[str, int]:
    return {f["id"]: f for f in arena.class_stats()}[arena.clsid(ref) + 1]


def walk(arena: SlabArena, lst: int) -> list[int]:
    """The refs on list ``lst``, head (newest) to tail, checking the links both ways."""
    out = []
    ref = arena.lru_head(lst)
    prev = 0
    while ref:
        assert arena.newer(ref) == prev
        out.append(ref)
        prev, ref = ref, arena.older(ref)
    assert arena.lru_tail(lst) == prev
    return out


# ----- where items enter ---------------------------------------------------------------------


def test_new_items_enter_hot_or_temp_or_cold_when_flat() -> None:
    arena, _ = arena_with(0, temp_lru=True, temporary_ttl=61)
    plain = arena.store(b"plain", b"v", 0, 0, 1)
    short = arena.store(b"short", b"v", 0, NOW + 61, 2)
    longer = arena.store(b"longer", b"v", 0, NOW + 62, 3)
    expired = arena.store(b"expired", b"v", 0, NOW - 5, 4)
    assert [where(arena, r) for r in (plain, short, longer, expired)] == ["hot", "temp", "hot", "hot"]
    arena.temp_lru = False
    assert where(arena, arena.store(b"short2", b"v", 0, NOW + 10, 5)) == "hot"
    arena.segmented = False
    assert where(arena, arena.store(b"flat", b"v", 0, 0, 6)) == "cold"
    stats = figures(arena, plain)
    assert (stats["number"], stats["number_hot"], stats["number_temp"], stats["number_cold"]) == (6, 4, 1, 1)


# ----- hits ------------------------------------------------------------------------------------


def test_a_hit_marks_fetched_then_active_and_a_cold_item_moves_to_warm() -> None:
    clock = Clock()
    cache = c.Cache(4 * PAGE, clock=clock)
    arena = cache.arena
    cache.store(b"set", b"key", 0, 0, b"v")
    ref = arena.find(b"key")
    arena.now = NOW
    assert arena.pull_tail(arena.clsid(ref) | HOT_LRU, 0, 0, 0) == 1 and where(arena, ref) == "cold"
    clock.now += 30
    assert cache.get(b"key")[6] & (c.FETCHED | c.ACTIVE) == c.FETCHED and where(arena, ref) == "cold"
    cache.get(b"key")  # the second hit: COLD -> WARM at once, ACTIVE spent, access time now
    assert where(arena, ref) == "warm" and arena.marks(ref) & c.ACTIVE == 0 and arena.atime(ref) == int(NOW) + 30
    clock.now += 30
    cache.get(b"key")  # FETCHED and in WARM: ACTIVE, access time now
    assert where(arena, ref) == "warm" and arena.marks(ref) & c.ACTIVE and arena.atime(ref) == int(NOW) + 60
    clock.now += 30
    cache.get(b"key")  # ACTIVE: nothing changes
    assert arena.atime(ref) == int(NOW) + 60
    stats = figures(arena, ref)
    assert (stats["hits_to_cold"], stats["hits_to_warm"], stats["hits_to_hot"]) == (2, 2, 0)
    assert (stats["moves_to_cold"], stats["moves_to_warm"]) == (1, 1)
    cache.touch(b"key", 100)  # touches and gats are not get hits (memcached counts them apart)
    assert figures(arena, ref)["hits_to_warm"] == 2


def test_a_flat_lru_relinks_a_hit_item_at_most_once_a_minute() -> None:
    clock = Clock()
    cache = c.Cache(4 * PAGE, clock=clock)
    arena = cache.arena
    arena.segmented = False
    for key in (b"a", b"b"):
        cache.store(b"set", key, 0, 0, b"v")
    a, b = arena.find(b"a"), arena.find(b"b")
    cls = arena.clsid(a) | COLD_LRU
    assert walk(arena, cls) == [b, a]
    cache.get(b"a")
    cache.get(b"a")
    assert walk(arena, cls) == [b, a] and arena.marks(a) == c.FETCHED  # flat: never ACTIVE
    clock.now += 61
    cache.get(b"a")
    assert walk(arena, cls) == [a, b] and arena.atime(a) == int(NOW) + 61


# ----- the tail pull ---------------------------------------------------------------------------


def test_hot_tail_goes_to_warm_if_active_to_cold_if_over_its_share_or_old_else_stays() -> None:
    arena, refs = arena_with(4)
    cls = arena.clsid(refs[0])
    arena.set_marks(refs[0], c.FETCHED | c.ACTIVE)
    total = 10 * figures(arena, refs[0])["mem_requested"]  # HOT holds 10%: under its 20%
    assert arena.pull_tail(cls | HOT_LRU, total, 0, 60) == 1  # ACTIVE: to WARM, mark spent, pull ends
    assert where(arena, refs[0]) == "warm" and arena.marks(refs[0]) == c.FETCHED
    assert arena.pull_tail(cls | HOT_LRU, total, 0, 60) == 0  # under its share and young: stays
    assert where(arena, refs[1]) == "hot"
    arena.now += 61
    assert arena.pull_tail(cls | HOT_LRU, total, 0, 60) == 1 and where(arena, refs[1]) == "cold"  # too old
    assert arena.pull_tail(cls | HOT_LRU, 0, 0, 1000) == 1 and where(arena, refs[2]) == "cold"  # over its share
    stats = figures(arena, refs[0])
    assert (stats["moves_to_warm"], stats["moves_to_cold"]) == (1, 2)


def test_warm_tail_active_items_move_within_warm_up_to_five_per_pull() -> None:
    arena, refs = arena_with(7)
    cls = arena.clsid(refs[0])
    for ref in refs:
        arena.set_marks(ref, c.FETCHED | c.ACTIVE)
        arena.pull_tail(cls | HOT_LRU, 0, 0, 0)  # each to WARM, ACTIVE spent
        arena.set_marks(ref, c.FETCHED | c.ACTIVE)
    assert walk(arena, cls | WARM_LRU) == refs[::-1]
    assert arena.pull_tail(cls | WARM_LRU, 10**9, 0, 10**6) == 5  # the tries' limit
    assert walk(arena, cls | WARM_LRU) == refs[:5][::-1] + refs[5:][::-1]  # relinked at the head, in turn
    assert figures(arena, refs[0])["moves_within_lru"] == 5
    assert arena.pull_tail(cls | WARM_LRU, 10**9, 0, 10**6) == 2  # the last two, then k0000 stays
    assert arena.pull_tail(cls | WARM_LRU, 0, 0, 10**6) == 1 and where(arena, refs[0]) == "cold"  # over its share


def test_cold_tail_evicted_with_evict_else_moved_to_warm_if_active() -> None:
    arena, refs = arena_with(3)
    cls = arena.clsid(refs[0])
    for _ in refs:
        arena.pull_tail(cls | HOT_LRU, 0, 0, 0)
    arena.set_marks(refs[0], c.FETCHED | c.ACTIVE)
    assert arena.pull_tail(cls | COLD_LRU, 0, 0, 0) == 1 and where(arena, refs[0]) == "warm"
    assert arena.pull_tail(cls | COLD_LRU, 0, 0, 0) == 0  # not ACTIVE, no EVICT: stays
    arena.set_marks(refs[1], c.ACTIVE)
    arena.evict = False  # -M
    assert arena.pull_tail(cls | COLD_LRU, 0, EVICT, 0) == 0 and arena.find(b"k0001")
    arena.evict = True
    assert arena.pull_tail(cls | COLD_LRU, 0, EVICT, 0) == 1 and not arena.find(b"k0001")  # ACTIVE or not
    stats = figures(arena, refs[2])
    assert (stats["evicted"], stats["evicted_active"], stats["evicted_unfetched"]) == (1, 1, 1)


def test_expired_tail_items_are_reclaimed_and_temp_only_reclaims() -> None:
    arena, _ = arena_with(0, temp_lru=True, temporary_ttl=61)
    temp = [arena.store(b"t%d" % i, b"v", 0, NOW + 10, i + 1) for i in range(8)]
    assert all(where(arena, r) == "temp" for r in temp)
    cls = arena.clsid(temp[0])
    arena.set_marks(temp[7], c.FETCHED | c.ACTIVE)
    assert arena.pull_tail(cls | TEMP_LRU, 0, EVICT, 0) == 0  # live: never evicted nor moved
    arena.now = NOW + 11
    assert arena.pull_tail(cls | TEMP_LRU, 0, 0, 0) == 5  # expired: reclaimed, five per pull
    assert arena.juggle(cls, 500) == 1 and arena.count == 0
    assert figures(arena, temp[0])["reclaimed"] == 8


def test_temp_items_are_not_bumped_and_a_class_of_them_refuses_new_items() -> None:
    clock = Clock()
    cache = c.Cache(PAGE, clock=clock)
    arena = cache.arena
    arena.temp_lru = True
    n = 0
    while cache.store(b"set", b"t%05d" % n, 0, 30, b"v" * 100) == c.STORED and n < 100_000:
        n += 1
    assert 0 < n < 100_000 and cache.stats.store_no_memory == 1  # TEMP items are never evicted
    cache.get(b"t00000")
    cache.get(b"t00000")
    ref = arena.find(b"t00000")
    assert where(arena, ref) == "temp" and arena.marks(ref) & c.ACTIVE
    assert figures(arena, ref)["outofmemory"] == 1 and figures(arena, ref)["hits_to_temp"] == 2


# ----- the juggle and allocation -------------------------------------------------------------------


def test_juggle_limits_hot_and_warm_by_age_factor_of_the_cold_tail() -> None:
    arena, refs = arena_with(10)
    cls = arena.clsid(refs[0])
    for ref in refs[:5]:  # the five oldest to COLD, each 100 s old
        arena.pull_tail(cls | HOT_LRU, 0, 0, 0)
        arena.set_atime(ref, int(NOW) - 100)
    for ref in refs[5:8]:  # HOT: three 30 s old, two new (HOT is 50% of the class: over its 20%)
        arena.set_atime(ref, int(NOW) - 30)
    arena.hot_pct = 60  # (so only the age limit moves them: 100 s * 0.2 = 20 s)
    assert arena.juggle(cls, 500) == 3
    assert [where(arena, r) for r in refs] == ["cold"] * 8 + ["hot"] * 2
    arena.hot_factor = 0.0  # any HOT item a second old goes
    arena.now += 1
    assert arena.juggle(cls, 1) == 1  # the budget: one round
    arena.segmented = False  # flat: HOT and WARM drain into COLD whatever their age
    arena.hot_factor = 0.2
    assert arena.juggle(cls, 500) == 1 and figures(arena, refs[0])["number_cold"] == 10


def test_allocation_pulls_hot_when_cold_is_empty_and_counts_its_rounds() -> None:
    arena = SlabArena(PAGE)
    arena.now = NOW
    n = 0
    while figures_or_none(arena) is None or figures_or_none(arena)["evicted"] == 0:
        assert arena.store(b"k%06d" % n, b"v" * 100, 0, 0, n + 1)
        n += 1
    stats = figures_or_none(arena)
    assert stats is not None
    assert (stats["evicted"], stats["moves_to_cold"], stats["direct_reclaims"]) == (1, 1, 2)
    assert not arena.find(b"k000000") and arena.find(b"k000001")


def figures_or_none(arena: SlabArena) -> dict[str, int] | None:
    stats = [f for f in arena.class_stats() if f["number"]]
    return stats[0] if stats else None


def test_lists_match_a_model_under_random_operations() -> None:
    """Random stores (some short TTLs for TEMP), deletes, hits, juggles, pulls, time passing and
    mode switches on a small arena: every list holds exactly the items whose list byte names
    it, linked both ways; the per-list counts add up to the class's; no value is ever wrong."""
    rng = random.Random(18)
    clock = Clock()
    cache = c.Cache(3 * PAGE, clock=clock)
    arena = cache.arena
    model: dict[bytes, bytes] = {}
    for step in range(4000):
        key = b"key%d" % rng.randrange(3000)
        roll = rng.random()
        if roll < 0.5:
            value = b"%d" % step * rng.choice((1, 30, 300))
            if cache.store(b"set", key, 0, rng.choice((0, 0, 0, 5, 100)), value) == c.STORED:
                model[key] = value
            else:
                model.pop(key, None)
        elif roll < 0.55:
            cache.delete(key)
            model.pop(key, None)
        elif roll < 0.9:
            got = cache.get(key)
            if got is not None:
                assert c.item_value(got) == model[key]
        elif roll < 0.95:
            arena.now = clock()
            arena.juggle(rng.randrange(arena.class_count), rng.choice((1, 500)))
        elif roll < 0.97:
            clock.now += rng.choice((1, 10, 100))
        elif roll < 0.975:
            arena.segmented = not arena.segmented
        elif roll < 0.98:
            arena.temp_lru = not arena.temp_lru
        for gone in [k for k in model if not arena.find(k)]:
            del model[gone]
    assert arena.count == len(model)
    seen = set()
    for stats in arena.class_stats():
        cls = stats["id"] - 1
        on_lists = 0
        for lru in LRUS:
            refs = walk(arena, cls | lru)
            assert all(arena.list_of(r) == cls | lru for r in refs)
            assert stats["number_" + LIST_NAMES[lru]] == len(refs) == arena.list_items(cls | lru)
            on_lists += len(refs)
            seen.update(refs)
        assert on_lists == stats["number"]
    assert len(seen) == arena.count
    clock.now += 1000
    cache.flush()
    assert arena.count == 0 and all(f["number"] == 0 for f in arena.class_stats())


def test_batched_juggles_leave_everything_as_memcacheds_rounds_do() -> None:
    """A juggle moves a run of HOT (or WARM) tail items bound for COLD in one splice and skips
    COLD pulls that would find nothing (``batch_pulls``); with it off, each round is
    memcached's pulls literally. The same random stores (some expiring), hits, deletes, time
    and juggles of every budget on two caches: each juggle returns the same, and every list
    holds the same items in the same order, with the same per-class figures."""
    rng = random.Random(17)
    clocks = (Clock(), Clock())
    caches = [c.Cache(2 * PAGE, clock=clock) for clock in clocks]
    caches[1].arena.batch_pulls = False
    runs = 0
    for step in range(6000):
        key = b"key%d" % rng.randrange(4000)
        roll = rng.random()
        value = b"%d" % step * rng.choice((1, 30))
        ttl = rng.choice((0, 0, 0, 2, 30))
        budget = rng.choice((1, 2, 7, 500))
        cls = rng.randrange(3) if step % 2 else 0
        hot_pct = rng.choice((0, 10, 20, 90))  # (90: the age rule moves most)
        tick = rng.choice((1, 5, 60))
        for cache in caches:
            arena = cache.arena
            if roll < 0.4:
                cache.store(b"set", key, 0, ttl, value)
            elif roll < 0.43:
                cache.delete(key)
            elif roll < 0.9:
                cache.get(key)
            elif roll < 0.97:
                arena.now = cache.now()
                before = arena.lru_totals()["moves_to_cold"]
                done = arena.juggle(cls, budget)
                if cache is caches[0]:
                    first_done = done
                    runs += arena.lru_totals()["moves_to_cold"] - before > 1
                else:
                    assert done == first_done, step
            elif roll < 0.99:
                pass
            else:
                arena.hot_pct = hot_pct
        if 0.97 <= roll < 0.99:
            for clock in clocks:
                clock.now += tick
    assert runs > 20  # (runs of several items went to COLD in one juggle)
    a, b = (cache.arena for cache in caches)
    assert a.class_stats() == b.class_stats() and a.lru_totals() == b.lru_totals()
    for cls in range(a.class_count):
        for lru in LRUS:
            assert [a.key(r) for r in walk(a, cls | lru)] == [b.key(r) for r in walk(b, cls | lru)], (cls, lru)


# ----- the maintainer -------------------------------------------------------------------------------


def test_maintainer_moves_items_from_the_event_loop_and_backs_off() -> None:
    loop = asyncio.new_event_loop()
    try:
        clock = Clock()
        cache = c.Cache(8 * PAGE, clock=clock)
        maintainer = LruMaintainer(cache, loop, temporary_ttl=61, hot_pct=10)
        assert maintainer.state == IDLE and cache.arena.temp_lru and cache.arena.temporary_ttl == 61
        for i in range(2000):
            cache.store(b"set", b"k%05d" % i, 0, 0, b"v" * 100)
        cls = cache.arena.clsid(cache.arena.find(b"k00000"))
        maintainer.start()
        loop.run_until_complete(asyncio.sleep(0.05))
        stats = figures(cache.arena, cache.arena.find(b"k01999"))
        for _ in range(40):  # (a loaded machine gives the loop fewer turns in 50 ms: wait on)
            if stats["number_hot"] * 100 <= 11 * stats["number"]:
                break
            loop.run_until_complete(asyncio.sleep(0.05))
            stats = figures(cache.arena, cache.arena.find(b"k01999"))
        assert maintainer.juggles >= 2 and stats["moves_to_cold"] > 0
        assert stats["number_hot"] * 100 <= 11 * stats["number"]  # HOT is down to its 10%
        idle = next(c for c in range(cache.arena.class_count) if c != cls)
        assert maintainer._backoff[idle] > 0.001  # classes with nothing to do wait longer and longer
        maintainer.close()
    finally:
        loop.close()


def test_settings_from_memcacheds_options() -> None:
    assert settings_from_options({}) == {"running": True, "segmented": True}
    assert settings_from_options({"no_lru_maintainer": None}) == {"running": False, "segmented": False}
    assert settings_from_options({"no_modern": None}) == {"running": True, "segmented": False}
    got = settings_from_options({"hot_lru_pct": "10", "warm_lru_pct": "30", "hot_max_factor": "0.5",
                                 "warm_max_factor": "3", "temporary_ttl": "30"})
    assert got == {"running": True, "segmented": True, "hot_pct": 10, "warm_pct": 30, "hot_factor": 0.5,
                   "warm_factor": 3.0, "temporary_ttl": 30}
    loop = asyncio.new_event_loop()
    try:
        cache = c.Cache(PAGE)
        off = LruMaintainer(cache, loop, **settings_from_options({"no_lru_maintainer": None}))
        assert off.state == OFF and not cache.arena.segmented
        assert dict(off.settings())["lru_maintainer_thread"] == "no"
    finally:
        loop.close()


@pytest.mark.parametrize("line, running, change", [
    (b"lru tune 10 30 0.1 2.5", True, ("tune", (10, 30, 0.1, 2.5))),
    (b"lru tune 10 30 0.1 2.5", False, ("tune", (10, 30, 0.1, 2.5))),  # memcached stores them either way
    (b"lru tune 50 40 0.1 2", True, b"ERROR hot and warm pcts must not exceed 80\r\n"),
    (b"lru tune 10 20 0 2", True, b"ERROR hot/warm age factors must be greater than 0\r\n"),
    (b"lru tune 10 20 0.1", True, b"ERROR\r\n"),
    (b"lru mode flat", True, ("mode", (False,))),
    (b"lru mode segmented noreply", True, ("mode", (True,))),
    (b"lru mode flat", False, b"ERROR\r\n"),
    (b"lru mode flat noreply", False, b""),
    (b"lru mode bogus", True, b"ERROR\r\n"),
    (b"lru temp_ttl 30", True, ("temp_ttl", (30,))),
    (b"lru temp_ttl -1", True, ("temp_ttl", (-1,))),
    (b"lru temp_ttl abc", True, b"ERROR\r\n"),
    (b"lru temp_ttl 30", False, b"ERROR\r\n"),
    (b"lru", True, b"ERROR\r\n"),
])
def test_lru_commands_are_checked_as_memcached_checks_them(line: bytes, running: bool, change: object) -> None:
    assert lru_change(line.split(), running) == change


# ----- page moves (kvshard.slab_mover) -------------------------------------------------------


def test_a_rescued_item_stays_on_its_list_and_its_hits_count_in_its_class() -> None:
    """Clearing a page copies each item to a chunk elsewhere: the copy goes to the head of the
    list the item was on (HOT, WARM or COLD: its LIST byte, not its class), the lists' counts
    stay right; the class's get_hits are its hits_to_* summed (kvshard.counters)."""
    probe = SlabArena(4 * PAGE)
    per_page = PAGE // probe.sizes[probe.item_class(5, 100)]
    arena, refs = arena_with(2 * per_page)
    cls = arena.clsid(refs[0])
    for _ in range(per_page // 5):  # HOT holds all the class's bytes: its oldest go to COLD
        arena.pull_tail(cls | HOT_LRU, 0, 0, 0)
    cold = [r for r in refs[:per_page] if arena.list_of(r) == cls | COLD_LRU]
    assert len(cold) > 10
    for ref in cold[:5]:  # hit twice in COLD: to WARM
        arena.activate(ref, int(NOW))
        arena.activate(ref, int(NOW))
        arena.count_hit(ref)
    assert all(where(arena, r) == "warm" for r in cold[:5])
    lists_before = {arena.key(r): where(arena, r) for r in refs[:per_page]}
    for ref in refs[per_page + 1::2]:  # free chunks off the first page
        arena.unlink(ref)
    arena.begin_clearing(cls)
    at = 0
    while at < per_page:
        at = arena.clear_chunks(at, 7)
    arena.finish_clearing(POOL)
    assert arena.rescues > 0
    assert {name for key, name in lists_before.items() if arena.find(key)} == {"hot", "warm", "cold"}
    for key, name in lists_before.items():
        ref = arena.find(key)
        if ref:
            assert where(arena, ref) == name and arena.clsid(ref) == cls
    numbers = figures(arena, arena.find(b"k%04d" % per_page))
    for lru, name in ((HOT_LRU, "hot"), (WARM_LRU, "warm"), (COLD_LRU, "cold")):
        assert len(walk(arena, cls | lru)) == arena.list_items(cls | lru) == numbers["number_" + name]
    assert numbers["number"] == arena.count
    assert arena.class_hits(cls) == 5 == arena.total_hits() == numbers["hits_to_warm"] + numbers["hits_to_cold"]
    arena.reset_hits()
    assert arena.class_hits(cls) == 0 and arena.class_hits(99) == 0
