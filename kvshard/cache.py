"""One shard's share of the cache: items, LRU eviction, expiry, CAS, counters.

Theory of operation
-------------------
Each shard owns one :class:`Cache`; only that shard's thread touches it, so there are no locks.
Items live in a :class:`~kvshard.slab_arena.SlabArena`: chunks of an mmap carved into slab
classes, a flat index, no Python object per item, and memcached 1.6's segmented LRU per class
(HOT, WARM, COLD, TEMP; the arena's docstring has its rules, kvshard.lru_maintainer moves items
between the lists). A hit does not move an item, it only marks it (see ``marks`` below), but
for a COLD item becoming ACTIVE, which moves to WARM; the arena evicts from COLD's tail. So a
scan of keys read once pushes out other keys read once, not the ones in steady use, and a hit
costs no relinking.

The cache hands items to the protocol layers as the tuple
``(block, flags, expire_at, cas, header_len, seen, marks)``, built from the arena on each
access (:meth:`Cache.get_block` skips the tuple for the commonest reply):
  * ``block`` is the item rendered as the ASCII protocol's answer to ``get``,
    ``VALUE <key> <flags> <bytes>\r\n<data>\r\n``; the data is ``block[header_len:-2]``
    (:func:`item_value`), which the commands that change a value (append, incr, ...) and
    other protocols slice out;
  * ``expire_at`` is 0 (never) or the Unix second the item expires at: memcached's clock is
    whole seconds too, and an item is gone once that second has begun (``expire_at <= now``,
    memcached's ``exptime <= current_time``). memcached's rules turn the protocol's exptime
    into it (:meth:`Cache.expire_at`): 0 never, negative already expired, up to 30 days
    relative to the current second, larger an absolute Unix time.
  * ``cas`` is unique across shards: ``counter * shard_count + shard_id`` (unless a meta
    command's ``E`` chose it);
  * ``seen`` is the Unix second the item was stored or last became active, ``marks`` a set
    of bits (:data:`FETCHED`, :data:`ACTIVE`, :data:`STALE`, :data:`WIN_SENT`,
    :data:`BINARY_KEY`). They follow memcached's segmented LRU, which the meta commands
    show (``mg h l``, ``me``): the first hit only marks an item FETCHED; the next makes it
    ACTIVE and sets ``seen`` to now (a COLD item moves to WARM instead); a hit on an ACTIVE
    item changes nothing until the maintainer clears the mark at a HOT or WARM tail. So a hit
    checks one mark before doing any of that, and counts one integer of its list (hits_to_*).
    With the LRU flat (``lru mode flat``) a hit marks FETCHED and relinks the item at most
    once a minute, as memcached's.

Memory: ``limit`` (the shard's share of ``-m``) is the arena's size in pages; ``used`` is
memcached's ``bytes``, header + key + value of every item. An item that cannot fit in the
arena at all is refused (``SERVER_ERROR out of memory storing object``), and so is any store
that would need an eviction when ``evict`` is off (``-M``).

Expiry is lazy (an expired item found by a command is removed then); the shard's LRU crawler
(kvshard.crawler) walks the arena's LRUs in the background and reclaims the expired items no
command meets, as memcached's does. The cache keeps no list of expiries for it.

``flush_all`` clears everything now; with a delay the server calls :meth:`Cache.flush` when
the delay has passed (memcached's semantics: items stored before that moment are gone).

``watch`` (kvshard.watchers): while some connection watches, ``watch_flags`` is not 0 and the
lookups, stores and evictions memcached logs are told to ``watch_log`` (the shard's hub): a
lookup wherever memcached's ``do_item_get`` runs (a ``set`` looks up the old item too), a
store's result, an eviction (through the arena's ``evict_hook``, set only while evictions are
watched). Otherwise one integer test is all they cost.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Final

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

from .counters import (
    CAS_BADVAL, CAS_HITS, CLASS_SLOTS, CMD_SET, DECR_HITS, DELETE_HITS, INCR_HITS, TOUCH_HITS, CacheCounters,
)
from .protocol.ascii import value_line
from .packed_blocks import pack_blocks
from .protocol.binary import get_hit
from .protocol.watch import LOG_EVICTIONS, LOG_FETCHERS, LOG_MUTATIONS
from .slab_arena import PAGE_SIZE, SlabArena
from .watch_lines import STORE_STATUS as _STORE_STATUS
from .watch_lines import TOO_LARGE, slab_class

__all__ = [
    "Cache",
    "Item",
    "item_value",
    "render",
    "RELATIVE_EXPTIME_LIMIT",
    "FETCHED", "ACTIVE", "STALE", "WIN_SENT", "BINARY_KEY",
    "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "NO_MEMORY", "NON_NUMERIC",
]

RELATIVE_EXPTIME_LIMIT: Final = 60 * 60 * 24 * 30
_UINT64: Final = 1 << 64

# store() results (small ints: they cross shards as one byte; compiled, cache.pxd's C enum)
if not cython.compiled:
    STORED: Final = 0
    NOT_STORED: Final = 1
    EXISTS: Final = 2
    NOT_FOUND: Final = 3
    NO_MEMORY: Final = 4
# arith() result for a value that is not a number (else the new value, or None if missing)
NON_NUMERIC: Final = -1

_COUNTER = re.compile(rb"[ \t\n\v\f\r]*\+?([0-9]+)")
_SPACE = frozenset(b" \t\n\v\f\r")
_STORE_OPS = frozenset((b"set", b"add", b"replace", b"append", b"prepend", b"cas"))

# item marks (compiled, cache.pxd's C enum: the same numbers)
if not cython.compiled:
    STALE: Final = 1       # md I / ms I: the value is stale (mg answers X)
    WIN_SENT: Final = 2    # a client was told it won the right to recache (W); others see Z
    BINARY_KEY: Final = 4  # stored by a meta command with a base64 key (k answers in base64)
    FETCHED: Final = 8     # hit at least once
    ACTIVE: Final = 16     # hit again since: the highest mark, so "marks < ACTIVE" = not active
# where each per-class counter's classes begin in CacheCounters.per_class (get hits are the
# arena's hits_to_* counts: see CacheCounters.hit_source)
_AT_CMD_SET: Final = CMD_SET * CLASS_SLOTS
_AT_DELETE_HITS: Final = DELETE_HITS * CLASS_SLOTS
_AT_INCR_HITS: Final = INCR_HITS * CLASS_SLOTS
_AT_DECR_HITS: Final = DECR_HITS * CLASS_SLOTS
_AT_CAS_HITS: Final = CAS_HITS * CLASS_SLOTS
_AT_CAS_BADVAL: Final = CAS_BADVAL * CLASS_SLOTS
_AT_TOUCH_HITS: Final = TOUCH_HITS * CLASS_SLOTS

Item = tuple[bytes, int, int, int, int, int, int]
_LAST_SECOND: Final = 0xFFFFFFFF  # an item's expiry is a 32-bit Unix second


def render(key: bytes, flags: int, value: bytes) -> tuple[bytes, int]:
    """(block, header_len): the item as a ``get`` answers it."""
    block = value_line(key, flags, value, None)
    return block, len(block) - len(value) - 2


def item_value(item: Item) -> bytes:
    """The data of an item."""
    return item[0][item[4] : -2]


def _parse_counter(value: bytes) -> int | None:
    """memcached's safe_strtoull on an item's data: leading blanks, digits, then end or a
    blank; at most 2**64 - 1."""
    m = _COUNTER.match(value)
    if m is None:
        return None
    end = m.end()
    if end < len(value) and value[end] not in _SPACE:
        return None
    number = int(m.group(1))
    return number if number < _UINT64 else None


class Cache:
    """The items of one shard."""

    def __init__(
        self,
        limit: int,
        shard_id: int = 0,
        shard_count: int = 1,
        clock: Callable[[], float] = time.time,
        page_size: int = PAGE_SIZE,
        min_chunk: int = 48,
        growth_factor: float = 1.25,
        evict: bool = True,
        cas_enabled: bool = True,
        index_slots: int = 0,
    ) -> None:
        self.limit = limit
        # False with -C: as memcached's, every item's CAS is 0 and a client's CAS is dropped,
        # except that of a ``cas`` command, which then never matches (checked on stores only)
        self.cas_enabled = cas_enabled
        # index_slots: the index's starting size (see kvshard.memcached_options.index_slots); 0: the least
        self._arena = SlabArena(limit, min_chunk, growth_factor, page_size, evict, index_slots)
        self._clock = clock
        # compiled, the system clock is read in C (clock_gettime, no Python call): see now()
        self._system_clock = clock is time.time
        self._cas_counter = 0
        self._shard_id = shard_id
        self._shard_count = shard_count
        self.stats = CacheCounters(self._arena)
        self._evictions_seen = 0
        self._reclaims_seen = 0
        self._seen_counts = (0, 0, 0)
        # the log streams some connection watches (0: nobody) and the hub to tell (see above)
        self._watch_flags = 0
        self.watch_log: Any = None

    @property
    def watch_flags(self) -> int:
        return self._watch_flags

    @watch_flags.setter
    def watch_flags(self, flags: int) -> None:
        self._watch_flags = flags
        self._arena.evict_hook = self._watch_eviction if flags & LOG_EVICTIONS else None

    # ----- helpers ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._arena.count

    @property
    def used(self) -> int:
        """memcached's ``bytes``: header + key + value of every item."""
        return self._arena.bytes

    @property
    def arena(self) -> SlabArena:
        return self._arena

    def expire_at(self, exptime: int) -> int:
        """The protocol's exptime as the Unix second the item expires at (0 = never), as
        memcached's ``realtime``."""
        if exptime == 0:
            return 0
        if exptime < 0:
            return 1  # in the past: already expired
        if exptime <= RELATIVE_EXPTIME_LIMIT:
            return self.now_second() + exptime
        return min(exptime, _LAST_SECOND)

    def now(self) -> float:
        """The clock's time (compiled, the system clock is read in C)."""
        if cython.compiled and self._system_clock:
            clock_gettime(CLOCK_REALTIME, cython.address(ts))
            return ts.tv_sec + ts.tv_nsec * 1e-9
        return self._clock()  # type: ignore[no-any-return]

    def now_second(self) -> int:
        """The current Unix second."""
        if cython.compiled and self._system_clock:
            clock_gettime(CLOCK_REALTIME, cython.address(ts))
            return ts.tv_sec
        return int(self._clock())

    def remaining(self, expire_at: int) -> int:
        """Whole seconds an item with this ``expire_at`` (non-zero) has left, counted as
        memcached does (a TTL of 100 set within the current second has 100 left)."""
        return expire_at - self.now_second()

    def _next_cas(self) -> int:
        if not self.cas_enabled:
            return 0
        self._cas_counter += 1
        return self._cas_counter * self._shard_count + self._shard_id

    def _item(self, ref: int, key: bytes) -> Item:
        """The item at ``ref`` as the protocol layers take it."""
        arena = self._arena
        flags = arena.flags(ref)
        value = arena.value(ref)
        block = value_line(key, flags, value, None)
        return (block, flags, arena.expire_at(ref), arena.cas(ref), len(block) - len(value) - 2,
                arena.atime(ref), arena.marks(ref))

    def _live_ref(self, key: bytes) -> int:
        """The ref of the live item under ``key`` (an expired one is removed), or 0."""
        if self._watch_flags:
            self._watch_lookup(key)
        arena = self._arena
        ref = arena.find(key)
        if ref:
            expire_at = arena.expire_at(ref)
            if expire_at and expire_at <= self.now():
                arena.unlink(ref)
                self.stats.get_expired += 1
                return 0
        return ref

    def _live(self, key: bytes) -> Item | None:
        ref = self._live_ref(key)
        return None if ref == 0 else self._item(ref, key)

    def _remove(self, key: bytes, item: Item) -> None:
        ref = self._arena.find(key)
        if ref:
            self._arena.unlink(ref)

    def _put(self, key: bytes, value: bytes, flags: int, expire_at: int, cas: int = 0, marks: int = 0) -> int:
        """Insert or replace (with a new CAS unless ``cas`` is given); the arena evicts as
        needed. Returns STORED or NO_MEMORY (the old item is gone either way)."""
        arena = self._arena
        arena.now = self.now()
        ref = arena.store(key, value, flags, expire_at, cas if cas and self.cas_enabled else self._next_cas(), marks)
        if arena.evictions != self._evictions_seen or arena.reclaims != self._reclaims_seen:
            self._take_arena_counts()
        if ref == 0:
            self.stats.store_no_memory += 1
            return NO_MEMORY
        self.stats.total_items += 1
        return STORED

    def _take_arena_counts(self) -> None:
        """Add what the arena counted since last time (evictions, tail reclaims) to the stats
        (which ``stats reset`` may have zeroed meanwhile)."""
        arena = self._arena
        stats = self.stats
        stats.evictions += arena.evictions - self._evictions_seen
        stats.reclaimed += arena.reclaims - self._reclaims_seen
        stats.expired_unfetched += arena.expired_unfetched - self._seen_counts[0]
        stats.evicted_unfetched += arena.evicted_unfetched - self._seen_counts[1]
        stats.evicted_active += arena.evicted_active - self._seen_counts[2]
        self._evictions_seen = arena.evictions
        self._reclaims_seen = arena.reclaims
        self._seen_counts = (arena.expired_unfetched, arena.evicted_unfetched, arena.evicted_active)

    def _hit(self, ref: int) -> None:
        """Mark a hit on a live item (memcached's do_item_bump): FETCHED first, then ACTIVE
        with ``seen`` now (a COLD item moves to WARM); flat, FETCHED and a relink at most once
        a minute."""
        arena = self._arena
        marks = arena.marks(ref)
        if marks < ACTIVE or not arena.segmented:
            if not marks & FETCHED:
                arena.set_marks(ref, marks | FETCHED)
            elif arena.segmented:
                arena.activate(ref, self.now_second())
            if not arena.segmented:
                arena.bump(ref, self.now_second())

    # ----- commands ----------------------------------------------------------------------------

    def get(self, key: bytes) -> Item | None:
        """A hit marks the item (FETCHED, then ACTIVE; it is not moved). (``cmd_get`` is not
        counted here: it is always get_hits + get_misses, see :meth:`counters`.)"""
        ref = self._get_ref(key)
        return None if ref == 0 else self._item(ref, key)

    def get_block(self, key: bytes, tail: bytes = b"") -> bytes | None:
        """:meth:`get`, answering with the block alone (``VALUE ...\r\n<data>\r\n``) and
        ``tail`` after it. Compiled, the value is copied once, from the arena into the reply."""
        ref = self._get_ref(key)
        if ref == 0:
            return None
        arena = self._arena
        if cython.compiled:
            data_at = cython.declare(Py_ssize_t)
            block = value_block_shell(key, arena.flags(ref), arena.nbytes(ref), 0, False, tail, cython.address(data_at))
            arena.copy_value(ref, PyBytes_AS_STRING(block) + data_at)
            return block
        return value_line(key, arena.flags(ref), arena.value(ref), None) + tail

    def get_value(self, key: bytes) -> tuple[int, int, bytes] | None:
        """:meth:`get` answering (flags, cas, value): what the binary protocol sends."""
        ref = self._get_ref(key)
        if ref == 0:
            return None
        arena = self._arena
        return (arena.flags(ref), arena.cas(ref), arena.value(ref))

    def get_blocks_packed(self, keys: list[bytes], with_cas: bool) -> bytes:
        """:meth:`get_block` of each key (with the CAS unique in the header for ``gets``; an
        empty block for a miss), packed as kvshard.packed_blocks packs them. Compiled, one
        allocation: every key is looked up first, then each value is copied once, from the
        arena into it (no store runs in between, so the refs hold), and no object is made per
        key."""
        arena = self._arena
        if not cython.compiled:
            blocks = []
            for key in keys:
                ref = self._get_ref(key)
                blocks.append(b"" if ref == 0 else value_line(
                    key, arena.flags(ref), arena.value(ref), arena.cas(ref) if with_cas else None))
            return pack_blocks(blocks)
        n = len(keys)
        refs = cython.cast(cython.p_size_t, PyMem_Malloc(n * cython.sizeof(cython.size_t) + 1))
        if refs == cython.NULL:
            raise MemoryError()
        try:
            total = 0
            for i in range(n):
                key = keys[i]
                ref = self._get_ref(key)
                refs[i] = ref
                total += 4
                if ref:
                    nbytes = arena.nbytes(ref)
                    total += value_header_size(len(key), arena.flags(ref), nbytes, arena.cas(ref), with_cas) + nbytes + 2
            packed = PyBytes_FromStringAndSize(cython.NULL, total)
            out = PyBytes_AS_STRING(packed)
            at = 0
            for i in range(n):
                ref = refs[i]
                size = 0
                if ref:
                    key = keys[i]
                    nbytes = arena.nbytes(ref)
                    size = write_value_header(out + at + 4, cython.cast(cython.p_char, key), len(key), arena.flags(ref),
                                              nbytes, arena.cas(ref), with_cas)
                    arena.copy_value(ref, out + at + 4 + size)
                    size += nbytes
                    out[at + 4 + size] = 13
                    out[at + 5 + size] = 10
                    size += 2
                put_le32(out + at, size)
                at += 4 + size
            return packed
        finally:
            PyMem_Free(refs)

    def get_binary_hit(self, key: bytes, opaque: int) -> bytes | None:
        """:meth:`get` answering a binary GET's whole response packet, or None for a miss.
        Compiled, the value is copied once, from the arena into the packet."""
        ref = self._get_ref(key)
        if ref == 0:
            return None
        arena = self._arena
        if cython.compiled:
            packet = get_hit_shell(opaque, arena.cas(ref), arena.flags(ref), arena.nbytes(ref))
            arena.copy_value(ref, get_hit_value_at(packet))
            return packet
        return get_hit(opaque, arena.cas(ref), arena.flags(ref), arena.value(ref))

    def _get_ref(self, key: bytes) -> int:
        """:meth:`_live_ref`, counting a hit (and marking the item) or a miss."""
        ref = self._live_ref(key)
        if ref:
            self._arena.count_hit(ref)
            self._hit(ref)
        else:
            self.stats.get_misses += 1
        return ref

    def class_stats(self) -> tuple[int, list[dict[str, int]]]:
        """(page size, the arena's per-class figures as of now)."""
        self._arena.now = self.now()
        return self._arena.page_size, self._arena.class_stats()

    def count_get_hit(self, key: bytes) -> None:
        """A get hit a protocol layer served from :meth:`peek` (mg): counted as :meth:`get`
        counts one (on the item's LRU list, which is its class's get_hits too)."""
        ref = self._arena.find(key)
        if ref:
            self._arena.count_hit(ref)

    def count_hit(self, counter: int, key: bytes, item: Item) -> None:
        """Count command ``counter`` (kvshard.counters: TOUCH_HITS, DELETE_HITS, ...) in the slab
        class of the live ``item`` stored under ``key`` (for the meta commands, which hold
        items, not refs: the class follows from the sizes)."""
        nbytes = len(item[0]) - item[4] - 2
        self.stats.per_class[counter * CLASS_SLOTS + self._arena.item_class(len(key), nbytes, item[1])] += 1

    def counters(self) -> dict[str, int]:
        """The statistics counters, derived ones included (with what the arena counted since the
        last store: the maintainer's tail pulls reclaim expired items too)."""
        self._take_arena_counts()
        out = self.stats.as_dict()
        out["cmd_get"] = out["get_hits"] + out["get_misses"]
        return out

    def touch(self, key: bytes, exptime: int) -> Item | None:
        """Set a new expiry (touch, gat, gats: memcached counts all three as touches)."""
        self.stats.cmd_touch += 1
        ref = self._live_ref(key)
        if ref == 0:
            self.stats.touch_misses += 1
            return None
        self.stats.per_class[_AT_TOUCH_HITS + self._arena.clsid(ref)] += 1
        self._arena.set_expire_at(ref, self.expire_at(exptime))
        self._hit(ref)
        return self._item(ref, key)

    # ----- primitives for protocol layers (the meta commands) ---------------------------------

    def peek(self, key: bytes) -> Item | None:
        """The live item, counting no hit or miss and leaving its LRU place and marks alone."""
        return self._live(key)

    def bump(self, key: bytes, item: Item) -> Item:
        """Record a hit on a live item: marks and ``seen`` updated (it stays where it is)."""
        ref = self._arena.find(key)
        if ref == 0:
            return item
        self._hit(ref)
        return item[:5] + (self._arena.atime(ref), self._arena.marks(ref))

    def amend(
        self, key: bytes, item: Item, *, expire_at: int | None = None, cas: int | None = None,
        marks: int | None = None,
    ) -> Item:
        """Change a live item's expiry, CAS or marks in place (its LRU place stays)."""
        arena = self._arena
        ref = arena.find(key)
        if ref == 0:
            return item
        if expire_at is not None:
            arena.set_expire_at(ref, expire_at)
        if cas is not None:
            arena.set_cas(ref, cas if self.cas_enabled else 0)
        if marks is not None:
            arena.set_marks(ref, marks)
        return (item[0], item[1], arena.expire_at(ref), arena.cas(ref), item[4], item[5], arena.marks(ref))

    def create(
        self, key: bytes, value: bytes, expire_at: int, cas: int = 0, flags: int = 0, marks: int = 0,
    ) -> Item | None:
        """Store an item without counting a set (mg N, ma N, md x); None if there is no
        room. ``cas`` 0 means a new CAS unique."""
        if self._put(key, value, flags, expire_at, cas, marks) != STORED:
            return None
        return self._item(self._arena.find(key), key)

    def last_cas(self) -> int:
        """The CAS unique the latest store without a given one gave its item (0 with CAS
        off): what :meth:`cas_of` finds right after it, without a lookup."""
        if not self.cas_enabled:
            return 0
        return self._cas_counter * self._shard_count + self._shard_id

    def cas_floor(self) -> int:
        """The lowest CAS unique an item stored from now on gets (``stats sizes`` counts those)."""
        return (self._cas_counter + 1) * self._shard_count + self._shard_id

    def new_cas(self) -> int:
        """A fresh CAS unique (md I gives the item one)."""
        return self._next_cas()

    def remove(self, key: bytes, item: Item) -> None:
        """Delete a live item (counting nothing)."""
        self._remove(key, item)

    def store(
        self, op: bytes, key: bytes, flags: int, exptime: int, value: bytes, cas: int = 0, *,
        new_cas: int = 0, allow_stale: bool = False, marks: int = 0,
    ) -> int:
        """set/add/replace/append/prepend/cas, as memcached's do_store_item: STORED,
        NOT_STORED, EXISTS, NOT_FOUND or NO_MEMORY.

        A non-zero ``cas`` turns set, add and replace into ``cas`` (the binary protocol's
        rule; the meta commands pass none for an add); append and prepend check it only when
        the item exists. ``allow_stale`` (ms I) lets a CAS *lower* than the item's store
        anyway, marked stale, keeping the old expiry and win mark. ``new_cas`` (meta E)
        chooses the stored item's CAS; ``marks`` are the new item's marks."""
        if op == b"set" and not cas:
            return self.set_item(key, flags, exptime, value, new_cas, marks)
        result = self._store_checked(op, key, flags, exptime, value, cas, new_cas, allow_stale, marks)
        if self._watch_flags:
            self._watch_store(b"cas" if cas and op not in (b"append", b"prepend") else op, key, result, flags, exptime,
                              len(value))
        return result

    def _store_checked(
        self, op: bytes, key: bytes, flags: int, exptime: int, value: bytes, cas: int, new_cas: int,
        allow_stale: bool, marks: int,
    ) -> int:
        """:meth:`store` for every case but a plain set."""
        self.stats.per_class[_AT_CMD_SET + self._arena.item_class(len(key), len(value), flags)] += 1
        if op not in _STORE_OPS:
            raise ValueError(f"unknown storage command {op!r}")
        if cas and op != b"cas" and not self.cas_enabled:
            cas = 0  # -C: memcached drops the CAS of a binary store or a meta append
        arena = self._arena
        ref = self._live_ref(key)
        if op == b"append" or op == b"prepend":
            if ref == 0:
                return NOT_STORED
            if cas and arena.cas(ref) != cas:
                return EXISTS
            old = arena.value(ref)
            joined = old + value if op == b"append" else value + old
            return self._put(key, joined, arena.flags(ref), arena.expire_at(ref), new_cas, marks)
        if cas or op == b"cas":
            if ref == 0:
                self.stats.cas_misses += 1
                return NOT_FOUND
            current_cas = arena.cas(ref)
            if current_cas != cas or not cas:  # (a CAS of 0 never matches, as in memcached)
                if allow_stale and cas < current_cas:
                    self.stats.per_class[_AT_CAS_HITS + arena.clsid(ref)] += 1
                    stale = marks | STALE | (arena.marks(ref) & WIN_SENT)
                    return self._put(key, value, flags, arena.expire_at(ref), new_cas, stale)
                self.stats.per_class[_AT_CAS_BADVAL + arena.clsid(ref)] += 1
                return EXISTS
            self.stats.per_class[_AT_CAS_HITS + arena.clsid(ref)] += 1
        elif op == b"add":
            if ref != 0:
                arena.bump(ref, self.now_second())
                return NOT_STORED
        elif ref == 0 and op == b"replace":
            return NOT_STORED
        return self._put(key, value, flags, self.expire_at(exptime), new_cas, marks)

    def set_item(self, key: bytes, flags: int, exptime: int, value: bytes, new_cas: int = 0, marks: int = 0) -> int:
        """``set`` without a CAS to check: STORED or NO_MEMORY (``new_cas`` and ``marks`` as
        in :meth:`store`)."""
        self.stats.per_class[_AT_CMD_SET + self._arena.item_class(len(key), len(value), flags)] += 1
        if self._watch_flags:  # memcached looks the old item up, then logs the store
            self._watch_lookup(key)
            result = self._put(key, value, flags, self.expire_at(exptime), new_cas, marks)
            self._watch_store(b"set", key, result, flags, exptime, len(value))
            return result
        return self._put(key, value, flags, self.expire_at(exptime), new_cas, marks)

    def discard(self, key: bytes) -> None:
        """Remove ``key`` if present, counting nothing (a refused overwrite drops the old item)."""
        ref = self._arena.find(key)
        if ref:
            self._arena.unlink(ref)

    def delete(self, key: bytes, cas: int = 0) -> int:
        """STORED (deleted), NOT_FOUND, or EXISTS when ``cas`` is given and differs."""
        ref = self._live_ref(key)
        if ref == 0:
            self.stats.delete_misses += 1
            return NOT_FOUND
        if cas and self._arena.cas(ref) != cas:
            return EXISTS
        self.stats.per_class[_AT_DELETE_HITS + self._arena.clsid(ref)] += 1
        self._arena.unlink(ref)
        return STORED

    def cas_of(self, key: bytes) -> int:
        """The CAS unique of a stored item (0 if there is none)."""
        ref = self._arena.find(key)
        return 0 if ref == 0 else self._arena.cas(ref)

    def arith_or_create(
        self, incr: bool, key: bytes, delta: int, initial: int, exptime: int, cas: int = 0,
    ) -> tuple[int, int]:
        """The binary protocol's incr/decr: (STORED, new value), (NOT_FOUND, 0),
        (EXISTS, 0) on a CAS mismatch, or (NON_NUMERIC, 0). A missing key is created with
        ``initial`` unless ``exptime`` is 0xffffffff."""
        ref = self._live_ref(key)
        if ref == 0:
            if exptime == 0xFFFFFFFF:
                self.stats.add("incr_misses" if incr else "decr_misses")
                return NOT_FOUND, 0
            self.stats.add("incr_misses" if incr else "decr_misses")
            if self._put(key, b"%d" % initial, 0, self.expire_at(exptime)) != STORED:
                return NO_MEMORY, 0
            return STORED, initial
        if cas and self._arena.cas(ref) != cas:
            return EXISTS, 0
        result = self.arith(incr, key, delta)
        if result is None:  # pragma: no cover - the item was live a moment ago
            return NOT_FOUND, 0
        if result == NON_NUMERIC:
            return NON_NUMERIC, 0
        return STORED, result

    def arith(self, incr: bool, key: bytes, delta: int) -> int | None:
        """incr/decr: the new value, None if the key is missing, NON_NUMERIC if the value is
        not a number. incr wraps at 2**64, decr stops at 0. A result no longer than the old
        value is written in place, padded with spaces, as memcached does."""
        prefix = "incr" if incr else "decr"
        ref = self._live_ref(key)
        if ref == 0:
            self.stats.add(prefix + "_misses")
            return None
        arena = self._arena
        old = arena.value(ref)
        number = _parse_counter(old)
        if number is None:
            return NON_NUMERIC
        self.stats.per_class[(_AT_INCR_HITS if incr else _AT_DECR_HITS) + arena.clsid(ref)] += 1
        number = (number + delta) % _UINT64 if incr else max(number - delta, 0)
        digits = b"%d" % number
        if len(digits) <= len(old):
            # same length: the item keeps its chunk, only the data and the CAS change
            arena.rewrite(ref, digits.ljust(len(old)))
            arena.set_cas(ref, self._next_cas())
            arena.bump(ref, self.now_second())
        else:
            self._put(key, digits, arena.flags(ref), arena.expire_at(ref))
        return number

    # ----- watch: only called while some connection watches ------------------------------------

    def _watch_lookup(self, key: bytes) -> None:
        """Log a lookup of ``key``: found, expired or not found (nothing is changed)."""
        if not self._watch_flags & LOG_FETCHERS:
            return
        arena = self._arena
        ref = arena.find(key)
        if ref == 0:
            self.watch_log.item_get(key, 0, 0, 0)
        elif arena.expire_at(ref) and arena.expire_at(ref) <= self.now():
            self.watch_log.item_get(key, 3, 0, 0)
        else:
            self.watch_log.item_get(key, 1, arena.flags(ref), arena.nbytes(ref))

    def _watch_store(self, command: bytes, key: bytes, result: int, flags: int, exptime: int, size: int) -> None:
        """Log a store's result, with the stored item's expiry, class and size (or the refused
        one's, in the class it would have had)."""
        if not self._watch_flags & LOG_MUTATIONS:
            return
        arena = self._arena
        ref = arena.find(key) if result == STORED else 0
        if ref:
            flags, expire_at, size = arena.flags(ref), arena.expire_at(ref), arena.nbytes(ref)
        else:
            expire_at = self.expire_at(exptime)
        ttl = self.remaining(expire_at) if expire_at else 0
        # (clsid: the class memcached's default sizes give, as the other watch lines say)
        self.watch_log.item_store(key, _STORE_STATUS[result], command.decode(), max(ttl, 0),
                                  slab_class(len(key), flags, size), size)

    def watch_too_large(self, command: bytes, key: bytes) -> None:
        """Log a store refused for its size (a refused set then drops the old item, which
        memcached looks up first)."""
        if self._watch_flags:
            self.watch_log.item_store(key, TOO_LARGE, command.decode(), 0, 0, 0)
            if command == b"set":
                self._watch_lookup(key)

    def _watch_eviction(self, ref: int) -> None:
        """The arena's evict_hook while evictions are watched."""
        arena = self._arena
        expire_at = arena.expire_at(ref)
        self.watch_log.eviction(arena.key(ref), bool(arena.marks(ref) & FETCHED),
                                self.remaining(expire_at) if expire_at else -1,
                                self.now_second() - arena.atime(ref), arena.flags(ref), arena.nbytes(ref))

    def flush(self) -> None:
        """Drop every item (flush_all; the command is counted where it arrived, see
        Dispatcher.flush_all)."""
        self._arena.flush()

    def set_limit(self, limit: int) -> bool:
        """``cache_memlimit``: this shard's new share (see SlabArena.set_limit); False if the
        arena cannot grow that far."""
        if not self._arena.set_limit(limit):
            return False
        self.limit = limit
        return True
