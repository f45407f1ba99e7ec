"""The slab arena: class sizes as memcached's, the flat index, eviction from the segmented LRU
(tests/test_lru_segments.py has its moves), chained large items, pages moving between classes
(at once, or cleared a slice at a time with their items rescued, kvshard.slab_mover's way).
Runs compiled and interpreted."""

from __future__ import annotations

import itertools
import random
import re
import shutil
import socket
import subprocess
import zlib

import pytest

from kvshard import slab_arena
from kvshard.slab_arena import HEADER, POOL, SlabArena, class_sizes, key_hash

ACTIVE = 16
PAGE = 1 << 20
VALUE = b"v" * 150  # with a 6-byte key: 204 bytes, a 240-byte chunk
KEY = b"k%05d"


def _memcached_classes(*args: str) -> list[tuple[int, int]]:
    """(chunk size, per slab) of every class a real memcached prints with -vv."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["memcached", "-vv", "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", *args],
        stderr=subprocess.PIPE, text=True,
    )
    lines = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "slab class" in line:
                lines.append(line)
            elif lines:
                break
    finally:
        proc.kill()
        proc.wait()
    return [(int(m[1]), int(m[2])) for m in (re.search(r"chunk size\s+(\d+) perslab\s+(\d+)", x) for x in lines) if m]


@pytest.mark.skipif(shutil.which("memcached") is None, reason="memcached not installed")
@pytest.mark.parametrize("min_chunk,factor", [(48, 1.25), (32, 1.5), (100, 2.0)])
def test_class_sizes_are_memcacheds(min_chunk: int, factor: float) -> None:
    theirs = _memcached_classes("-n", str(min_chunk), "-f", str(factor))
    assert theirs, "memcached -vv printed no slab classes"
    ours = [(size, PAGE // size) for size in class_sizes(min_chunk, factor)]
    assert ours == theirs


def test_key_hash_is_the_low_half_of_the_routing_mix() -> None:
    """The index hashes a key with the low 32 bits of the mix whose high 32 bits route it
    (kvshard.routing's docstring), computed here with Python's integers."""
    rng = random.Random(5)
    for key in [b"", b"a", b"foobar", b"\xff" * 64, *(rng.randbytes(rng.randrange(1, 260)) for _ in range(500))]:
        x = int.from_bytes(key, "little") % ((1 << 61) - 1)
        for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
            x ^= x >> 33
            x = x * multiplier & ((1 << 64) - 1)
        x ^= x >> 33
        assert key_hash(key) == x & 0xFFFFFFFF, key


def test_store_find_value_and_fields() -> None:
    arena = SlabArena(4 * PAGE)
    arena.now = 1000
    ref = arena.store(b"key", b"value", 7, 2000, 42, 8)
    assert ref and arena.find(b"key") == ref and arena.find(b"nope") == 0
    assert arena.key(ref) == b"key" and arena.value(ref) == b"value"
    assert (arena.flags(ref), arena.expire_at(ref), arena.cas(ref), arena.marks(ref), arena.atime(ref)) == (7, 2000, 42, 8, 1000)
    assert arena.clsid(ref) == arena.class_for(HEADER + 3 + 5) == 0
    arena.set_cas(ref, 2**64 - 1)
    arena.set_expire_at(ref, 5)
    arena.set_marks(ref, 24)
    assert (arena.cas(ref), arena.expire_at(ref), arena.marks(ref)) == (2**64 - 1, 5, 24)
    with pytest.raises(ValueError):
        arena.rewrite(ref, b"too long")
    arena.rewrite(ref, b"VALUE")
    assert arena.value(ref) == b"VALUE"
    again = arena.store(b"key", b"other value", 0, 0, 43)
    assert arena.find(b"key") == again and arena.value(again) == b"other value" and arena.count == 1
    arena.unlink(again)
    assert arena.find(b"key") == 0 and arena.count == 0 and arena.bytes == 0
    assert arena.store(b"k2", b"v", 0, 0, 1) and arena.bytes == HEADER + 3


def test_index_grows_incrementally_and_keeps_every_key() -> None:
    """Far past the first index size, with deletes while the old array is being drained:
    every live key is found at every step of the way, and no deleted one."""
    arena = SlabArena(64 * PAGE)
    live: dict[bytes, int] = {}
    rng = random.Random(7)
    for i in range(12000):
        key = b"k%d" % i
        live[key] = arena.store(key, b"%d" % i, 0, 0, i)
        if i % 3 == 0:
            victim = b"k%d" % rng.randrange(i + 1)
            if victim in live:
                arena.unlink(live.pop(victim))
        if i % 997 == 0:
            assert all(arena.find(k) == r for k, r in live.items())
    assert arena.count == len(live)
    assert all(arena.find(k) == r and arena.value(r) == k[1:] for k, r in live.items())
    assert arena.find(b"k-1") == 0
    assert sorted(arena.refs()) == sorted(live.values())


def test_an_index_growth_moves_a_run_of_slots_at_once() -> None:
    """The old array leaves a run of slots at a time (a run's tail can go without shifting
    anything back; its head cannot, the entries after it may have probed past it). Here 300
    keys share one home slot in the first index (1024 slots), so they form one long run; the
    growth's first store moves slots 0-63 across, then grow_index moves one slot (or run) a
    call, and after each call one of those keys is deleted by ref, whose index lookup moves
    nothing across: each is still found where grow_index left the arrays."""
    arena = SlabArena(64 * PAGE)
    keys = (b"c%d" % n for n in itertools.count())
    same_home = list(itertools.islice((k for k in keys if key_hash(k) & 1023 == 200), 300))
    refs = [arena.store(k, b"v", 0, 0, 1) for k in same_home]
    n = 0
    while arena.index_slots() == 1024:
        assert arena.store(b"f%d" % n, b"v", 0, 0, 1)
        n += 1
    while arena.grow_index(1) and refs:
        arena.unlink(refs.pop())  # (raises if the index lost it)
    assert not refs and arena.count == n


def test_index_churn_through_tombstones_and_rebuilds_keeps_every_key() -> None:
    """Deletions leave tombstones (or empty slots at a run's end), stores reuse them, and an
    array 70% taken moves to a new one, of the same size when tombstones were most of it.
    Random stores, replacements and deletions over keys of which a third share one home
    slot (long runs full of tombstones), checked against a dict: every live key is found,
    every deleted one is not, and the index does not keep growing while the live count
    stays put."""
    arena = SlabArena(64 * PAGE)
    keys = (b"c%d" % n for n in itertools.count())
    crowded = list(itertools.islice((k for k in keys if key_hash(k) & 255 == 17), 300))
    pool = crowded + [b"p%d" % i for i in range(600)]
    live: dict[bytes, int] = {}
    rng = random.Random(11)
    for step in range(60000):
        key = rng.choice(pool)
        if key in live and rng.random() < 0.5:
            arena.unlink(live.pop(key))
        elif len(live) < 500 or key in live:
            live[key] = arena.store(key, b"v%d" % step, 0, 0, step)
        if step % 4999 == 0:
            assert all(arena.find(k) == live.get(k, 0) for k in pool), step
    assert arena.count == len(live) and sorted(arena.refs()) == sorted(live.values())
    while arena.grow_index(1000):
        pass
    assert arena.index_slots() <= 2048  # 500 entries: 2048 slots keep them under 40%
    assert all(arena.find(k) == live.get(k, 0) for k in pool)


def test_an_index_full_of_tombstones_moves_to_an_array_of_the_same_size() -> None:
    """600 keys of one home slot form one run; deleting all but its last leaves 599
    tombstones (each deleted slot has an entry after it). 350 fresh keys, some in tombstones,
    then push entries and tombstones past 70% of the 1024 slots while entries fill under 40%: the index moves to a new array
    of 1024 slots, not 2048, and keeps every key."""
    arena = SlabArena(64 * PAGE)
    keys = (b"c%d" % n for n in itertools.count())
    same_home = list(itertools.islice((k for k in keys if key_hash(k) & 1023 == 300), 600))
    refs = [arena.store(k, b"v", 0, 0, 1) for k in same_home]
    assert arena.index_slots() == 1024
    for ref in refs[:-1]:
        arena.unlink(ref)
    live = {same_home[-1]: refs[-1]}
    for i in range(350):
        live[b"f%d" % i] = arena.store(b"f%d" % i, b"v", 0, 0, 1)
    while arena.grow_index(1000):
        pass
    assert arena.index_slots() == 1024
    assert all(arena.find(k) == r for k, r in live.items())
    assert not any(arena.find(k) for k in same_home[:-1])


def test_a_larger_limit_widens_the_index_refs_and_keeps_every_key() -> None:
    """Index slots carry a tag above the ref bits the limit needs; a limit that needs more ref
    bits retags every slot, also while the index is half way through growing."""
    arena = SlabArena(4 * PAGE)
    live: dict[bytes, int] = {}
    for i in range(1500):  # past the first index size: an old array is being drained
        key = b"k%d" % i
        live[key] = arena.store(key, b"v%d" % i, 0, 0, i)
    assert arena.set_limit(4096 * PAGE)
    assert all(arena.find(k) == r for k, r in live.items())
    for i in range(1500, 40000):  # more pages than the first limit's refs could name
        key = b"k%d" % i
        live[key] = arena.store(key, b"v%d" % i + bytes(2000), 0, 0, i)
        if i % 4 == 0:
            arena.unlink(live.pop(b"k%d" % (i // 4)))
    assert arena.pages_used > 4 + arena.class_count
    assert all(arena.find(k) == r and arena.value(r).rstrip(b"\0") == b"v" + k[1:] for k, r in live.items())
    assert arena.find(b"k400") == 0 and arena.count == len(live)


def test_fresh_pages_past_the_limit_widen_the_index_refs() -> None:
    """A class whose pages moved away gets a first page again past the limit, so fresh pages
    can go beyond the limit's plus one per class: the index's refs widen with them."""
    arena = SlabArena(2 * PAGE)
    small, big = arena.item_class(8, 10), arena.item_class(8, 5000)
    live: dict[bytes, int] = {}
    for round_ in range(3 * arena.class_count):
        key = b"r%d" % round_
        live[key] = arena.store(key, b"v%d" % round_, 0, 0, round_ + 1)
        while arena.class_pages(small):
            assert arena.move_page(small, big)
        live = {k: r for k, r in live.items() if arena.find(k) == r}  # a move drops what it held
    assert arena.pages_used > arena.page_count + arena.class_count
    for i in range(3000):
        key = b"k%d" % i
        live[key] = arena.store(key, b"w%d" % i, 0, 0, i + 1)
    assert all(arena.find(k) == r and arena.key(r) == k for k, r in live.items())


def test_a_full_class_evicts_its_oldest_inactive_item() -> None:
    """memcached's do_item_alloc_pull with no maintainer run: HOT's tail goes to WARM if ACTIVE
    (ACTIVE spent), else to COLD, whose tail is evicted."""
    arena = SlabArena(PAGE)  # one page: one class owns it
    value = b"x" * 100
    per_page = PAGE // class_sizes()[arena.class_for(HEADER + 6 + 100)]
    refs = [arena.store(b"k%05d" % i, value, 0, 0, i) for i in range(per_page)]
    assert all(refs) and arena.count == per_page
    arena.set_marks(refs[0], ACTIVE)  # hit twice: active
    arena.set_marks(refs[1], 8)  # hit once: only fetched
    assert arena.store(b"new00", value + b"y", 0, 0, 1)  # same class, arena full
    assert arena.find(b"k00000") == refs[0] and arena.marks(refs[0]) == 0  # moved to WARM, mark spent
    assert arena.find(b"k00001") == 0  # the least recent one that was not active went
    stats = {s["id"]: s for s in arena.class_stats()}[arena.clsid(refs[0]) + 1]
    assert (stats["evicted"], stats["moves_to_warm"], stats["moves_to_cold"], stats["number"]) == (1, 1, 1, per_page)
    assert (stats["number_hot"], stats["number_warm"], stats["direct_reclaims"]) == (per_page - 1, 1, 3)


def test_expired_tail_items_are_reclaimed_not_evicted() -> None:
    """A tail pull reclaims the run of expired items at the tail (up to 5), then stops at a
    live one: nothing is evicted while expired items make room."""
    arena = SlabArena(PAGE)
    arena.now = 100
    per_page = PAGE // class_sizes()[0]
    for i in range(per_page):
        assert arena.store(b"k%05d" % i, b"v", 0, 50 if i < 3 else 0, i)
    assert arena.store(b"fresh", b"v", 0, 0, 1)
    stats = arena.class_stats()[0]
    assert (stats["reclaimed"], stats["evicted"]) == (3, 0)
    assert not any(arena.find(b"k%05d" % i) for i in range(3)) and arena.find(b"k00003")


def test_large_items_are_chained_across_chunks() -> None:
    arena = SlabArena(8 * PAGE)
    big = random.Random(1).randbytes(1_000_000)
    assert arena.chunks_needed(3, len(big)) == 2  # 512 KiB chunks: the head and one link
    ref = arena.store(b"big", big, 1, 0, 9)
    assert ref and arena.value(ref) == big and arena.nbytes(ref) == len(big)
    used = sum(s["used_chunks"] for s in arena.class_stats())
    assert used == 2
    three = big + big[:200_000]
    ref3 = arena.store(b"big3", three, 0, 0, 10)
    assert arena.value(ref3) == three and arena.value(arena.find(b"big")) == big
    arena.unlink(ref3)
    arena.unlink(arena.find(b"big"))
    assert sum(s["used_chunks"] for s in arena.class_stats()) == 0
    assert arena.store(b"huge", bytes(9 * PAGE), 0, 0, 1) == 0  # larger than the arena


def test_a_page_moves_between_classes() -> None:
    """All memory went to small items; a page moved to the large class drops the small
    items on it (only those) and serves large ones; the class then evicts within itself."""
    arena = SlabArena(4 * PAGE)
    small = [arena.store(b"s%06d" % i, b"v" * 10, 0, 0, i) for i in range(4 * (PAGE // 96))]
    assert all(small) and arena.pages_used == 4
    small_class = arena.clsid(small[0])
    large_class = arena.class_for(HEADER + 8 + 5000)
    assert not arena.move_page(large_class, small_class)  # it has no page to give
    assert arena.move_page(small_class, large_class)
    assert arena.page_moves == 1 and arena.pages_used == 4
    survivors = [i for i in range(len(small)) if arena.find(b"s%06d" % i)]
    assert survivors == list(range(3 * (PAGE // 96)))  # the newest page went
    assert all(arena.value(arena.find(b"s%06d" % i)) == b"v" * 10 for i in survivors)
    value = b"L" * 5000
    per_page = PAGE // class_sizes()[large_class]
    for i in range(per_page + 20):
        assert arena.store(b"large%03d" % i, value, 0, 0, i)
    assert arena.pages_used == 4  # no page past the limit: the class had one
    assert [arena.find(b"large%03d" % i) != 0 for i in range(per_page + 20)] == [i >= 20 for i in range(per_page + 20)]
    assert arena.count == len(survivors) + per_page
    with pytest.raises(ValueError):
        arena.move_page(1, 1)


def test_a_class_first_page_is_granted_past_the_limit() -> None:
    arena = SlabArena(PAGE)
    assert arena.store(b"small", b"v", 0, 0, 1) and arena.pages_used == 1
    assert arena.store(b"large", b"L" * 5000, 0, 0, 2) and arena.pages_used == 2
    assert arena.value(arena.find(b"small")) == b"v"


def test_random_operations_never_serve_a_wrong_value() -> None:
    """A model dict beside a small arena under random sets (sizes from 1 byte to 700 KB),
    deletes, flushes and page moves: an item may be gone (evicted), never different; the counts add
    up."""
    rng = random.Random(11)
    arena = SlabArena(6 * PAGE)
    model: dict[bytes, bytes] = {}
    for step in range(3000):
        key = b"key%d" % rng.randrange(400)
        roll = rng.random()
        if roll < 0.7:
            size = rng.choice((1, 10, 100, 1000, 20_000, 300_000, 700_000)) + rng.randrange(50)
            _store(arena, model, key, ((b"%d:" % step) * (size // 6 + 1))[:size], step)
        elif roll < 0.9:
            _delete(arena, model, key)
        elif roll < 0.901:
            arena.flush()
            model.clear()
        elif roll < 0.93:
            owners = [st["id"] - 1 for st in arena.class_stats() if st["total_pages"]]
            src = rng.choice(owners)
            arena.move_page(src, rng.choice([c for c in range(arena.class_count) if c != src]))
        ref = arena.find(key)
        if ref:
            assert arena.value(ref) == model[key] and arena.key(ref) == key
        for gone in [k for k in model if not arena.find(k)]:
            del model[gone]  # evicted
        assert arena.count == len(model)
    stats = arena.class_stats()
    assert arena.page_moves > 0 and sum(s["evicted"] for s in stats) > 0  # both were exercised
    assert sum(s["number"] for s in stats) == arena.count
    assert arena.bytes == sum(arena.item_size(len(k), len(v), arena.flags(arena.find(k))) for k, v in model.items())
    for s in stats:
        assert s["used_chunks"] + s["free_chunks"] <= s["total_chunks"]
    assert all(zlib.crc32(arena.value(arena.find(k))) == zlib.crc32(v) for k, v in model.items())


def _store(arena: SlabArena, model: dict[bytes, bytes], key: bytes, value: bytes, step: int) -> None:
    """Store in the arena and the model (a refused store drops the old item from both)."""
    if arena.store(key, value, step, 0, step):
        model[key] = value
    else:
        model.pop(key, None)


def _delete(arena: SlabArena, model: dict[bytes, bytes], key: bytes) -> None:
    ref = arena.find(key)
    if ref:
        arena.unlink(ref)
    model.pop(key, None)


def test_compiled_when_built() -> None:
    """With the extension built (and KVSHARD_NO_EXTENSIONS unset) this is the C module."""
    from framework.extensions import extensions_disabled
    if extensions_disabled():
        assert slab_arena.__file__.endswith(".py")
    else:
        assert not slab_arena.__file__.endswith(".py")


def test_without_eviction_a_full_class_refuses() -> None:
    """memcached's -M: a store that would evict is refused; an expired tail item may still
    be reused."""
    arena = SlabArena(PAGE, evict=False)
    arena.now = 100
    per_page = PAGE // class_sizes()[0]
    for i in range(per_page):
        assert arena.store(b"k%05d" % i, b"v", 0, 50 if i == 0 else 0, i)
    assert arena.store(b"one-more", b"v", 0, 0, 1)  # the expired tail item made room
    assert arena.store(b"two-more", b"v", 0, 0, 2) == 0
    assert arena.count == per_page and arena.evictions == 0 and arena.find(b"k00001")


def test_the_evict_hook_sees_each_evicted_item_before_it_goes() -> None:
    arena = SlabArena(PAGE)
    per_page = PAGE // class_sizes()[0]
    seen: list[bytes] = []
    arena.evict_hook = lambda ref: seen.append(arena.key(ref))
    for i in range(per_page + 3):
        assert arena.store(b"k%05d" % i, b"v", 0, 0, i)
    assert seen == [b"k00000", b"k00001", b"k00002"] and arena.evictions == 3
    small = arena.clsid(arena.find(b"k00010"))
    assert arena.move_page(small, small + 5)  # every item on the page is evicted, and told
    assert len(seen) == 3 + per_page and arena.count == 0


# ----- clearing a page (kvshard.slab_mover) --------------------------------------------------


def _class_of(arena: SlabArena, key: bytes, value: bytes) -> int:
    return arena.class_for(HEADER + len(key) + len(value))


def _fill(arena: SlabArena, n: int, value: bytes = VALUE, start: int = 0) -> dict[bytes, bytes]:
    model = {}
    for i in range(start, start + n):
        key = KEY % i
        assert arena.store(key, value, i, 0, i + 1)
        model[key] = value
    return model


def _check(arena: SlabArena, model: dict[bytes, bytes]) -> None:
    """Every key of ``model`` is served with its value or is gone; the counts add up."""
    for key in [k for k in model if not arena.find(k)]:
        del model[key]
    for key, value in model.items():
        ref = arena.find(key)
        assert arena.key(ref) == key and arena.value(ref) == value
    stats = arena.class_stats()
    assert arena.count == len(model) == sum(s["number"] for s in stats)
    assert sorted(arena.refs()) == sorted(arena.find(k) for k in model)
    for s in stats:
        assert 0 <= s["used_chunks"] <= s["total_chunks"] and 0 <= s["free_chunks"]


def _clear(arena: SlabArena, cls: int, dst: int, budget: int = 100) -> None:
    arena.begin_clearing(cls)
    at = 0
    per_page = PAGE // arena.sizes[cls]
    while at < per_page:
        at = arena.clear_chunks(at, budget)
    arena.finish_clearing(dst)


def test_a_cleared_page_keeps_its_items_in_free_chunks_elsewhere() -> None:
    arena = SlabArena(8 * PAGE)
    cls = _class_of(arena, KEY % 0, VALUE)
    per_page = PAGE // arena.sizes[cls]
    model = _fill(arena, 3 * per_page)
    for i in range(1, 3 * per_page, 2):  # half of every page freed
        arena.unlink(arena.find(KEY % i))
        del model[KEY % i]
    oldest_keys = [KEY % i for i in range(0, per_page, 2)]  # the first page's items
    _clear(arena, cls, cls + 3)
    assert arena.rescues == len(oldest_keys) and arena.evictions_nomem == 0 and arena.count == len(model)
    _check(arena, model)
    assert len(model) == (3 * per_page + 1) // 2  # every item kept
    figures = {s["id"] - 1: s for s in arena.class_stats()}
    assert figures[cls]["total_pages"] == 2 and figures[cls]["used_chunks"] == len(model)
    assert figures[cls + 3]["total_pages"] == 1 and arena.pages_used == 3
    # the destination uses the page it got, without a new one
    other = b"w" * (arena.sizes[cls + 3] - HEADER - 6)
    assert arena.store(b"other1", other, 0, 0, 1) and arena.pages_used == 3
    assert arena.clsid(arena.find(b"other1")) == cls + 3
    # rescued items went to the head of their LRU: the first page's items are now the newest
    head = arena.lru_head(cls)
    assert arena.key(head) == oldest_keys[-1]


def test_without_free_chunks_the_page_items_are_dropped_as_evictions_nomem() -> None:
    arena = SlabArena(8 * PAGE)
    cls = _class_of(arena, KEY % 0, VALUE)
    per_page = PAGE // arena.sizes[cls]
    model = _fill(arena, 2 * per_page)
    _clear(arena, cls, POOL)
    assert (arena.rescues, arena.evictions_nomem) == (0, per_page)
    assert arena.evictions == 0  # (not counted as evictions, as in memcached)
    _check(arena, model)
    assert sorted(model) == [KEY % i for i in range(per_page, 2 * per_page)]
    assert arena.class_pages(POOL) == 1 and arena.class_pages(cls) == 1


def test_expired_items_on_the_page_are_dropped_uncounted() -> None:
    arena = SlabArena(8 * PAGE)
    arena.now = 1000
    cls = _class_of(arena, KEY % 0, VALUE)
    per_page = PAGE // arena.sizes[cls]
    for i in range(2 * per_page):
        assert arena.store(KEY % i, VALUE, 0, 500 if i < per_page else 0, i + 1)
    _clear(arena, cls, POOL)
    assert (arena.rescues, arena.evictions_nomem, arena.count) == (0, 0, per_page)


def test_a_pool_page_goes_to_a_class_that_needs_one_even_at_the_limit() -> None:
    arena = SlabArena(3 * PAGE)
    cls = _class_of(arena, KEY % 0, VALUE)
    per_page = PAGE // arena.sizes[cls]
    model = _fill(arena, 3 * per_page)
    assert arena.pages_used == 3 == arena.page_count
    for i in range(per_page):  # the first page emptied
        arena.unlink(arena.find(KEY % i))
        del model[KEY % i]
    _clear(arena, cls, POOL)
    assert arena.class_pages(POOL) == 1 and arena.rescues == 0
    big = b"B" * 5000
    big_class = _class_of(arena, b"big%04d" % 0, big)
    for i in range(2 * PAGE // arena.sizes[big_class]):
        assert arena.store(b"big%04d" % i, big, 0, 0, 1)
        model[b"big%04d" % i] = big
    # the pool's page, and no fresh one (not even as the class's first): at the limit, it evicts
    assert arena.class_pages(POOL) == 0 and arena.pages_used == 3
    assert arena.class_pages(big_class) == 1 and arena.evictions > 0
    _check(arena, model)


def test_a_pool_page_handed_to_a_class() -> None:
    arena = SlabArena(8 * PAGE)
    cls = _class_of(arena, KEY % 0, VALUE)
    _fill(arena, 2 * PAGE // arena.sizes[cls])
    assert not arena.give_pool_page(cls + 1)
    _clear(arena, cls, POOL)
    assert arena.give_pool_page(cls + 1) and arena.class_pages(cls + 1) == 1 and arena.class_pages(POOL) == 0


def test_chain_links_on_the_page_are_rescued() -> None:
    arena = SlabArena(16 * PAGE)
    largest = arena.class_count - 1
    rng = random.Random(3)
    model = {}
    for i in range(6):  # 700 KB values: a head and a link each, 12 chunks, 6 pages
        value = rng.randbytes(700_000)
        assert arena.store(b"big%d" % i, value, 0, 0, i + 1)
        model[b"big%d" % i] = value
    for i in (1, 3):
        arena.unlink(arena.find(b"big%d" % i))
        del model[b"big%d" % i]
    _clear(arena, largest, 0, budget=1)
    assert arena.evictions_nomem == 0 and arena.rescues + arena.chunk_rescues > 0
    _check(arena, model)


def test_requests_between_slices_never_see_a_wrong_value() -> None:
    """Sets, overwrites and deletes in the class being cleared (and others) between slices of
    a few chunks, with a model beside: every key read gives its value or is gone, the page
    ends empty and goes to the other class, the counts add up. (64 KiB pages: a few hundred
    chunks each.)"""
    rng = random.Random(5)
    page_size = 1 << 16
    for round_ in range(3):
        arena = SlabArena(6 * page_size, page_size=page_size)
        cls = _class_of(arena, KEY % 0, VALUE)
        per_page = page_size // arena.sizes[cls]
        model = _fill(arena, 3 * per_page)
        dst = cls + 2
        page = arena.begin_clearing(cls)
        at = 0
        step = 0
        while at < per_page:
            at = arena.clear_chunks(at, rng.choice((1, 7, 50)))
            for _ in range(rng.randrange(30)):
                step += 1
                key = KEY % rng.randrange(4 * per_page)
                roll = rng.random()
                if roll < 0.6:
                    _store(arena, model, key, (b"%d-%d" % (round_, step)).ljust(len(VALUE) - rng.randrange(20), b"."), step)
                elif roll < 0.9:
                    _delete(arena, model, key)
                else:
                    _store(arena, model, b"n%d" % step, b"x" * 300, step)
            _check(arena, model)
        start = (page + 1) * page_size
        assert not any(start <= arena.find(k) * 8 < start + page_size for k in model)  # nothing lives on it
        arena.finish_clearing(dst)
        _check(arena, model)
        assert arena.class_pages(dst) >= 1
        filler = b"d" * (arena.sizes[dst] - HEADER - 6)
        for i in range(page_size // arena.sizes[dst]):  # the destination fills its page
            assert arena.store(b"d%05d" % i, filler, 0, 0, i)
            model[b"d%05d" % i] = filler
        _check(arena, model)


def test_an_allocation_that_moves_a_page_leaves_the_one_being_cleared_alone() -> None:
    arena = SlabArena(2 * PAGE)
    cls = _class_of(arena, KEY % 0, VALUE)
    per_page = PAGE // arena.sizes[cls]
    _fill(arena, 2 * per_page)
    page = arena.begin_clearing(cls)
    assert arena.move_page(cls, cls + 1)  # the class's other page
    assert not arena.move_page(cls, cls + 1)  # only the one being cleared is left
    assert arena.clearing == page
    with pytest.raises(ValueError):
        arena.begin_clearing(cls)
