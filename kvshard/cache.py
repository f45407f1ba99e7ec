"""One shard's share of the cache: items, LRU eviction, expiry, CAS, counters.

Theory of operation
-------------------
Each shard owns one :class:`Cache`; only that shard's thread touches it, so there are no locks.
Items live in an ``OrderedDict`` in the order they were stored (a store moves the key to the
end). As in memcached's segmented LRU, a hit does not move an item: it only marks it (see
``marks`` below). Eviction pops from the front, and an item found there that is ACTIVE (hit
at least twice) gets a second chance: its ACTIVE mark is cleared and it goes to the end, as
memcached moves an active item from the COLD tail to WARM instead of evicting it. So a scan of
keys read once pushes out other keys read once, not the ones in steady use, and a hit costs
no relinking. At most :data:`_MAX_RESCUES` items are moved per store, then the front item goes
whatever its marks (memcached likewise looks at a bounded number of tail items).

An item is the tuple ``(block, flags, expire_at, cas, header_len, seen, marks)``:
  * ``block`` is the item already rendered as the ASCII protocol's answer to ``get``,
    ``VALUE <key> <flags> <bytes>\r\n<data>\r\n``, so the most common reply needs no
    formatting and no copy; the data is ``block[header_len:-2]`` (:func:`item_value`), which
    the commands that change a value (append, incr, ...) and other protocols slice out;
  * ``expire_at`` is 0 (never) or an absolute Unix time (float). memcached's rules turn the
    protocol's exptime into it (:meth:`Cache.expire_at`): 0 never, negative already expired,
    up to 30 days relative to now, larger an absolute Unix time.
  * ``cas`` is unique across shards: ``counter * shard_count + shard_id`` (unless a meta
    command's ``E`` chose it);
  * ``seen`` is the Unix second the item was stored or last became active, ``marks`` a set
    of bits (:data:`FETCHED`, :data:`ACTIVE`, :data:`STALE`, :data:`WIN_SENT`,
    :data:`BINARY_KEY`). They follow memcached's segmented LRU, which the meta commands
    show (``mg h l``, ``me``): the first hit only marks an item FETCHED; the next makes it
    ACTIVE and sets ``seen`` to now; an active item's ``seen`` is refreshed at most once a
    minute (memcached's LRU maintainer clears ACTIVE now and then; this is its stand-in).
    A hit checks one mark and one time against :attr:`Cache.active_horizon` (moved by
    :meth:`Cache.reclaim`, every second) before doing any of that. ``seen`` objects are
    shared by every item of the same second, so the two fields cost 16 bytes an item.

Memory: every item is charged ``len(key) + len(block) + ITEM_OVERHEAD`` against ``limit``
(the shard's share of ``-m``). ``ITEM_OVERHEAD`` is what CPython really spends per item beyond
the key and value bytes (two bytes objects' headers, the tuple, the CAS int, the ordered-dict
entry and node), measured and rounded up, so the process RSS follows ``-m``. A store that
would pass the limit first evicts least recently used items; an item larger than the whole
limit is refused (``SERVER_ERROR out of memory storing object``).

Expiry is lazy (an expired item found by a command is removed then) plus a periodic reclaim
(:meth:`Cache.reclaim`) driven by a heap of (expire_at, key) for items that have an expiry.
Stale heap entries (the key was overwritten or deleted) are skipped; the heap is rebuilt when
it holds far more entries than items.

``flush_all`` clears everything now; with a delay the server calls :meth:`Cache.flush` when
the delay has passed (memcached's semantics: items stored before that moment are gone).

``watch`` (kvshard.watchers): while some connection watches, ``watch_flags`` is not 0 and the
lookups, stores and evictions memcached logs are told to ``watch_log`` (the shard's hub): a
lookup wherever memcached's ``do_item_get`` runs (a ``set`` looks up the old item too), a
store's result, an eviction. Otherwise that one integer test is all they cost.
"""

from __future__ import annotations

import heapq
import math
import re
import time
from collections import OrderedDict
from typing import Any, Callable, Final

