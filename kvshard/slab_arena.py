"""One shard's items in an arena of pages carved into slab classes, with a flat hash index.

Theory of operation
-------------------
No Python object per item: an item is one *chunk* of a byte arena (an anonymous ``mmap``, so
pages cost resident memory only once written), addressed by a *ref*, its byte offset / 8 as
a 32-bit number (0 is "none"). The arena is a run of pages (``page_size``, 1 MiB as
memcached's); a page belongs to one *slab class* once first used, and a class cuts its pages
into chunks of one size. Class sizes are memcached's, byte for byte: they grow by ``factor`` from
``MEMCACHED_ITEM_STRUCT + min_chunk`` (memcached's 48-byte item struct, its ``-f`` and ``-n``)
up to half a page (``chunk_max``), so ``stats slabs`` shows the chunk sizes memcached shows;
our header is smaller than memcached's, so an item often fits a smaller class than it would
there. An item larger than ``chunk_max`` is a *chain*: a head chunk of the largest class plus
continuation chunks of that class (memcached chunks large items the same way).

An item's chunk (little-endian)::

    off  0  u32 prev      LRU neighbour towards the head (more recent); chain chunk: its head;
                          free chunk: the one before it in the free list (unless it is the head)
    off  4  u32 next      LRU neighbour towards the tail; free chunk: next free; chain: next link
    off  8  u64 cas
    off 16  u32 expire_at the Unix second it expires at, 0 = never (memcached's clock is whole
                          seconds too: expired once ``expire_at <= now``)
    off 20  u32 nbytes    value length
    off 24  u32 atime     Unix second of the store or last hit that counted
    off 28  u8  nkey      key length
    off 29  u8  list      its class and its LRU in the top two bits (memcached's slabs_clsid)
    off 30  u8  bits      state in bits 0-1: FREE 0, ITEM 1 (a linked head), CHAIN 2 (a
                          continuation chunk), CLAIMED 3 (see page moves below); the cache's
                          five marks (FETCHED, ACTIVE, ...: opaque here) in bits 2-6; HAS_FLAGS
                          in bit 7
    off 31  u8  check     reserved for the crash-survival work (a per-item validation byte);
                          always 0 for now
    off 32  u32 flags     the client's flags, only if HAS_FLAGS (memcached stores them only
                          when not 0 too)
    then    u32 more      a chain's head only: its first continuation chunk
    then    the key, then the value

``HEADER`` is those 32 bytes. An item is a chain's head when header, flags, key and value do
not fit ``chunk_max``, so its fields say whether ``more`` is there. A continuation chunk keeps
the header's prev, next, list and state and holds value bytes from offset 32. No hash is
stored: where the index needs an item's hash (finding its slot to delete it, growing, moving pages) it hashes the
key in the arena again.

Allocation, for a class: the class's free list (freed chunks), else the next uncut chunk of its
newest page, else a page of the global page pool (pages ``slabs reassign`` or the automover
gave back), else a fresh page while the arena has one (a class's first page is granted even
past the limit, as memcached grants it, so any item up to the largest size can be stored),
else what memcached's ``do_item_alloc_pull`` frees: the tail of the class's COLD LRU, expired
items first (see "The segmented LRU" below; with ``evict`` off, memcached's ``-M``, only expired
items go and the store is refused).

Pages move between classes two ways. :meth:`SlabArena.move_page`, at once, dropping every item
with a chunk on the page: what an allocation does when its class has nothing to evict and no
page can be had. And a page at a time, a few chunks per call, for ``slabs reassign`` and the
automover (kvshard.slab_mover): :meth:`SlabArena.begin_clearing` picks the class's oldest page
and stops cutting it, :meth:`SlabArena.clear_chunks` empties its chunks in order (an item is
copied to a free chunk of its class elsewhere, a *rescue*, else unlinked; a free chunk is
*claimed*: taken off the free list and marked CLAIMED, so that nothing allocates it again), and
:meth:`SlabArena.finish_clearing` zeroes it and hands it to another class or to the pool. Every
chunk behind the clearing position is claimed, so one pass empties the page whatever requests
do in between. The free lists are doubly linked for this (a free chunk's ``prev`` is its
predecessor in the list, except the list's head's), so a chunk leaves its list in O(1).

The segmented LRU (memcached 1.6's, ``items.c``)
------------------------------------------------
Each class has four LRU lists, HOT, WARM, COLD and TEMP; an item's ``list`` byte is its class
with the list in the top two bits (HOT 0, WARM 64, COLD 128, TEMP 192), which indexes the
head, tail, count and bytes of the list it is on. The transitions, all in this section:

* **store**: a new item enters HOT; TEMP instead when ``temp_lru`` is on and its TTL is at most
  ``temporary_ttl`` (TEMP items are never bumped, moved or evicted, only reclaimed once
  expired); COLD when the LRU is flat (``segmented`` off, memcached's ``lru mode flat``).
* **hit** (the cache's, :meth:`activate`): the first marks the item FETCHED, the next ACTIVE
  (and sets its access time); an item hit so in COLD moves to the head of WARM at once, ACTIVE
  cleared (memcached queues that move for its maintainer; here it is synchronous, so no bump
  is ever dropped). A hit on an ACTIVE item changes nothing. Flat: a hit relinks the item at
  its list's head if its access time is a minute old (:meth:`bump`, memcached's
  ``do_item_update``).
* **the tail pull** (:meth:`pull_tail`, memcached's ``lru_pull_tail``): looks at up to 5 items
  from a list's tail. An expired one is reclaimed and the walk goes on. HOT/WARM: an ACTIVE
  tail loses ACTIVE and goes to WARM's head (from HOT: ``moves_to_warm``; within WARM:
  ``moves_within_lru``, and the walk goes on); else it goes to COLD (``moves_to_cold``) if its
  list holds more than ``hot_pct``/``warm_pct`` of the class's bytes or it is older than
  ``max_age``; else the pull stops. COLD: with EVICT the tail is evicted (ACTIVE or not,
  counted in ``evicted_active``); without, an ACTIVE tail goes to WARM. TEMP: only reclaims.
* **the juggle** (:meth:`juggle`, memcached's ``lru_maintainer_juggle``, run by
  kvshard.lru_maintainer): TEMP's expired tail items, then up to ``budget`` rounds of a HOT
  pull (or, if it moved nothing, a WARM pull) and a COLD pull, while they move something. The
  age limits are COLD's tail age times ``hot_factor`` and ``warm_factor`` (0 when flat: all
  drains into COLD).
* **allocation** (:meth:`_alloc`, memcached's ``do_item_alloc_pull``): up to 10 rounds of: a
  free chunk, else an EVICT pull of COLD, else (segmented) a HOT pull that moves one item to
  COLD or WARM; the rounds past the first count in ``direct_reclaims``. A class with no item at
  all takes a page of another class instead (kvshard's: memcached waits for its page mover).

The index is open addressing with linear probing over a flat array of 32-bit slots; the hash
of the item's key decides its home slot, the key is compared in the arena. A slot holds the item's
ref in its low bits (as many as the largest ref of the arena needs) and the same high bits of
the item's hash above them, a tag: a probe reads an item only when its tag matches, so the
cache misses of a lookup are about one in the index and one in the arena, however long the
probe (with a 32 MiB arena the tag has 10 bits: one probe in 1024 reads an item in vain).
Deletion leaves a *tombstone* that probes pass over and inserts reuse (a store replacing a key
takes back the slot its old item left, or an earlier one of the same probe), or an empty slot
when the next slot is empty, tombstones just before it emptied with it: shifting the following
entries back instead would hash the key of each of them again, in the arena, to find its home
(3.6 per deletion at 60% load). When entries and tombstones fill 70% of the array, the index
moves into a new one, twice the size, or the same size if the entries alone fill at most 40%
(most of it was tombstones). That move is incremental: the old array is kept beside the new
one and every insert and every lookup moves a few slots of it across (its tombstones are
dropped), as does the LRU maintainer when it wakes (:meth:`grow_index`), so no request pays
for rehashing all items and a growth ends even when requests stop (the old array is freed
then); lookups look in both until the old one is empty.

All of this runs interpreted too, through ``memoryview`` casts of the same memory (correct,
only slower): the compiled module reads the same views as C arrays.
"""

from __future__ import annotations

import mmap
import os
import struct
from array import array
from typing import Final

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

from .routing import key_mix

__all__ = [
    "SlabArena", "HEADER", "MEMCACHED_ITEM_STRUCT", "FLAG_BYTES", "MORE_BYTES", "PAGE_SIZE", "POOL", "class_sizes", "key_hash", "HOT_LRU", "WARM_LRU", "COLD_LRU",
    "TEMP_LRU", "LRUS", "EVICT",
]

