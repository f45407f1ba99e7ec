"""The slab arena: class sizes as memcached's, the flat index, eviction from the segmented LRU
(tests/test_lru_segments.py has its moves), chained large items, pages moving between classes.
Runs compiled and interpreted."""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import zlib

import pytest

from kvshard import slab_arena
from kvshard.slab_arena import HEADER, SlabArena, class_sizes, key_hash

ACTIVE = 16
PAGE = 1 << 20


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


def test_key_hash_is_fnv1a() -> None:
    assert key_hash(b"") == 0x811C9DC5
    assert key_hash(b"a") == 0xE40C292C  # published FNV-1a 32 test vectors
    assert key_hash(b"foobar") == 0xBF9CF968


def test_store_find_value_and_fields() -> None:
    arena = SlabArena(4 * PAGE)
    arena.now = 1000
    ref = arena.store(b"key", b"value", 7, 2000, 42, 8)
    assert ref and arena.find(b"key") == ref and arena.find(b"nope") == 0
    assert arena.key(ref) == b"key" and arena.value(ref) == b"value"
    assert (arena.flags(ref), arena.expire_at(ref), arena.cas(ref), arena.marks(ref), arena.atime(ref)) == (7, 2000, 42, 8, 1000)
    assert arena.clsid(ref) == arena.class_for(HEADER + 3 + 5) == 0
    arena.set_cas(ref, 2**64 - 1)
    arena.set_expire_at(ref, 5.5)
    arena.set_marks(ref, 24)
    assert (arena.cas(ref), arena.expire_at(ref), arena.marks(ref)) == (2**64 - 1, 5.5, 24)
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
            value = (b"%d:" % step) * (size // 6 + 1)
            if arena.store(key, value[:size], step, 0, step):
                model[key] = value[:size]
            else:
                model.pop(key, None)
        elif roll < 0.9:
            ref = arena.find(key)
            if ref:
                arena.unlink(ref)
            model.pop(key, None)
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
    assert arena.bytes == sum(HEADER + len(k) + len(v) for k, v in model.items())
    for s in stats:
        assert s["used_chunks"] + s["free_chunks"] <= s["total_chunks"]
    assert all(zlib.crc32(arena.value(arena.find(k))) == zlib.crc32(v) for k, v in model.items())


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