from .counters import CacheCounters
from .protocol.ascii import value_line
from .protocol.watch import LOG_FETCHERS, LOG_MUTATIONS
from .watch_lines import STORE_STATUS as _STORE_STATUS
from .watch_lines import TOO_LARGE, slab_class

__all__ = [
    "Cache",
    "Item",
    "item_value",
    "render",
    "ITEM_OVERHEAD",
    "RELATIVE_EXPTIME_LIMIT",
    "FETCHED", "ACTIVE", "STALE", "WIN_SENT", "BINARY_KEY",
    "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "NO_MEMORY", "NON_NUMERIC",
]

ITEM_OVERHEAD: Final = 336
RELATIVE_EXPTIME_LIMIT: Final = 60 * 60 * 24 * 30
_UINT64: Final = 1 << 64

# store() results (small ints: they cross shards as one byte)
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

# item marks
STALE: Final = 1       # md I / ms I: the value is stale (mg answers X)
WIN_SENT: Final = 2    # a client was told it won the right to recache (W); others see Z
BINARY_KEY: Final = 4  # stored by a meta command with a base64 key (k answers in base64)
FETCHED: Final = 8     # hit at least once
ACTIVE: Final = 16     # hit again since: the highest mark, so "marks < ACTIVE" = not active
_ACTIVE_REFRESH: Final = 60  # seconds between refreshes of an active item's ``seen``
_MAX_RESCUES: Final = 50  # active items given a second chance per store, at most