PAGE_SIZE: Final = 1 << 20
HEADER: Final = 32  # an item chunk's fixed header (the layout in the module docstring)
# memcached's ``sizeof(item)``: its slab classes start from it (``slabs_init``), and so do ours, so
# that ``stats slabs`` shows memcached's chunk sizes; our smaller header only lets more items fit
MEMCACHED_ITEM_STRUCT: Final = 48
# the LRU lists of a class (the top bits of an item's list byte, memcached's)
HOT_LRU: Final = 0
WARM_LRU: Final = 64
COLD_LRU: Final = 128
TEMP_LRU: Final = 192
LRUS: Final = (HOT_LRU, WARM_LRU, COLD_LRU, TEMP_LRU)
EVICT: Final = 1  # pull_tail: evict COLD's tail (memcached's LRU_PULL_EVICT)
_HOT: Final = HOT_LRU  # (typed twins, for C arithmetic)
_WARM: Final = WARM_LRU
_COLD: Final = COLD_LRU
_TEMP: Final = TEMP_LRU
_EVICT: Final = EVICT
_LRU_BITS: Final = 192
_CLASS_BITS: Final = 63
_LISTS: Final = 256
_PULL_TRIES: Final = 5  # items a tail pull looks at (memcached's)
_ALLOC_ROUNDS: Final = 10  # rounds of freeing an allocation makes (memcached's)
_UPDATE_INTERVAL: Final = 60  # flat LRU: a hit relinks an item at most this often (ITEM_UPDATE_INTERVAL)
# an item's bits byte: its state (the low two bits), the cache's marks (five bits), HAS_FLAGS
_STATE_BITS: Final = 3
_MARKS_SHIFT: Final = 2
_MARK_BITS: Final = 31 << _MARKS_SHIFT
_HAS_FLAGS: Final = 128  # the client's flags are not 0: they follow the header
_FETCHED: Final = 8 << _MARKS_SHIFT  # the cache's FETCHED mark (kvshard.cache.FETCHED), in place
_ACTIVE: Final = 16 << _MARKS_SHIFT  # the cache's ACTIVE mark (kvshard.cache.ACTIVE), in place
_INDEX_START: Final = 1024
_MIGRATE_STEP: Final = 64
_TOMBSTONE: Final = 1  # a deleted index slot's entry (ref 1 lies in the unused first page: no item's)
_HUGE_PAGE: Final = 2 << 20
_MAP_NORESERVE: Final = 0x4000  # Linux's, which Python's mmap module does not export
# refs are 32-bit offsets / 8: the mapping may span at most this much
_MAX_MAPPING: Final = (1 << 35) - (1 << 30)
_MAX_ROOM_PAGES: Final = 1 << 16

# chunk states
_FREE: Final = 0
_ITEM: Final = 1
_CHAIN: Final = 2
_CLAIMED: Final = 3  # on a page being cleared for another class: free, and on no free list
POOL: Final = -1  # a class argument meaning the global page pool (memcached's class 0)
FLAG_BYTES: Final = 4  # the client's flags, after the header when they are not 0
MORE_BYTES: Final = 4  # a chain head's first continuation chunk, after the flags
_HEADER: Final = HEADER  # (typed twins of the public constants, for C arithmetic)
_FLAG_BYTES: Final = FLAG_BYTES
_MORE_BYTES: Final = MORE_BYTES

# field offsets, in bytes from the start of a chunk
_PREV: Final = 0
_NEXT: Final = 4
_CAS: Final = 8
_EXPIRE_AT: Final = 16
_NBYTES: Final = 20
_ATIME: Final = 24
_NKEY: Final = 28
_LIST: Final = 29
_BITS: Final = 30
_CHECK: Final = 31  # reserved for the crash-survival work (a validation byte per item); 0
_PREV_WORD: Final = _PREV >> 2  # (the links, expiry and access time as 32-bit words from an item's first, ref * 2)
_NEXT_WORD: Final = _NEXT >> 2
_EXPIRE_WORD: Final = _EXPIRE_AT >> 2
_ATIME_WORD: Final = _ATIME >> 2
# (interpreted) the header from cas to check: cas, expire_at, nbytes, atime, nkey, list (0), bits, check (0)
_CAS_TO_CHECK: Final = struct.Struct("<QIIIBxBx")


def class_sizes(min_chunk: int = 48, factor: float = 1.25, page_size: int = PAGE_SIZE) -> list[int]:
    """Chunk sizes, smallest first, as memcached's ``slabs_init``: ``MEMCACHED_ITEM_STRUCT +
    min_chunk`` rounded up to 8, times ``factor`` (rounded up to 8) while below ``chunk_max / factor``,
    then ``chunk_max`` = half a page."""
    chunk_max = page_size // 2
    sizes = []
    size = MEMCACHED_ITEM_STRUCT + min_chunk
    while len(sizes) < 62 and size < chunk_max / factor:
        size = (size + 7) & ~7
        sizes.append(size)
        size = int(size * factor)
    sizes.append(chunk_max)
    return sizes


def key_hash(key: bytes) -> int:
    """The index's hash of a key: the low 32 bits of kvshard.routing's mix, whose high bits
    pick the shard (independent bits: a shard's keys spread over all of its index)."""
    if cython.compiled:
        return cython.cast(cython.uint, key_mix(key))  # (remembered when the key was just routed)
    return key_mix(key) & 0xFFFFFFFF


def _index_hash(data: bytes | memoryview, n: int) -> int:
    """:func:`key_hash` of the first ``n`` bytes of ``data`` (compiled: a C pointer)."""
    if cython.compiled:
        return cython.cast(cython.uint, mix_at(data, n))
    return key_mix(bytes(data[:n])) & 0xFFFFFFFF


def _anonymous(size: int, reserve_only: bool = False) -> mmap.mmap:
    """Zeroed memory of its own mapping, on huge pages where the kernel allows them (THP on
    ``madvise``): the index and the arena are read at random, and a TLB miss per access
    costs more than the lookup (twice over in a VM). ``reserve_only``: address space that
    the kernel does not count against its commit limit (``MAP_NORESERVE``); as any page
    here, a page costs memory once written."""
    # private: shared anonymous memory is shmem, which the kernel's THP setting for shmem
    # (usually "never") governs instead
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    if reserve_only:
        flags |= getattr(mmap, "MAP_NORESERVE", _MAP_NORESERVE)
    memory = mmap.mmap(-1, size, flags=flags)
    if size >= _HUGE_PAGE and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            memory.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # a kernel without transparent huge pages: ordinary pages then
            pass
    return memory


def _without_huge_pages(memory: mmap.mmap, length: int) -> None:
    """The first ``length`` bytes of ``memory`` in ordinary pages (where the kernel has THP)."""
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        try:
            memory.madvise(mmap.MADV_NOHUGEPAGE, 0, length)
        except (OSError, ValueError):  # no transparent huge pages here: nothing to undo
            pass


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _u32_array(n: int) -> memoryview:
    if 4 * n >= _HUGE_PAGE:
        return memoryview(_anonymous(4 * n)).cast("I")
    return memoryview(array("I", bytes(4 * n))).cast("B").cast("I")


def _i64_array(n: int) -> memoryview | list[int]:
    """``n`` zeroed 64-bit numbers (per class or per list): a C array compiled; a list
    interpreted, whose subscripts CPython specializes (twice as fast as a memoryview's)."""
    if cython.compiled:
        return memoryview(array("q", bytes(8 * n))).cast("B").cast("q")
    return [0] * n