Item = tuple[bytes, int, float, int, int, int, int]


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
    ) -> None:
        self.limit = limit
        self._items: OrderedDict[bytes, Item] = OrderedDict()
        self._expiries: list[tuple[float, bytes]] = []
        self._clock = clock
        self._cas_counter = 0
        self._shard_id = shard_id
        self._shard_count = shard_count
        self.used = 0
        self.stats = CacheCounters()
        # bound once: a call through these skips the method lookup by name on every request
        self._lookup = self._items.get
        self._to_end = self._items.move_to_end
        self._second = int(clock())
        # a hit on an item that is not ACTIVE, or whose ``seen`` is older than this, updates it
        self.active_horizon = self._second - _ACTIVE_REFRESH
        # the log streams some connection watches (0: nobody) and the hub to tell (see above)
        self.watch_flags = 0
        self.watch_log: Any = None

    # ----- helpers ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def expire_at(self, exptime: int) -> float:
        """The protocol's exptime as an absolute time (0 = never)."""
        if exptime == 0:
            return 0.0
        if exptime < 0:
            return 1.0  # in the past: already expired
        if exptime <= RELATIVE_EXPTIME_LIMIT:
            return self._clock() + exptime
        return float(exptime)

    def now_second(self) -> int:
        """The current Unix second (one shared int object per second, for ``seen``)."""
        now = int(self._clock())
        if now != self._second:
            self._second = now
        return self._second

    def remaining(self, expire_at: float) -> int:
        """Whole seconds an item with this ``expire_at`` (non-zero) has left, counted as
        memcached does (a TTL of 100 set just now has 100 left)."""
        return math.ceil(expire_at - self._clock() - 1e-3)

    def _next_cas(self) -> int:
        self._cas_counter += 1
        return self._cas_counter * self._shard_count + self._shard_id

    def _live(self, key: bytes) -> Item | None:
        if self.watch_flags:
            self._watch_lookup(key)
        item = self._lookup(key)
        if item is None:
            return None
        expire_at = item[2]
        if expire_at and expire_at <= self._clock():
            self._remove(key, item)
            self.stats.get_expired += 1
            return None
        return item

    def _remove(self, key: bytes, item: Item) -> None:
        del self._items[key]
        self.used -= len(key) + len(item[0]) + ITEM_OVERHEAD

    def _put(self, key: bytes, value: bytes, flags: int, expire_at: float, cas: int = 0, marks: int = 0) -> int:
        """Insert or replace (with a new CAS unless ``cas`` is given); evict as needed.
        Returns STORED or NO_MEMORY."""
        block, header_len = render(key, flags, value)
        size = len(key) + len(block) + ITEM_OVERHEAD
        old = self._lookup(key)
        if size > self.limit:
            if old is not None:
                self._remove(key, old)
            self.stats.store_no_memory += 1
            return NO_MEMORY
        if old is not None:  # replaced in place: uncounted now, and moved to the MRU end
            self.used -= len(key) + len(old[0]) + ITEM_OVERHEAD
            self._to_end(key)
        items = self._items
        rescues = 0
        while self.used + size > self.limit and items:
            victim, victim_item = items.popitem(last=False)
            if victim_item is old:  # (uncounted already; the new item takes its place)
                continue
            victim_marks = victim_item[6]
            if victim_marks >= ACTIVE and rescues < _MAX_RESCUES:
                items[victim] = victim_item[:6] + (victim_marks & ~ACTIVE,)
                rescues += 1
                continue
            self.used -= len(victim) + len(victim_item[0]) + ITEM_OVERHEAD
            self.stats.evictions += 1
            if self.watch_flags:
                self._watch_eviction(victim, victim_item)
        items[key] = (block, flags, expire_at, cas or self._next_cas(), header_len, self.now_second(), marks)
        self.used += size
        self.stats.total_items += 1
        if expire_at:
            heapq.heappush(self._expiries, (expire_at, key))
        return STORED

    # ----- commands ----------------------------------------------------------------------------

    def get(self, key: bytes) -> Item | None:
        """A hit marks the item (FETCHED, then ACTIVE; it is not moved). (``cmd_get`` is not
        counted here: it is always get_hits + get_misses, see :meth:`counters`.)"""
        if self.watch_flags:
            self._watch_lookup(key)
        item = self._lookup(key)
        if item is not None:
            expire_at = item[2]
            if not expire_at or expire_at > self._clock():
                self.stats.get_hits += 1
                if item[6] < ACTIVE or item[5] < self.active_horizon:
                    item = self._record_hit(key, item)
                return item
            self._remove(key, item)
            self.stats.get_expired += 1
        self.stats.get_misses += 1
        return None

    def counters(self) -> dict[str, int]:
        """The statistics counters, derived ones included."""
        out = self.stats.as_dict()
        out["cmd_get"] = out["get_hits"] + out["get_misses"]
        return out

    def touch(self, key: bytes, exptime: int) -> Item | None:
        """Set a new expiry (touch, gat, gats: memcached counts all three as touches)."""
        self.stats.cmd_touch += 1
        item = self._live(key)
        if item is None:
            self.stats.touch_misses += 1
            return None
        self.stats.touch_hits += 1
        return self.bump(key, self.amend(key, item, expire_at=self.expire_at(exptime)))

    # ----- primitives for protocol layers (the meta commands) ---------------------------------

    def peek(self, key: bytes) -> Item | None:
        """The live item, counting no hit or miss and leaving its LRU place and marks alone."""
        return self._live(key)

    def bump(self, key: bytes, item: Item) -> Item:
        """Record a hit on a live item: marks and ``seen`` updated (it stays where it is)."""
        if item[6] < ACTIVE or item[5] < self.active_horizon:
            item = self._record_hit(key, item)
        return item

    def _record_hit(self, key: bytes, item: Item) -> Item:
        marks = item[6]
        if not marks & FETCHED:
            item = item[:6] + (marks | FETCHED,)
        else:
            item = item[:5] + (self.now_second(), marks | ACTIVE)
        self._items[key] = item
        return item

    def amend(
        self, key: bytes, item: Item, *, expire_at: float | None = None, cas: int | None = None,
        marks: int | None = None,
    ) -> Item:
        """Change a live item's expiry, CAS or marks in place (its LRU place stays)."""
        new_expire = item[2] if expire_at is None else expire_at
        item = (
            item[0], item[1], new_expire, item[3] if cas is None else cas, item[4], item[5],
            item[6] if marks is None else marks,
        )
        self._items[key] = item
        if expire_at is not None and expire_at:
            heapq.heappush(self._expiries, (expire_at, key))
        return item

    def create(
        self, key: bytes, value: bytes, expire_at: float, cas: int = 0, flags: int = 0, marks: int = 0,
    ) -> Item | None:
        """Store an item without counting a set (mg N, ma N, md x); None if there is no
        room. ``cas`` 0 means a new CAS unique."""
        if self._put(key, value, flags, expire_at, cas, marks) != STORED:
            return None
        return self._items[key]

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
        if self.watch_flags:
            self._watch_store(b"cas" if cas and op not in (b"append", b"prepend") else op, key, result, flags, exptime,
                              len(value))
        return result

    def _store_checked(
        self, op: bytes, key: bytes, flags: int, exptime: int, value: bytes, cas: int, new_cas: int,
        allow_stale: bool, marks: int,
    ) -> int:
        """:meth:`store` for every case but a plain set."""
        self.stats.cmd_set += 1
        if op not in _STORE_OPS:
            raise ValueError(f"unknown storage command {op!r}")
        current = self._live(key)
        if op == b"append" or op == b"prepend":
            if current is None:
                return NOT_STORED
            if cas and current[3] != cas:
                return EXISTS
            old = item_value(current)
            joined = old + value if op == b"append" else value + old
            return self._put(key, joined, current[1], current[2], new_cas, marks)
        if cas or op == b"cas":
            if current is None:
                self.stats.cas_misses += 1
                return NOT_FOUND
            if current[3] != cas:
                if allow_stale and cas < current[3]:
                    self.stats.cas_hits += 1
                    stale = marks | STALE | (current[6] & WIN_SENT)
                    return self._put(key, value, flags, current[2], new_cas, stale)
                self.stats.cas_badval += 1
                return EXISTS
            self.stats.cas_hits += 1
        elif op == b"add":
            if current is not None:
                self._to_end(key)
                return NOT_STORED
        elif current is None and op == b"replace":
            return NOT_STORED
        return self._put(key, value, flags, self.expire_at(exptime), new_cas, marks)

    def set_item(self, key: bytes, flags: int, exptime: int, value: bytes, new_cas: int = 0, marks: int = 0) -> int:
        """``set`` without a CAS to check: STORED or NO_MEMORY (``new_cas`` and ``marks`` as
        in :meth:`store`)."""
        self.stats.cmd_set += 1
        if self.watch_flags:  # memcached looks the old item up, then logs the store
            self._watch_lookup(key)
            result = self._put(key, value, flags, self.expire_at(exptime), new_cas, marks)
            self._watch_store(b"set", key, result, flags, exptime, len(value))
            return result
        return self._put(key, value, flags, self.expire_at(exptime), new_cas, marks)

    def discard(self, key: bytes) -> None:
        """Remove ``key`` if present, counting nothing (a refused overwrite drops the old item)."""
        item = self._lookup(key)
        if item is not None:
            self._remove(key, item)

    def delete(self, key: bytes, cas: int = 0) -> int:
        """STORED (deleted), NOT_FOUND, or EXISTS when ``cas`` is given and differs."""
        item = self._live(key)
        if item is None:
            self.stats.delete_misses += 1
            return NOT_FOUND
        if cas and item[3] != cas:
            return EXISTS
        self._remove(key, item)
        self.stats.delete_hits += 1
        return STORED

    def cas_of(self, key: bytes) -> int:
        """The CAS unique of a stored item (0 if there is none)."""
        item = self._lookup(key)
        return 0 if item is None else item[3]

    def arith_or_create(
        self, incr: bool, key: bytes, delta: int, initial: int, exptime: int, cas: int = 0,
    ) -> tuple[int, int]:
        """The binary protocol's incr/decr: (STORED, new value), (NOT_FOUND, 0),
        (EXISTS, 0) on a CAS mismatch, or (NON_NUMERIC, 0). A missing key is created with
        ``initial`` unless ``exptime`` is 0xffffffff."""
        item = self._live(key)
        if item is None:
            if exptime == 0xFFFFFFFF:
                self.stats.add("incr_misses" if incr else "decr_misses")
                return NOT_FOUND, 0
            self.stats.add("incr_misses" if incr else "decr_misses")
            if self._put(key, b"%d" % initial, 0, self.expire_at(exptime)) != STORED:
                return NO_MEMORY, 0
            return STORED, initial
        if cas and item[3] != cas:
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
        item = self._live(key)
        if item is None:
            self.stats.add(prefix + "_misses")
            return None
        old = item_value(item)
        number = _parse_counter(old)
        if number is None:
            return NON_NUMERIC
        self.stats.add(prefix + "_hits")
        number = (number + delta) % _UINT64 if incr else max(number - delta, 0)
        digits = b"%d" % number
        if len(digits) <= len(old):
            # same length: the block keeps its header and size, only the data changes
            block = item[0][: item[4]] + digits.ljust(len(old)) + b"\r\n"
            self._items[key] = (block, item[1], item[2], self._next_cas(), item[4], item[5], item[6])
            self._to_end(key)
        else:
            self._put(key, digits, item[1], item[2])
        return number

    # ----- watch: only called while some connection watches ------------------------------------

    def _watch_lookup(self, key: bytes) -> None:
        """Log a lookup of ``key``: found, expired or not found (nothing is changed)."""
        if not self.watch_flags & LOG_FETCHERS:
            return
        item = self._lookup(key)
        if item is None:
            self.watch_log.item_get(key, 0, 0, 0)
        elif item[2] and item[2] <= self._clock():
            self.watch_log.item_get(key, 3, 0, 0)
        else:
            self.watch_log.item_get(key, 1, item[1], len(item[0]) - item[4] - 2)

    def _watch_store(self, command: bytes, key: bytes, result: int, flags: int, exptime: int, size: int) -> None:
        """Log a store's result, with the stored item's expiry, class and size (or the refused
        one's)."""
        if not self.watch_flags & LOG_MUTATIONS:
            return
        item = self._lookup(key) if result == STORED else None
        if item is not None:
            flags, expire_at, size = item[1], item[2], len(item[0]) - item[4] - 2
        else:
            expire_at = self.expire_at(exptime)
        ttl = self.remaining(expire_at) if expire_at else 0
        self.watch_log.item_store(key, _STORE_STATUS[result], command.decode(), max(ttl, 0),
                                  slab_class(len(key), flags, size), size)

    def watch_too_large(self, command: bytes, key: bytes) -> None:
        """Log a store refused for its size (a refused set then drops the old item, which
        memcached looks up first)."""
        if self.watch_flags:
            self.watch_log.item_store(key, TOO_LARGE, command.decode(), 0, 0, 0)
            if command == b"set":
                self._watch_lookup(key)

    def _watch_eviction(self, key: bytes, item: Item) -> None:
        expire_at = item[2]
        self.watch_log.eviction(key, bool(item[6] & FETCHED), self.remaining(expire_at) if expire_at else -1,
                                self.now_second() - item[5], item[1], len(item[0]) - item[4] - 2)

    def flush(self) -> None:
        """Drop every item (flush_all; the command is counted where it arrived, see
        Dispatcher.flush_all)."""
        self._items.clear()
        self._expiries.clear()
        self.used = 0

    def reclaim(self, budget: int = 10_000) -> int:
        """Remove up to ``budget`` expired items; returns how many were removed."""
        now = self._clock()
        self.active_horizon = int(now) - _ACTIVE_REFRESH
        heap = self._expiries
        removed = 0
        while heap and heap[0][0] <= now and budget > 0:
            expire_at, key = heapq.heappop(heap)
            budget -= 1
            item = self._lookup(key)
            if item is not None and item[2] == expire_at:
                self._remove(key, item)
                removed += 1
        self.stats.reclaimed += removed
        if len(heap) > 2 * len(self._items) + 1024:
            self._expiries = [(item[2], key) for key, item in self._items.items() if item[2]]
            heapq.heapify(self._expiries)
        return removed