class SlabArena:
    """Items of one shard: allocation, the index, per-class LRUs, eviction."""

    def __init__(
        self, limit: int, min_chunk: int = 48, factor: float = 1.25, page_size: int = PAGE_SIZE, evict: bool = True,
        index_slots: int = _INDEX_START,
    ) -> None:
        if page_size < 4096 or page_size % 8:
            raise ValueError("page size must be a multiple of 8, at least 4096")
        self.page_size = page_size
        self.evict = evict  # False (memcached's -M): a full class refuses instead of evicting
        self.sizes = class_sizes(min_chunk, factor, page_size)
        self.chunk_max = page_size // 2
        self.page_count = max(1, limit // page_size)
        self.limit = limit
        # page p spans [(p + 1) * page_size, (p + 2) * page_size): offset 0 stays unused so
        # that ref 0 means "none"
        # pages the mapping can hold: the limit's, a first page per class past it, and room for
        # ``set_limit`` to grow into (as much as the machine's memory: address space only
        # until written)
        needed = self.page_count + len(self.sizes)
        self._page_room = max(needed, min(_physical_memory() // page_size, _MAX_MAPPING // page_size - 1,
                                          _MAX_ROOM_PAGES))
        try:
            self._map = _anonymous((self._page_room + 1) * page_size, reserve_only=True)
        except OSError:  # a kernel that refuses to overcommit: no room to grow then
            self._page_room = needed
            self._map = _anonymous((self._page_room + 1) * page_size)
        # the first page_size bytes stay unused (ref 0 is "none"): a huge page there would make
        # them resident along with page 0, so that one is left to ordinary pages
        _without_huge_pages(self._map, min(_HUGE_PAGE, len(self._map)))
        view = memoryview(self._map)
        self._u8 = view
        self._u32 = view.cast("I")
        self._u64 = view.cast("Q")
        n = len(self.sizes)
        self.class_count = n
        self._size = _i64_array(n)
        self._perslab = _i64_array(n)
        for c in range(n):
            self._size[c] = self.sizes[c]
            self._perslab[c] = page_size // self.sizes[c]
        self._pages = _i64_array(n)        # pages owned
        self._free_head = _i64_array(n)    # ref of the first free chunk
        self._free_count = _i64_array(n)
        self._cut = _i64_array(n)          # byte offset of the next uncut chunk (0: none)
        self._cut_end = _i64_array(n)
        # per LRU list (index: the list byte, class | LRU): most recent first (refs)
        self._head = _i64_array(_LISTS)
        self._tail = _i64_array(_LISTS)
        self._list_items = _i64_array(_LISTS)
        self._list_bytes = _i64_array(_LISTS)  # header + key + value of its items
        self._list_hits = _i64_array(_LISTS)   # get hits on its items (memcached's lru_hits)
        self._items = _i64_array(n)        # linked items whose head chunk is in this class
        self._chunks_used = _i64_array(n)  # chunks holding items (heads and chain links)
        self._evicted = _i64_array(n)
        self._reclaimed = _i64_array(n)
        self._moves_to_cold = _i64_array(n)
        self._moves_to_warm = _i64_array(n)
        self._moves_within = _i64_array(n)
        self._direct_reclaims = _i64_array(n)
        self._class_bytes = _i64_array(n)        # header + key + value of the linked items
        self._evicted_nonzero = _i64_array(n)    # evicted with an expiry set
        self._evicted_unfetched = _i64_array(n)  # evicted never fetched
        self._evicted_active = _i64_array(n)     # evicted ACTIVE (second chances ran out)
        self._evicted_time = _i64_array(n)       # seconds since the last evicted item's last access
        self._expired_unfetched = _i64_array(n)  # reclaimed at the tail never fetched
        self._outofmemory = _i64_array(n)        # stores that found no chunk
        self._class_pages = [[] for _ in range(n)]  # each class's pages, oldest first
        self._pool: list[int] = []  # the global page pool: pages no class owns (zeroed)
        self.pages_used = 0  # pages handed out of the mapping so far (the pool's included)
        self.page_moves = 0
        # the page being cleared (-1: none) for another class, its class, and where its chunks
        # were never cut (see begin_clearing)
        self.clearing = -1
        self._clearing_class = 0
        self._clearing_uncut = 0
        # what clearing pages did: items moved, chain links moved, items unlinked for want of a
        # free chunk, free chunks of the page met while looking for one (memcached's names)
        self.rescues = 0
        self.chunk_rescues = 0
        self.evictions_nomem = 0
        self.inline_reclaim = 0
        self.count = 0
        self.bytes = 0  # header + key + value of the linked items (memcached's "bytes")
        self.now = 0.0  # the cache sets this: the Unix time, for expiry at the tail and atime
        self.evictions = 0
        self.reclaims = 0
        self.expired_unfetched = 0  # (the three totals of the per-class counts of that name)
        self.evicted_unfetched = 0
        self.evicted_active = 0
        self.evict_hook = None  # called with an item's ref just before it is evicted (watch)
        # the segmented LRU's settings (memcached's defaults; kvshard.lru_maintainer sets them)
        self.segmented = True
        self.hot_pct = 20
        self.warm_pct = 40
        self.hot_factor = 0.2
        self.warm_factor = 2.0
        self.temp_lru = False
        self.temporary_ttl = 61
        self.batch_pulls = True  # (juggle; False: memcached's rounds literally, for a test to compare)
        self._ref_mask = 0  # (set by _fit_tags)
        self._tag_mask = 0
        self._tag_pages = 0  # pages whose refs the ref part of a slot can hold
        self._cap = _INDEX_START  # index_slots rounded up to a power of two, at least this
        while self._cap < index_slots:
            self._cap *= 2
        self._slots = _u32_array(self._cap)
        self._used_slots = 0
        self._tombstones = 0  # deleted slots of _slots (see _delete_slot)
        self._old = _u32_array(1)
        self._old_cap = 0
        self._old_used = 0
        self._migrate = 0
        self._fit_tags(self.page_count + self.class_count)

    # ----- classes ----------------------------------------------------------------------------

    def class_for(self, total: int) -> int:
        """The class whose chunks hold ``total`` bytes (header included); the largest for a
        chain."""
        lo = 0
        hi = self.class_count - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._size[mid] >= total:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def item_size(self, nkey: int, nbytes: int, flags: int = 0) -> int:
        """Bytes an item takes: the header, its flags unless 0, a chain head's ``more``, the key
        and the value (memcached's ``bytes`` counts items so)."""
        size = _HEADER + nkey + nbytes
        if flags:
            size += _FLAG_BYTES
        if size > self.chunk_max:
            size += _MORE_BYTES
        return size

    def item_class(self, nkey: int, nbytes: int, flags: int = 0) -> int:
        """The class of an item with a key and value of these lengths and these flags (a chain's
        head is in the largest)."""
        return self._size_class(self.item_size(nkey, nbytes, flags))

    def _size_class(self, size: int) -> int:
        """The class of an item of ``size`` bytes (:meth:`item_size`)."""
        return self.class_for(size) if size <= self.chunk_max else self.class_count - 1

    def chunks_needed(self, nkey: int, nbytes: int, flags: int = 0) -> int:
        size = self.item_size(nkey, nbytes, flags)
        if size <= self.chunk_max:
            return 1
        per_link = self.chunk_max - _HEADER
        return 1 + (size - self.chunk_max + per_link - 1) // per_link

    # ----- item fields --------------------------------------------------------------------------

    def cas(self, ref: int) -> int:
        return self._u64[(ref * 8 + _CAS) >> 3]

    def set_cas(self, ref: int, cas: int) -> None:
        self._u64[(ref * 8 + _CAS) >> 3] = cas

    def expire_at(self, ref: int) -> int:
        return self._u32[(ref * 8 + _EXPIRE_AT) >> 2]

    def set_expire_at(self, ref: int, expire_at: int) -> None:
        self._u32[(ref * 8 + _EXPIRE_AT) >> 2] = expire_at

    def flags(self, ref: int) -> int:
        base = ref * 8
        if self._u8[base + _BITS] & _HAS_FLAGS:
            return self._u32[(base + _HEADER) >> 2]
        return 0

    def nbytes(self, ref: int) -> int:
        return self._u32[(ref * 8 + _NBYTES) >> 2]

    def atime(self, ref: int) -> int:
        return self._u32[(ref * 8 + _ATIME) >> 2]

    def set_atime(self, ref: int, second: int) -> None:
        self._u32[(ref * 8 + _ATIME) >> 2] = second

    def marks(self, ref: int) -> int:
        """The cache's marks (FETCHED, ACTIVE, ...: five bits, opaque here)."""
        return (self._u8[ref * 8 + _BITS] & _MARK_BITS) >> _MARKS_SHIFT

    def set_marks(self, ref: int, marks: int) -> None:
        at = ref * 8 + _BITS
        self._u8[at] = (self._u8[at] & ~_MARK_BITS) | ((marks << _MARKS_SHIFT) & _MARK_BITS)

    def clsid(self, ref: int) -> int:
        return self._u8[ref * 8 + _LIST] & _CLASS_BITS

    def list_of(self, ref: int) -> int:
        """The LRU list the item is on: its class | HOT_LRU, WARM_LRU, COLD_LRU or TEMP_LRU."""
        return self._u8[ref * 8 + _LIST]

    def _more_at(self, base: int) -> int:
        """Where the ``more`` field of the item at byte offset ``base`` is (after its flags), if
        it is a chain's head; 0 if the item is all in its chunk."""
        at = base + _HEADER
        if self._u8[base + _BITS] & _HAS_FLAGS:
            at += _FLAG_BYTES
        if at - base + self._u8[base + _NKEY] + self._u32[(base + _NBYTES) >> 2] > self.chunk_max:
            return at
        return 0

    def _key_at(self, base: int) -> int:
        """Where the key of the item at byte offset ``base`` is (after the header, the flags
        unless 0, a chain head's ``more``); its value follows it."""
        at = base + _HEADER
        if self._u8[base + _BITS] & _HAS_FLAGS:
            at += _FLAG_BYTES
        if at - base + self._u8[base + _NKEY] + self._u32[(base + _NBYTES) >> 2] > self.chunk_max:
            at += _MORE_BYTES
        return at

    def _more(self, base: int) -> int:
        """The first continuation chunk of the item at byte offset ``base`` (0: none)."""
        at = self._more_at(base)
        return self._u32[at >> 2] if at else 0

    def _stored_size(self, base: int) -> int:
        """What the item at byte offset ``base`` takes (see item_size): :meth:`_key_at`'s
        header, flags and ``more``, its key and its value."""
        size = _HEADER + self._u8[base + _NKEY] + self._u32[(base + _NBYTES) >> 2]
        if self._u8[base + _BITS] & _HAS_FLAGS:
            size += _FLAG_BYTES
        if size > self.chunk_max:
            size += _MORE_BYTES
        return size

    def key(self, ref: int) -> bytes:
        base = ref * 8
        return self._read(self._key_at(base), self._u8[base + _NKEY])

    def item_hash(self, ref: int) -> int:
        """The item's key's hash (:func:`key_hash`), computed from the key in the arena."""
        base = ref * 8
        at = self._key_at(base)
        n = self._u8[base + _NKEY]
        if cython.compiled:
            return _index_hash(cython.address(self._u8[0]) + at, n)
        return _index_hash(self._u8[at : at + n], n)

    def value(self, ref: int) -> bytes:
        """The item's value (one copy out of the arena; a chain is joined)."""
        base = ref * 8
        nkey = self._u8[base + _NKEY]
        n = self._u32[(base + _NBYTES) >> 2]
        data_at = self._key_at(base) + nkey
        if data_at - base + n <= self.chunk_max:  # all in its chunk (not a chain's head)
            return self._read(data_at, n)
        if cython.compiled:
            out = PyBytes_FromStringAndSize(cython.NULL, n)
            self.copy_value(ref, PyBytes_AS_STRING(out))
            return out
        more = self._more(base)
        parts = []
        first = base + self.chunk_max - data_at
        parts.append(self._read(data_at, first))
        left = n - first
        per_link = self.chunk_max - _HEADER
        while more != 0 and left > 0:
            take = per_link if left > per_link else left
            parts.append(self._read(more * 8 + _HEADER, take))
            left -= take
            more = self._u32[(more * 8 + _NEXT) >> 2]
        return b"".join(parts)

    def copy_value(self, ref: int, dest: object) -> int:
        """(compiled only) Copy the item's value (a chain joined) to the C buffer ``dest``;
        returns its length."""
        if cython.compiled:
            base = ref * 8
            n = self._u32[(base + _NBYTES) >> 2]
            data_at = self._key_at(base) + self._u8[base + _NKEY]
            more = self._more(base)
            mem = cython.cast(cython.p_char, cython.address(self._u8[0]))
            if more == 0:
                memcpy(dest, mem + data_at, n)
                return n
            first = base + self.chunk_max - data_at
            memcpy(dest, mem + data_at, first)
            done = first
            per_link = self.chunk_max - _HEADER
            while more != 0 and done < n:
                take = per_link if n - done > per_link else n - done
                memcpy(dest + done, mem + more * 8 + _HEADER, take)
                done += take
                more = self._u32[(more * 8 + _NEXT) >> 2]
            return n
        raise NotImplementedError("copy_value is for the compiled module")

    def _read(self, at: int, n: int) -> bytes:
        if cython.compiled:
            return PyBytes_FromStringAndSize(cython.cast(cython.p_char, cython.address(self._u8[0])) + at, n)
        return self._map[at : at + n]  # (an mmap's slice is bytes: one copy, no view made)

    def _write(self, at: int, data: bytes, start: int, n: int) -> None:
        if cython.compiled:
            memcpy(cython.address(self._u8[0]) + at, cython.cast(cython.p_char, data) + start, n)
            return
        self._u8[at : at + n] = data[start : start + n]

    def _key_is(self, ref: int, key: bytes) -> bool:
        base = ref * 8
        n = len(key)
        if self._u8[base + _NKEY] != n:
            return False
        at = self._key_at(base)
        if cython.compiled:
            return memcmp(cython.address(self._u8[0]) + at, cython.cast(cython.p_char, key), n) == 0
        return self._map[at : at + n] == key  # (bytes == bytes is a memcmp; a memoryview's compares bytewise, 3x slower)

    # ----- the index ----------------------------------------------------------------------------

    def find(self, key: bytes) -> int:
        """The ref of the item stored under ``key``, or 0."""
        return self._find_hashed(key, key_hash(key))

    def _find_hashed(self, key: bytes, h: int) -> int:
        if self._old_used:  # lookups move the old array across too, so that a growth ends
            self._migrate_some(_MIGRATE_STEP)  # even when no store comes after it
        ref = self._probe(self._slots, self._cap, h, key)
        if ref == 0 and self._old_used:
            ref = self._probe(self._old, self._old_cap, h, key)
        return ref

    def _fit_tags(self, pages: int) -> None:
        """An index slot holds a ref in its low bits and, above them, the same bits of the
        item's hash, a tag. The ref part is as wide as the refs of the first ``pages`` pages
        need (fresh pages go out of the mapping in order: the limit's plus a first page per
        class, which a larger limit, or classes that lost their pages to moves, may pass; then
        ``_give_page`` widens it), and only ever widens, retagging every entry once."""
        top = (pages + 1) * self.page_size // 8
        ref_mask = 0xFFFFFFFF if top.bit_length() >= 32 else (1 << top.bit_length()) - 1
        if ref_mask <= self._ref_mask:
            return 0
        old_mask = self._ref_mask
        self._ref_mask = ref_mask
        self._tag_mask = 0xFFFFFFFF ^ ref_mask
        self._tag_pages = (ref_mask + 1) * 8 // self.page_size - 1
        self._retag(self._slots, self._cap, old_mask)
        self._retag(self._old, self._old_cap, old_mask)

    def _retag(self, slots: memoryview, cap: int, old_mask: int) -> None:
        for i in range(cap):
            entry = slots[i]
            if entry != 0 and entry != _TOMBSTONE:
                ref = entry & old_mask
                slots[i] = ref | (self.item_hash(ref) & self._tag_mask)

    def _probe(self, slots: memoryview, cap: int, h: int, key: bytes) -> int:
        mask = cap - 1
        i = h & mask
        tag_mask = self._tag_mask
        tag = h & tag_mask
        while True:
            entry = slots[i]
            if entry == 0:
                return 0
            if entry & tag_mask == tag and entry != _TOMBSTONE:
                ref = entry & self._ref_mask
                if self._key_is(ref, key):
                    return ref
            i = (i + 1) & mask

    def _slot_of(self, slots: memoryview, cap: int, ref: int, h: int) -> int:
        """The slot naming ``ref`` (whose key hashes to ``h``), or -1."""
        mask = cap - 1
        entry = ref | (h & self._tag_mask)
        i = h & mask
        while True:
            here = slots[i]
            if here == entry:
                return i
            if here == 0:
                return -1
            i = (i + 1) & mask

    def _insert_slot(self, slots: memoryview, cap: int, ref: int, h: int) -> None:
        """Enter ``ref`` in its probe's first empty or deleted slot (the new array only:
        a reused tombstone is taken off its count)."""
        mask = cap - 1
        i = h & mask
        while True:
            entry = slots[i]
            if entry == 0:
                break
            if entry == _TOMBSTONE:
                self._tombstones -= 1
                break
            i = (i + 1) & mask
        slots[i] = ref | (h & self._tag_mask)

    def _delete_slot(self, slots: memoryview, cap: int, i: int) -> int:
        """Empty slot ``i``: a tombstone, which probes pass over, unless the slot after it is
        empty (no probe goes past ``i`` then), in which case it and the tombstones just before
        it become empty slots. How many tombstones that adds (1, or minus those emptied)."""
        mask = cap - 1
        if slots[(i + 1) & mask] != 0:
            slots[i] = _TOMBSTONE
            return 1
        slots[i] = 0
        emptied = 0
        i = (i - 1) & mask
        while slots[i] == _TOMBSTONE:
            slots[i] = 0
            emptied += 1
            i = (i - 1) & mask
        return -emptied

    def _index_add(self, ref: int, h: int) -> None:
        if self._old_used:
            self._migrate_some(_MIGRATE_STEP)
        elif (self._used_slots + self._tombstones + 1) * 10 > self._cap * 7:
            # 70% taken: into an array twice the size, or (tombstones being most of it) one of
            # the same size, which the entries alone fill to at most 40%
            self._old = self._slots
            self._old_cap = self._cap
            self._old_used = self._used_slots
            self._migrate = 0
            if (self._used_slots + 1) * 10 > self._cap * 4:
                self._cap *= 2
            self._slots = _u32_array(self._cap)
            self._used_slots = 0
            self._tombstones = 0
            self._migrate_some(_MIGRATE_STEP)
        self._insert_slot(self._slots, self._cap, ref, h)
        self._used_slots += 1

    def _index_remove(self, ref: int, h: int) -> None:
        i = self._slot_of(self._slots, self._cap, ref, h)
        if i >= 0:
            self._tombstones += self._delete_slot(self._slots, self._cap, i)
            self._used_slots -= 1
            return 0
        if self._old_used:
            i = self._slot_of(self._old, self._old_cap, ref, h)
            if i >= 0:
                self._delete_slot(self._old, self._old_cap, i)  # (the migration empties its tombstones)
                self._old_used -= 1
                return 0
        raise AssertionError("item missing from the index")

    def grow_index(self, steps: int) -> bool:
        """Move up to ``steps`` slots of the index's old array across if it is growing (the LRU
        maintainer does so when it wakes, so a growth ends even when requests stop); True
        while a growth is still under way."""
        if self._old_used:
            self._migrate_some(steps)
        return self._old_used != 0

    def index_slots(self) -> int:
        """Slots the index's arrays hold, the old one's included while it grows (4 bytes each)."""
        return self._cap + self._old_cap

    def _migrate_some(self, steps: int) -> None:
        """Move about ``steps`` slots of the old array into the new one, in order, a *run* at a
        time: from the first occupied slot at the migration position to the next empty slot,
        every entry is moved and its slot emptied without shifting anything back. That breaks
        no probe of the old array: a probe goes from an entry's home slot to its own through
        occupied slots only, so only the entries after a removed slot in its run can have
        crossed it, and they leave with it. Every slot behind the position is empty (inserts
        go to the new array; a deletion's back-shift fills only the slot it empties, which is
        ahead), so one pass ends the growth; each entry moved costs one hash of its key (the
        back-shift of one slot at a time hashed the rest of its run again for every entry)."""
        old = self._old
        cap = self._old_cap
        mask = cap - 1
        i = self._migrate
        while steps > 0 and self._old_used:
            if i >= cap:
                i = 0  # (not reached while every slot behind the position is empty)
            if old[i] == 0:
                i += 1
                steps -= 1
                continue
            j = i
            entry = old[j]
            while entry != 0:  # the run from i to the next empty slot, all of it
                old[j] = 0
                if entry != _TOMBSTONE:
                    self._old_used -= 1
                    ref = entry & self._ref_mask
                    self._insert_slot(self._slots, self._cap, ref, self.item_hash(ref))
                    self._used_slots += 1
                steps -= 1
                j = (j + 1) & mask
                entry = old[j]
            i = j if j > i else cap
        self._migrate = i
        if self._old_used == 0:
            self._old = _u32_array(1)
            self._old_cap = 0

    # ----- the segmented LRU (see the module docstring) ------------------------------------------

    def _lru_link(self, ref: int, lst: int, size: int) -> None:
        """Put a linked item, of ``size`` bytes (:meth:`_stored_size`), at the head of list
        ``lst``."""
        word = ref * 2  # (the item's first 32-bit word: a ref is its byte offset / 8)
        head = self._head[lst]
        self._u8[ref * 8 + _LIST] = lst
        self._u32[word + _PREV_WORD] = 0
        self._u32[word + _NEXT_WORD] = head
        if head:
            self._u32[head * 2 + _PREV_WORD] = ref
        else:
            self._tail[lst] = ref
        self._head[lst] = ref
        self._list_items[lst] += 1
        self._list_bytes[lst] += size

    def _lru_unlink(self, ref: int) -> int:
        """Take a linked item off its list; returns its size (:meth:`_stored_size`)."""
        size = self._stored_size(ref * 8)
        self._lru_cut(ref, self._u8[ref * 8 + _LIST], size)
        return size

    def _lru_cut(self, ref: int, lst: int, size: int) -> None:
        """Take a linked item of ``size`` bytes off list ``lst``, the one it is on."""
        word = ref * 2
        prev = self._u32[word + _PREV_WORD]
        nxt = self._u32[word + _NEXT_WORD]
        if prev:
            self._u32[prev * 2 + _NEXT_WORD] = nxt
        else:
            self._head[lst] = nxt
        if nxt:
            self._u32[nxt * 2 + _PREV_WORD] = prev
        else:
            self._tail[lst] = prev
        self._list_items[lst] -= 1
        self._list_bytes[lst] -= size

    def _relink(self, ref: int, lru: int) -> None:
        """Move a linked item to the head of its class's list ``lru``."""
        lst = self._u8[ref * 8 + _LIST]
        size = self._stored_size(ref * 8)
        self._lru_cut(ref, lst, size)
        self._lru_link(ref, (lst & _CLASS_BITS) | lru, size)

    def _to_warm(self, ref: int, second: int) -> None:
        """A COLD item hit (or found ACTIVE) moves to WARM's head, not ACTIVE (memcached's
        do_item_update in segmented mode)."""
        base = ref * 8
        self._u32[(base + _ATIME) >> 2] = second
        self._u8[base + _BITS] &= ~_ACTIVE
        self._relink(ref, _WARM)
        self._moves_to_warm[self._u8[base + _LIST] & _CLASS_BITS] += 1

    def count_hit(self, ref: int) -> None:
        """A get hit on the item, counted on its list (``stats items``' hits_to_*)."""
        self._list_hits[self._u8[ref * 8 + _LIST]] += 1

    def activate(self, ref: int, second: int) -> None:
        """A hit on a FETCHED item that is not ACTIVE (segmented; memcached's do_item_bump):
        ACTIVE and its access time now; in COLD it moves to WARM at once."""
        base = ref * 8
        if self._u8[base + _LIST] & _LRU_BITS == _COLD:
            self._to_warm(ref, second)
        else:
            self._u32[(base + _ATIME) >> 2] = second
            self._u8[base + _BITS] |= _ACTIVE

    def bump(self, ref: int, second: int) -> None:
        """memcached's do_item_update (a hit when flat; add on an existing item, incr/decr):
        segmented, an ACTIVE COLD item moves to WARM, any other gets its access time now;
        flat, an item whose access time is a minute old gets now and its list's head."""
        base = ref * 8
        if self.segmented:
            if self._u8[base + _LIST] & _LRU_BITS == _COLD and self._u8[base + _BITS] & _ACTIVE:
                self._to_warm(ref, second)
            else:
                self._u32[(base + _ATIME) >> 2] = second
        elif self._u32[(base + _ATIME) >> 2] + _UPDATE_INTERVAL < second:
            self._u32[(base + _ATIME) >> 2] = second
            self._relink(ref, self._u8[base + _LIST] & _LRU_BITS)

    def _reclaim(self, ref: int) -> None:
        """Unlink an expired item found at a tail."""
        cls = self._u8[ref * 8 + _LIST] & _CLASS_BITS
        self._reclaimed[cls] += 1
        if not self._u8[ref * 8 + _BITS] & _FETCHED:
            self._expired_unfetched[cls] += 1
            self.expired_unfetched += 1
        self.reclaims += 1
        self.unlink(ref)

    def pull_tail(self, lst: int, total_bytes: int, flags: int, max_age: int) -> int:
        """memcached's lru_pull_tail on list ``lst``: how many items it reclaimed, evicted or
        moved (see the module docstring)."""
        search = self._tail[lst]
        if search == 0:
            return 0
        lru = lst & _LRU_BITS
        cls = lst & _CLASS_BITS
        second = int(self.now)
        removed = 0
        limit = self._pull_limit(lru, total_bytes) if lru <= _WARM else 0
        tries = _PULL_TRIES
        while tries > 0 and search != 0:
            tries -= 1
            word = search * 2
            nxt = self._u32[word + _PREV_WORD]
            expire_at = self._u32[word + _EXPIRE_WORD]
            if expire_at != 0 and expire_at <= self.now:
                self._reclaim(search)
                removed += 1
                search = nxt
                continue
            bits_at = search * 8 + _BITS
            if lru == _HOT or lru == _WARM:
                if self._u8[bits_at] & _ACTIVE:
                    self._u8[bits_at] &= ~_ACTIVE
                    removed += 1
                    if lru == _WARM:
                        self._moves_within[cls] += 1
                        self._relink(search, _WARM)
                        search = nxt
                        continue
                    self._moves_to_warm[cls] += 1
                    self._relink(search, _WARM)
                elif self._list_bytes[lst] > limit or second - self._u32[word + _ATIME_WORD] > max_age:
                    self._moves_to_cold[cls] += 1
                    self._relink(search, _COLD)
                    removed += 1
            elif lru == _COLD:
                if flags & _EVICT:
                    if self.evict:
                        self._evict(search)
                        removed += 1
                elif self._u8[bits_at] & _ACTIVE and self.segmented:
                    self._to_warm(search, self._u32[word + _ATIME_WORD])
                    removed += 1
            break
        return removed

    def _pull_limit(self, lru: int, total_bytes: int) -> int:
        """The bytes HOT or WARM (``lru``) may hold before its tail goes to COLD: its share of
        the class's ``total_bytes`` (memcached's HOT falls through to WARM's share at 0%)."""
        limit = total_bytes * self.hot_pct // 100 if lru == _HOT else 0
        if limit == 0:
            limit = total_bytes * self.warm_pct // 100
        return limit

    def _cold_run(self, lst: int, total_bytes: int, max_age: int, most: int) -> int:
        """What up to ``most`` pulls of HOT or WARM list ``lst`` (:meth:`pull_tail`) do while each
        moves its tail to COLD (neither expired nor ACTIVE, and the list over its limit or the
        item older than ``max_age``), done at once: that run of tail items is spliced onto
        COLD's head, in the order the pulls would leave it. How many items moved."""
        limit = self._pull_limit(lst & _LRU_BITS, total_bytes)
        cold = (lst & _CLASS_BITS) | _COLD
        second = int(self.now)
        listed = self._list_bytes[lst]
        last = self._tail[lst]  # the run's oldest
        first = 0  # ... and its newest
        search = last
        moved = 0
        run_bytes = 0
        while moved < most and search != 0:
            word = search * 2
            base = search * 8
            expire_at = self._u32[word + _EXPIRE_WORD]
            if expire_at != 0 and expire_at <= self.now or self._u8[base + _BITS] & _ACTIVE:
                break
            if listed - run_bytes <= limit and second - self._u32[word + _ATIME_WORD] <= max_age:
                break
            run_bytes += self._stored_size(base)
            self._u8[base + _LIST] = cold
            first = search
            moved += 1
            search = self._u32[word + _PREV_WORD]
        if moved == 0:
            return 0
        self._tail[lst] = search  # (the item newer than the run, if any, is the tail now)
        if search:
            self._u32[search * 2 + _NEXT_WORD] = 0
        else:
            self._head[lst] = 0
        head = self._head[cold]
        self._u32[first * 2 + _PREV_WORD] = 0
        self._u32[last * 2 + _NEXT_WORD] = head
        if head:
            self._u32[head * 2 + _PREV_WORD] = last
        else:
            self._tail[cold] = last
        self._head[cold] = first
        self._list_items[lst] -= moved
        self._list_bytes[lst] -= run_bytes
        self._list_items[cold] += moved
        self._list_bytes[cold] += run_bytes
        self._moves_to_cold[lst & _CLASS_BITS] += moved
        return moved

    def juggle(self, cls: int, budget: int) -> int:
        """memcached's lru_maintainer_juggle for class ``cls``, at most ``budget`` rounds per
        part: how many rounds moved something."""
        did = 0
        if self.temp_lru:
            while did < budget and self.pull_tail(cls | _TEMP, 0, 0, 0) > 0:
                did += 1
        total = 0
        hot_age = 0
        warm_age = 0
        if self.segmented:
            tail = self._tail[cls | _COLD]
            cold_age = int(self.now) - self._u32[(tail * 8 + _ATIME) >> 2] if tail else 0
            hot_age = int(cold_age * self.hot_factor)
            warm_age = int(cold_age * self.warm_factor)
            total = self._list_bytes[cls | _COLD] + self._list_bytes[cls | _HOT] + self._list_bytes[cls | _WARM]
        # What memcached's rounds do, in fewer steps (``batch_pulls``; the clock stands still
        # in a juggle): a COLD pull that found nothing to do finds nothing again while COLD's
        # tail is the same item (only a pull of COLD changes that tail, unless COLD was empty,
        # and then only to an item a pull leaves alone), so it is not repeated; and rounds
        # whose HOT pull (WARM's, while HOT's finds nothing: nothing else changes HOT) moves
        # the tail to COLD are done as one run (_cold_run)
        cold_idle_tail = 0
        hot_idle = False  # the last HOT pull moved nothing
        i = 0
        while i < budget:
            if self.batch_pulls and self.segmented and self._tail[cls | _COLD] == cold_idle_tail:
                if hot_idle:
                    run = self._cold_run(cls | _WARM, total, warm_age, budget - i)
                else:
                    run = self._cold_run(cls | _HOT, total, hot_age, budget - i)
                if run:
                    did += run
                    i += run
                    continue
            more = 0
            if self.pull_tail(cls | _HOT, total, 0, hot_age):
                more = 1
                hot_idle = False
            else:
                hot_idle = True
                if self.pull_tail(cls | _WARM, total, 0, warm_age):
                    more = 1
            if self.segmented and (self._tail[cls | _COLD] != cold_idle_tail or not self.batch_pulls):
                moved = self.pull_tail(cls | _COLD, total, 0, 0)
                if moved == 0:
                    cold_idle_tail = self._tail[cls | _COLD]
                more += moved
            if more == 0:
                break
            did += 1
            i += 1
        return did

    def new_list(self, cls: int, expire_at: int) -> int:
        """The list a new item of class ``cls`` enters (memcached's do_item_alloc)."""
        if self.temp_lru and expire_at != 0 and 0 <= expire_at - self.now <= self.temporary_ttl:
            return cls | _TEMP
        return cls | (_HOT if self.segmented else _COLD)

    # ----- chunks ---------------------------------------------------------------------------------

    def _free_chunk(self, ref: int, cls: int) -> None:
        self._push_free(ref, cls)
        self._chunks_used[cls] -= 1

    def _push_free(self, ref: int, cls: int) -> None:
        """Put chunk ``ref`` at the head of its class's free list."""
        base = ref * 8
        head = self._free_head[cls]
        self._u8[base + _BITS] = _FREE
        self._u32[(base + _NEXT) >> 2] = head
        if head:
            self._u32[(head * 8 + _PREV) >> 2] = ref
        self._free_head[cls] = ref
        self._free_count[cls] += 1

    def _unlist_free(self, ref: int, cls: int) -> None:
        """Take free chunk ``ref`` out of its class's free list, wherever it is in it."""
        base = ref * 8
        nxt = self._u32[(base + _NEXT) >> 2]
        if self._free_head[cls] == ref:
            self._free_head[cls] = nxt  # (the new head's prev is left as it is: unused)
        else:
            prev = self._u32[(base + _PREV) >> 2]
            self._u32[(prev * 8 + _NEXT) >> 2] = nxt
            if nxt:
                self._u32[(nxt * 8 + _PREV) >> 2] = prev
        self._free_count[cls] -= 1

    def _take_chunk(self, cls: int) -> int:
        """A chunk of class ``cls`` without evicting, or 0."""
        ref = self._free_head[cls]
        if ref:
            self._free_head[cls] = self._u32[(ref * 8 + _NEXT) >> 2]
            self._free_count[cls] -= 1
        else:
            if self._cut[cls] == 0 or self._cut[cls] + self._size[cls] > self._cut_end[cls]:
                page = self._new_page(cls)
                if page < 0:
                    return 0
                self._give_page(page, cls)
            at = self._cut[cls]
            self._cut[cls] = at + self._size[cls]
            ref = at >> 3
        self._chunks_used[cls] += 1
        return ref

    def _new_page(self, cls: int) -> int:
        """A page for class ``cls``: the pool's newest, else a fresh one while the limit
        allows (a class's first page is granted past the limit, as memcached does); -1 if none."""
        if self._pool:
            return self._pool.pop()
        if self.pages_used >= self.page_count and (self._pages[cls] > 0 or self.pages_used >= self._page_room):
            return -1
        return self.pages_used  # fresh pages are handed out of the mapping in order

    def _give_page(self, page: int, cls: int) -> None:
        """Page ``page`` (zeroed) to class ``cls``, which cuts its chunks from now on; what was
        left uncut of the page it cut before goes to its free list."""
        if page >= self._tag_pages:
            self._fit_tags(page + 1)
        start = (page + 1) * self.page_size
        size = self._size[cls]
        at = self._cut[cls]
        while at and at + size <= self._cut_end[cls]:
            self._push_free(at >> 3, cls)
            at += size
        self._pages[cls] += 1
        self._class_pages[cls].append(page)
        if page == self.pages_used:
            self.pages_used += 1
        self._cut[cls] = start
        self._cut_end[cls] = start + self._perslab[cls] * size

    def _alloc(self, cls: int) -> int:
        """A chunk of class ``cls``, freeing one as memcached's do_item_alloc_pull does (see
        the module docstring); 0 if none could be had."""
        ref = 0
        rounds = 0
        while rounds < _ALLOC_ROUNDS:
            if not self.segmented:
                self.pull_tail(cls | _COLD, 0, 0, 0)  # expired tail items first
            ref = self._take_chunk(cls)
            if ref:
                break
            if self._items[cls] == 0:
                if not self._move_page_to(cls):
                    break
            elif self.pull_tail(cls | _COLD, 0, _EVICT, 0) <= 0:
                if not self.segmented:
                    break
                self.pull_tail(cls | _HOT, 0, 0, 0)
            rounds += 1
        if rounds > 0:
            self._direct_reclaims[cls] += rounds
        return ref

    def _move_page_to(self, cls: int) -> bool:
        """Give ``cls`` a page of the class with the most pages. False if no other class
        has one."""
        victim = -1
        most = 0
        for c in range(self.class_count):
            if c != cls and self._pages[c] > most:
                most = self._pages[c]
                victim = c
        return victim >= 0 and self.move_page(victim, cls)

    def move_page(self, victim: int, cls: int) -> bool:
        """Take a page of class ``victim`` (its newest, not one being cleared): drop every item
        with a chunk on it, zero it, give it to class ``cls``. False if ``victim`` has no such
        page. (An allocation does this when its class has nothing to evict and no page can be
        had; ``slabs reassign`` clears a page without dropping its items, see begin_clearing.)"""
        if victim == cls or not 0 <= victim < self.class_count or not 0 <= cls < self.class_count:
            raise ValueError("two different classes are needed")
        page = -1
        for p in self._class_pages[victim]:  # the newest page: it is likely the emptiest
            if p != self.clearing:
                page = p
        if page < 0:
            return False
        start = (page + 1) * self.page_size
        size = self._size[victim]
        for k in range(self._perslab[victim]):
            chunk = (start + k * size) >> 3
            state = self._u8[chunk * 8 + _BITS] & _STATE_BITS
            if state == _ITEM:
                self._evict(chunk)
            elif state == _CHAIN:
                self._evict(self._u32[(chunk * 8 + _PREV) >> 2])
        # the page's free chunks leave the victim's free list
        uncut = self._stop_cutting(page, victim)
        at = start
        while at < uncut:
            self._unlist_free(at >> 3, victim)
            at += size
        self._take_page(page, victim)
        self._give_page(page, cls)
        self.page_moves += 1
        return True

    def _stop_cutting(self, page: int, cls: int) -> int:
        """Class ``cls`` cuts no more chunks of its page ``page``: the offset where the chunks
        it never cut there begin (the end of its chunks if it cut them all)."""
        start = (page + 1) * self.page_size
        if start <= self._cut[cls] < start + self.page_size:
            uncut = self._cut[cls]
            self._cut[cls] = 0
            self._cut_end[cls] = 0
            return uncut
        return start + self._perslab[cls] * self._size[cls]

    def _take_page(self, page: int, cls: int) -> None:
        """Page ``page``, emptied (no item has a chunk on it, none is on a free list), leaves
        class ``cls``, zeroed."""
        self._pages[cls] -= 1
        self._class_pages[cls].remove(page)
        self._zero((page + 1) * self.page_size, self.page_size)

    # ----- clearing a page for another class (kvshard.slab_mover) ---------------------------------

    def class_pages(self, cls: int) -> int:
        """Pages class ``cls`` owns (``POOL``: pages in the global pool)."""
        return len(self._pool) if cls == POOL else self._pages[cls]

    def begin_clearing(self, cls: int) -> int:
        """Start clearing class ``cls``'s oldest page (memcached takes that one: it likely holds
        the oldest items); returns it. The class cuts no more chunks of it; its chunks are then
        emptied by :meth:`clear_chunks`."""
        if self.clearing >= 0:
            raise ValueError("a page is being cleared already")
        if not self._class_pages[cls]:
            raise ValueError("the class has no page")
        page = self._class_pages[cls][0]
        self.clearing = page
        self._clearing_class = cls
        self._clearing_uncut = self._stop_cutting(page, cls)
        return page

    def clear_chunks(self, first: int, budget: int) -> int:
        """Empty chunks ``first``, ``first + 1``, ... (at most ``budget``) of the page being
        cleared, in order; returns the next one (the class's chunks per page: all done).

        An item (or a chain link) is rescued: copied to a free chunk of its class off the page
        (:meth:`_spare_chunk`). An expired one is unlinked instead, and so is one for which no
        chunk is free (``evictions_nomem``: memcached's name; not counted as an eviction). Then
        the chunk, free, is claimed: off its free list (chunks never cut are on none), CLAIMED."""
        cls = self._clearing_class
        size = self._size[cls]
        start = (self.clearing + 1) * self.page_size
        end = start + self.page_size
        last = min(first + budget, self._perslab[cls])
        for k in range(first, last):
            at = start + k * size
            ref = at >> 3
            state = self._u8[at + _BITS] & _STATE_BITS
            if state == _ITEM or state == _CHAIN:
                head = ref if state == _ITEM else self._u32[(at + _PREV) >> 2]
                expire_at = self._u32[(head * 8 + _EXPIRE_AT) >> 2]
                if expire_at and expire_at <= self.now:
                    self.unlink(head)
                elif state == _ITEM and self._rescue(ref, cls, start, end):
                    self.rescues += 1
                elif state == _CHAIN and self._rescue_link(ref, cls, start, end):
                    self.chunk_rescues += 1
                else:
                    self.evictions_nomem += 1
                    self.unlink(head)
            if self._u8[at + _BITS] & _STATE_BITS == _FREE:
                if at < self._clearing_uncut:
                    self._unlist_free(ref, cls)
                self._u8[at + _BITS] = _CLAIMED
        return last

    def finish_clearing(self, dst: int) -> None:
        """Hand the cleared page (every chunk claimed) to class ``dst``, or to the pool
        (``POOL``)."""
        page = self.clearing
        self.clearing = -1
        self._take_page(page, self._clearing_class)
        if dst == POOL:
            self._pool.append(page)
        else:
            self._give_page(page, dst)

    def give_pool_page(self, dst: int) -> bool:
        """A page of the pool to class ``dst``; False if the pool is empty."""
        if not self._pool:
            return False
        self._give_page(self._pool.pop(), dst)
        return True

    def _spare_chunk(self, cls: int, start: int, end: int) -> int:
        """A free chunk of class ``cls`` off the page ``[start, end)`` being cleared, without a
        new page (memcached's SLABS_ALLOC_NO_NEWPAGE), counted as used; 0 if there is none.
        Free chunks of the page met on the free list on the way are claimed (inline reclaim)."""
        ref = self._free_head[cls]
        while ref:
            self._unlist_free(ref, cls)
            if not start <= ref * 8 < end:
                self._chunks_used[cls] += 1
                return ref
            self._u8[ref * 8 + _BITS] = _CLAIMED
            self.inline_reclaim += 1
            ref = self._free_head[cls]
        at = self._cut[cls]  # (never on the page being cleared: its class stopped cutting it)
        if at == 0 or at + self._size[cls] > self._cut_end[cls]:
            return 0
        self._cut[cls] = at + self._size[cls]
        self._chunks_used[cls] += 1
        return at >> 3

    def _rescue(self, ref: int, cls: int, start: int, end: int) -> bool:
        """Move the item at ``ref`` to a spare chunk of its class (its CAS, marks and last
        access kept; to the head of its LRU, as memcached relinks a rescued item); False if
        there is none."""
        new = self._spare_chunk(cls, start, end)
        if new == 0:
            return False
        base = ref * 8
        self._copy(new * 8, base, min(self._size[cls], self._stored_size(base)))
        lst = self._u8[base + _LIST]  # (its class and its LRU: it stays on the same list)
        self._lru_link(new, lst, self._lru_unlink(ref))
        self._reindex(ref, new)
        link = self._more(base)
        while link:  # a chain's links name their head
            self._u32[(link * 8 + _PREV) >> 2] = new
            link = self._u32[(link * 8 + _NEXT) >> 2]
        self._u8[base + _BITS] = _CLAIMED
        self._chunks_used[cls] -= 1
        return True

    def _rescue_link(self, ref: int, cls: int, start: int, end: int) -> bool:
        """Move the chain link at ``ref`` to a spare chunk of its class; False if there is none."""
        new = self._spare_chunk(cls, start, end)
        if new == 0:
            return False
        base = ref * 8
        self._copy(new * 8, base, self._size[cls])
        head = self._u32[(base + _PREV) >> 2]
        more_at = self._more_at(head * 8)
        link = self._u32[more_at >> 2]
        if link == ref:
            self._u32[more_at >> 2] = new
        else:
            while self._u32[(link * 8 + _NEXT) >> 2] != ref:
                link = self._u32[(link * 8 + _NEXT) >> 2]
            self._u32[(link * 8 + _NEXT) >> 2] = new
        self._u8[base + _BITS] = _CLAIMED
        self._chunks_used[cls] -= 1
        return True

    def _reindex(self, old: int, new: int) -> None:
        """The index entry of the item at ``old`` names ``new`` instead (same hash, same slot)."""
        h = self.item_hash(old)
        tag = h & self._tag_mask
        i = self._slot_of(self._slots, self._cap, old, h)
        if i >= 0:
            self._slots[i] = new | tag
            return 0
        i = self._slot_of(self._old, self._old_cap, old, h) if self._old_used else -1
        if i < 0:
            raise AssertionError("item missing from the index")
        self._old[i] = new | tag

    def _copy(self, to: int, at: int, n: int) -> None:
        if cython.compiled:
            memcpy(cython.address(self._u8[0]) + to, cython.address(self._u8[0]) + at, n)
            return
        self._u8[to : to + n] = self._u8[at : at + n]

    def _evict(self, ref: int) -> None:
        base = ref * 8
        cls = self._u8[base + _LIST] & _CLASS_BITS
        marks = self._u8[base + _BITS]
        self._evicted[cls] += 1
        if self._u32[(base + _EXPIRE_AT) >> 2] != 0:
            self._evicted_nonzero[cls] += 1
        if not marks & _FETCHED:
            self._evicted_unfetched[cls] += 1
            self.evicted_unfetched += 1
        if marks & _ACTIVE:
            self._evicted_active[cls] += 1
            self.evicted_active += 1
        self._evicted_time[cls] = max(0, int(self.now) - self._u32[(base + _ATIME) >> 2])
        self.evictions += 1
        if self.evict_hook is not None:
            self.evict_hook(ref)
        self.unlink(ref)

    def _zero(self, at: int, n: int) -> None:
        if cython.compiled:
            memset(cython.address(self._u8[0]) + at, 0, n)
            return
        self._u8[at : at + n] = bytes(n)

    # ----- items ----------------------------------------------------------------------------------

    def store(self, key: bytes, value: bytes, flags: int, expire_at: int, cas: int, marks: int = 0) -> int:
        """Link a new item under ``key`` (replacing any there): its ref, or 0 if it does not
        fit in the arena at all (the old item is then gone too, as memcached drops it).
        ``expire_at``: the Unix second it expires at (0: never)."""
        nkey = len(key)
        nbytes = len(value)
        h = key_hash(key)
        old = self._find_hashed(key, h)
        size = self.item_size(nkey, nbytes, flags)
        cls = self._size_class(size)
        chain_links = 0
        if size > self.chunk_max:
            chain_links = self.chunks_needed(nkey, nbytes, flags) - 1
            if chain_links + 1 > self.page_count * self._perslab[cls]:
                if old:
                    self._unlink(old, h)
                return 0
        if old:  # the old item goes first: its memory may be what the new one needs
            self._unlink(old, h)
        ref = self._alloc(cls)
        if ref == 0:
            self._outofmemory[cls] += 1
            return 0
        base = ref * 8
        bits = _ITEM | ((marks << _MARKS_SHIFT) & _MARK_BITS) | (_HAS_FLAGS if flags else 0)
        if cython.compiled:
            self._u64[(base + _CAS) >> 3] = cas
            self._u32[(base + _EXPIRE_AT) >> 2] = expire_at
            self._u32[(base + _NBYTES) >> 2] = nbytes
            self._u32[(base + _ATIME) >> 2] = int(self.now)
            self._u8[base + _NKEY] = nkey
            self._u8[base + _BITS] = bits
            self._u8[base + _CHECK] = 0
        else:  # (one call where the stores above are seven; the list byte, 0 here, is _lru_link's)
            _CAS_TO_CHECK.pack_into(self._u8, base + _CAS, cas, expire_at, nbytes, int(self.now), nkey, bits)
        at = base + _HEADER
        if flags:
            self._u32[at >> 2] = flags
            at += _FLAG_BYTES
        first = nbytes
        if chain_links:
            self._u32[at >> 2] = 0  # (more: the links follow, see _fill_chain)
            at += _MORE_BYTES
            first = base + self.chunk_max - at - nkey
        self._write(at, key, 0, nkey)
        # a chain's head is linked (and indexed) before the links are taken, so an eviction made
        # to find room for a link can never pick a half-built item: it is at the LRU head
        self._write(at + nkey, value, 0, first)
        self._lru_link(ref, self.new_list(cls, expire_at), size)
        self._index_add(ref, h)
        self._items[cls] += 1
        self.count += 1
        self.bytes += size
        self._class_bytes[cls] += size
        if chain_links and not self._fill_chain(ref, value, first, chain_links):
            if self._find_hashed(key, h) == ref:
                self._unlink(ref, h)  # (still ours: a link could not be had)
            return 0
        return ref

    def _fill_chain(self, head: int, value: bytes, done: int, links: int) -> bool:
        """Take and fill the continuation chunks of a linked head. False if the arena
        cannot give them, or if finding room evicted the head itself (it is ACTIVE meanwhile,
        so only when every other item of its class was too)."""
        cls = self.class_count - 1
        per_link = self.chunk_max - _HEADER
        marks = self._u8[head * 8 + _BITS]
        last = 0
        for _ in range(links):
            self._u8[head * 8 + _BITS] |= _ACTIVE  # not a victim for its own links
            link = self._alloc(cls)
            if link == 0:
                return False
            if self._u8[head * 8 + _BITS] & _STATE_BITS != _ITEM or link == head:
                self._free_chunk(link, cls)
                return False
            base = link * 8
            self._u8[base + _BITS] = _CHAIN
            self._u8[base + _LIST] = cls
            self._u32[(base + _PREV) >> 2] = head
            self._u32[(base + _NEXT) >> 2] = 0
            take = min(per_link, len(value) - done)
            self._write(base + _HEADER, value, done, take)
            done += take
            if last:
                self._u32[(last * 8 + _NEXT) >> 2] = link
            else:
                self._u32[self._more_at(head * 8) >> 2] = link
            last = link
        self._u8[head * 8 + _BITS] = marks
        return True

    def rewrite(self, ref: int, value: bytes) -> None:
        """Overwrite a one-chunk item's value with one of the same length (incr/decr)."""
        base = ref * 8
        if self._u32[(base + _NBYTES) >> 2] != len(value) or self._more_at(base):
            raise ValueError("rewrite needs a value of the same length in one chunk")
        self._write(self._key_at(base) + self._u8[base + _NKEY], value, 0, len(value))

    def unlink(self, ref: int) -> None:
        """Remove a linked item: out of the index and its LRU, its chunks freed."""
        self._unlink(ref, self.item_hash(ref))

    def _unlink(self, ref: int, h: int) -> None:
        """:meth:`unlink` where the item's hash ``h`` is known (a store replacing it has it)."""
        base = ref * 8
        cls = self._u8[base + _LIST] & _CLASS_BITS
        self._index_remove(ref, h)
        size = self._lru_unlink(ref)
        self._items[cls] -= 1
        self.count -= 1
        self.bytes -= size
        self._class_bytes[cls] -= size
        more = self._more(base)
        self._free_chunk(ref, cls)
        last = self.class_count - 1
        while more:
            nxt = self._u32[(more * 8 + _NEXT) >> 2]
            self._free_chunk(more, last)
            more = nxt

    def flush(self) -> None:
        """Drop every item (pages stay with their classes)."""
        for lst in range(_LISTS):
            while self._tail[lst]:
                self.unlink(self._tail[lst])

    def class_stats(self) -> list[dict[str, int]]:
        """Per class that has a page or an item: what ``stats slabs`` and ``stats items``
        report (``age``, ``age_hot``, ``age_warm``: seconds since the last access of the tail
        item of COLD, HOT, WARM)."""
        out = []
        for c in range(self.class_count):
            if self._pages[c] == 0 and self._items[c] == 0:
                continue
            uncut = 0
            if self._cut[c]:
                uncut = (self._cut_end[c] - self._cut[c]) // self._size[c]
            out.append({
                "id": c + 1,
                "chunk_size": self._size[c],
                "chunks_per_page": self._perslab[c],
                "total_pages": self._pages[c],
                "total_chunks": self._pages[c] * self._perslab[c],
                "used_chunks": self._chunks_used[c],
                "free_chunks": self._free_count[c],
                "free_chunks_end": uncut,
                "number": self._items[c],
                "number_hot": self._list_items[c | _HOT],
                "number_warm": self._list_items[c | _WARM],
                "number_cold": self._list_items[c | _COLD],
                "number_temp": self._list_items[c | _TEMP],
                "age_hot": self._tail_age(c | _HOT),
                "age_warm": self._tail_age(c | _WARM),
                "age": self._tail_age(c | _COLD),
                "mem_requested": self._class_bytes[c],
                "evicted": self._evicted[c],
                "evicted_nonzero": self._evicted_nonzero[c],
                "evicted_time": self._evicted_time[c],
                "outofmemory": self._outofmemory[c],
                "reclaimed": self._reclaimed[c],
                "expired_unfetched": self._expired_unfetched[c],
                "evicted_unfetched": self._evicted_unfetched[c],
                "evicted_active": self._evicted_active[c],
                "moves_to_cold": self._moves_to_cold[c],
                "moves_to_warm": self._moves_to_warm[c],
                "moves_within_lru": self._moves_within[c],
                "direct_reclaims": self._direct_reclaims[c],
                "hits_to_hot": self._list_hits[c | _HOT],
                "hits_to_warm": self._list_hits[c | _WARM],
                "hits_to_cold": self._list_hits[c | _COLD],
                "hits_to_temp": self._list_hits[c | _TEMP],
            })
        return out

    def _tail_age(self, lst: int) -> int:
        tail = self._tail[lst]
        return max(0, int(self.now) - self._u32[(tail * 8 + _ATIME) >> 2]) if tail else 0

    def reset_lru_counts(self) -> None:
        """``stats reset``: the segmented LRU's per-class counts start again from 0 (memcached's
        item_stats_reset and its threads' lru_hits)."""
        for c in range(self.class_count):
            self._moves_to_cold[c] = 0
            self._moves_to_warm[c] = 0
            self._moves_within[c] = 0
            self._direct_reclaims[c] = 0
        self.reset_hits()

    def class_hits(self, cls: int) -> int:
        """Get hits on class ``cls``'s items: its hits_to_hot/warm/cold/temp summed (memcached's
        slab class get_hits); 0 for a class the arena does not have."""
        if not 0 <= cls < self.class_count:
            return 0
        return (self._list_hits[cls | _HOT] + self._list_hits[cls | _WARM] + self._list_hits[cls | _COLD]
                + self._list_hits[cls | _TEMP])

    def total_hits(self) -> int:
        """Get hits on every class's items."""
        n = 0
        for lst in range(_LISTS):
            n += self._list_hits[lst]
        return n

    def reset_hits(self) -> None:
        """The hits_to_* counts start again from 0 (``stats reset``)."""
        for lst in range(_LISTS):
            self._list_hits[lst] = 0

    def lru_totals(self) -> dict[str, int]:
        """The segmented LRU's counts summed over the classes (``stats``)."""
        totals = {"moves_to_cold": 0, "moves_to_warm": 0, "moves_within_lru": 0, "direct_reclaims": 0}
        for c in range(self.class_count):
            totals["moves_to_cold"] += self._moves_to_cold[c]
            totals["moves_to_warm"] += self._moves_to_warm[c]
            totals["moves_within_lru"] += self._moves_within[c]
            totals["direct_reclaims"] += self._direct_reclaims[c]
        return totals

    def refs(self) -> list[int]:
        """Every linked item's ref, most recently used first within each list."""
        out = []
        for lst in range(_LISTS):
            ref = self._head[lst]
            while ref:
                out.append(ref)
                ref = self._u32[(ref * 8 + _NEXT) >> 2]
        return out

    # ----- walks and limits (kvshard.crawler, kvshard.arena_walks, cache_memlimit) -----------------

    def lru_tail(self, lst: int) -> int:
        """The least recently used item of list ``lst`` (a class | HOT_LRU...; 0: none)."""
        return self._tail[lst]

    def lru_head(self, lst: int) -> int:
        """The most recently used item of list ``lst`` (0: none)."""
        return self._head[lst]

    def list_items(self, lst: int) -> int:
        """Items on list ``lst``."""
        return self._list_items[lst]

    def newer(self, ref: int) -> int:
        """The item after ``ref`` towards its LRU's head (0: none)."""
        return self._u32[(ref * 8 + _PREV) >> 2]

    def older(self, ref: int) -> int:
        """The item after ``ref`` towards its LRU's tail (0: none)."""
        return self._u32[(ref * 8 + _NEXT) >> 2]

    def is_item(self, ref: int) -> bool:
        """``ref`` is the head chunk of a linked item (not free, not a chain link)."""
        return self._u8[ref * 8 + _BITS] & _STATE_BITS == _ITEM

    def key_length(self, ref: int) -> int:
        return self._u8[ref * 8 + _NKEY]

    def class_items(self, cls: int) -> int:
        """Items linked in class ``cls``."""
        return self._items[cls]

    def reclaim_expired(self, ref: int) -> bool:
        """Unlink an expired item a walk found (the crawler), counting it in its class's
        expired_unfetched if it was never fetched (the arena's total of those counts only what
        allocation reclaims); True if so."""
        base = ref * 8
        unfetched = not self._u8[base + _BITS] & _FETCHED
        if unfetched:
            self._expired_unfetched[self._u8[base + _LIST] & _CLASS_BITS] += 1
        self.unlink(ref)
        return unfetched

    def set_limit(self, limit: int) -> bool:
        """A new limit (memcached's ``cache_memlimit``): pages already given stay with their
        classes; past the limit no new page is given (but a class's first), so stores evict
        instead. False, limit unchanged, if the mapping cannot hold that many pages."""
        pages = max(1, limit // self.page_size)
        if pages + self.class_count > self._page_room:
            return False
        self.page_count = pages
        self.limit = limit
        self._fit_tags(self.page_count + self.class_count)
        return True
