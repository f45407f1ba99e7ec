"""The LRU crawler of one shard: walks its arena's LRUs a slice at a time, reclaims the expired
items no command meets, and reads every live item's metadata for ``lru_crawler metadump``.

Theory of operation
-------------------
States (``state``)::

    DISABLED --enable--> IDLE --start(kind, classes)--> CRAWLING --last class done--> IDLE
       ^                  |                                 |
       +----disable-------+------------disable (the run still finishes)

One *run* at a time, as memcached has one crawler thread. A run has a kind:
  * AUTOEXPIRE: started by :meth:`LruCrawler.tick` (every second) over the classes that are
    due; memcached's LRU maintainer starts these. A class's next walk is due when the earliest
    expiry its last walk saw comes, at least 1 s and at most ``MAX_WAIT`` s after it ended, and
    at least ``WAIT_PER_WALK`` times the walk's own duration later (so the crawler takes at most
    about 1/``WAIT_PER_WALK`` of the shard's time however many items it holds);
  * EXPIRE: ``lru_crawler crawl <classes>``;
  * METADUMP: ``lru_crawler metadump <classes>``: a line per live item, handed over when the
    run ends (:meth:`LruCrawler.start` returns a future for them).
A client's run finds the crawler busy (memcached's ``BUSY``) only while another client's run is
going on: an AUTOEXPIRE run in progress is stopped for it (its classes stay due).

Each class of a run is walked list by list (its HOT, WARM, COLD and TEMP LRUs, as memcached's
crawler walks each), each from its tail (oldest) towards its head, visiting at most the items
the list had when its walk began (and, but for a metadump, at most ``tocrawl`` if that is set,
memcached's ``lru_crawler_tocrawl``), so items stored meanwhile cannot keep a walk going. Every visited
item counts in its class's ``crawler_items_checked``; an expired one is unlinked and counts in
``crawler_reclaimed`` (and ``expired_unfetched`` if it was never fetched).

Work is bounded per slice: a slice visits at most ``ITEMS_PER_SLICE`` items (memcached's
``crawls_persleep``), then the run yields to the event loop and goes on ``sleep`` microseconds
later (``lru_crawler_sleep``; 0: at the loop's next turn), so requests are served in between.
Between slices the item the walk would visit next may be unlinked, moved or its chunk reused:
the walk remembers that item's CAS and hash beside its ref and restarts its class from the tail
when they no longer match (the visit cap still bounds it). Nothing here changes the arena's
request path: the walk only reads links and unlinks expired items.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Final

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

from .cache import FETCHED, Cache
from .protocol.ascii import item_total_size
from .slab_arena import HOT_LRU, LRUS, TEMP_LRU, SlabArena
from .watch_lines import uri_encode

__all__ = [
    "LruCrawler", "DISABLED", "IDLE", "CRAWLING", "AUTOEXPIRE", "EXPIRE", "METADUMP",
    "ITEMS_PER_SLICE", "MAX_WAIT", "WAIT_PER_WALK", "metadump_line",
]

# states
DISABLED: Final = 0
IDLE: Final = 1
CRAWLING: Final = 2
# kinds of run
AUTOEXPIRE: Final = 0
EXPIRE: Final = 1
METADUMP: Final = 2

ITEMS_PER_SLICE: Final = 1000  # memcached's crawls_persleep
MAX_WAIT: Final = 60.0  # seconds between two autoexpire walks of a class, at most
MIN_WAIT: Final = 1.0
WAIT_PER_WALK: Final = 20.0  # ... and at least this many times the walk's own duration
_FOREVER: Final = float("inf")


def metadump_line(arena: SlabArena, ref: int) -> bytes:
    """memcached's metadump line for a live item: ``key=<uri-encoded> exp=<unix time, -1:
    never> la=<last access> cas=<n> fetch=yes|no cls=<class id> size=<memcached's item
    size>`` and a newline (not CRLF, as memcached's)."""
    expire_at = arena.expire_at(ref)
    key = arena.key(ref)
    size = item_total_size(len(key), arena.flags(ref), arena.nbytes(ref))
    return b"key=%s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d\n" % (
        uri_encode(key).encode(), -1 if expire_at == 0 else int(expire_at), arena.atime(ref), arena.cas(ref),
        b"yes" if arena.marks(ref) & FETCHED else b"no", arena.clsid(ref) + 1, size)


class LruCrawler:
    """One shard's crawler; see the module docstring."""

    def __init__(
        self, cache: Cache, loop: asyncio.AbstractEventLoop, *, enabled: bool = True, sleep_us: int = 100,
        tocrawl: int = 0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache = cache
        self._arena = cache.arena
        self._loop = loop
        self._monotonic = clock
        self.state = IDLE if enabled else DISABLED
        self.sleep_us = sleep_us  # lru_crawler sleep: the pause between slices
        self.tocrawl = tocrawl  # lru_crawler tocrawl: the most items a walk visits per class (0: all)
        n = self._arena.class_count
        self.reclaimed = [0] * n  # per class: stats items' crawler_reclaimed
        self.checked = [0] * n  # ... crawler_items_checked
        self._next_due = [0.0] * n  # (monotonic) when a class's next autoexpire walk is due
        self._kind = AUTOEXPIRE
        self._enabled_after = True  # the state a run returns to: disable during a run
        self._lists: list[int] = []  # the run's LRU lists still to walk, the current one first
        self._walking = False  # the current list's walk has begun
        self._cursor = 0  # the next item to visit (0: the class's tail)
        self._cursor_cas = 0
        self._cursor_hash = 0
        self._left = 0  # visits the current list's walk may still make
        self._walk_started = 0.0
        self._earliest = _FOREVER  # the earliest expiry among the live items this walk saw
        self._lines: list[bytes] = []  # a metadump's lines so far
        self._done: Any = None  # the future a metadump's lines go to
        self._timer: Any = None

    # ----- control ------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.state != DISABLED and (self.state != CRAWLING or self._enabled_after)

    @property
    def running(self) -> bool:
        return self.state == CRAWLING

    @property
    def cursor(self) -> int:
        """The item a walk in progress visits next (0: none)."""
        return self._cursor

    def enable(self) -> bool:
        """``lru_crawler enable``: False if it already was (memcached then fails to start a
        second crawler thread)."""
        if self.enabled:
            return False
        if self.state == CRAWLING:
            self._enabled_after = True
        else:
            self.state = IDLE
        return True

    def disable(self) -> None:
        """``lru_crawler disable``: no more runs start; one going on finishes first."""
        if self.state == CRAWLING:
            self._enabled_after = False
        else:
            self.state = DISABLED

    def tick(self) -> None:
        """Every second: start an autoexpire run over the classes that are due and hold items."""
        if self.state != IDLE:
            return
        now = self._monotonic()
        arena = self._arena
        due = [c for c in range(arena.class_count) if arena.class_items(c) and self._next_due[c] <= now]
        if due:
            self._begin(AUTOEXPIRE, due)

    def start(self, kind: int, classes: list[int]) -> Any:
        """A client's crawl (EXPIRE) or metadump (METADUMP) of ``classes`` (arena class
        indexes): None if another client's run is going on (or the crawler is disabled), else
        True for a crawl, or a future that gets the metadump's lines (bytes) when it ends."""
        if self.state == DISABLED or (self.state == CRAWLING and (self._kind != AUTOEXPIRE or not self._enabled_after)):
            return None
        if self.state == CRAWLING:
            self._stop_run()
        done = None
        if kind == METADUMP:
            done = self._loop.create_future()
        self._begin(kind, classes, done)
        return True if done is None else done

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.state == CRAWLING:
            self._stop_run()

    # ----- runs ---------------------------------------------------------------------------------

    def _begin(self, kind: int, classes: list[int], done: Any = None) -> None:
        self._enabled_after = True
        self.state = CRAWLING
        self._kind = kind
        self._lists = [cls | lru for cls in sorted(classes) for lru in LRUS]
        self._walking = False
        self._lines = []
        self._done = done
        self._cache.stats.lru_crawler_starts += 1
        self._timer = self._loop.call_soon(self._slice)

    def _stop_run(self) -> None:
        """End the run now (an autoexpire run giving way, or a shard stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._lists = []
        self._finish_run()

    def _finish_run(self) -> None:
        self.state = IDLE if self._enabled_after else DISABLED
        self._enabled_after = True
        done, self._done = self._done, None
        lines, self._lines = self._lines, []
        if done is not None and not done.done():
            done.set_result(b"".join(lines))

    def _slice(self) -> None:
        """Visit up to ITEMS_PER_SLICE items of the run's lists, then yield."""
        self._timer = None
        budget = ITEMS_PER_SLICE
        now = self._cache._clock()
        while budget > 0 and self._lists:
            lst = self._lists[0]
            if not self._walking:
                self._start_walk(lst)
            budget -= self._walk(lst, budget, now)
            if self._left == 0 or self._cursor == 0:
                self._end_walk(lst)
                del self._lists[0]
        if not self._lists:
            self._finish_run()
        elif self.sleep_us:
            self._timer = self._loop.call_later(self.sleep_us / 1e6, self._slice)
        else:
            self._timer = self._loop.call_soon(self._slice)

    def _start_walk(self, lst: int) -> None:
        arena = self._arena
        self._walking = True
        self._left = arena.list_items(lst)
        if self.tocrawl and self.tocrawl < self._left and self._kind != METADUMP:
            self._left = self.tocrawl
        self._set_cursor(arena.lru_tail(lst))
        if lst & TEMP_LRU == HOT_LRU:  # a class's first list: its walk begins
            self._walk_started = self._monotonic()
            self._earliest = _FOREVER

    def _end_walk(self, lst: int) -> None:
        self._walking = False
        if self._kind == METADUMP or lst & TEMP_LRU != TEMP_LRU:  # (the class's walk ends with its last list)
            return
        cls = lst & ~TEMP_LRU
        now = self._monotonic()
        wait = min(max(self._earliest - self._cache._clock(), MIN_WAIT), MAX_WAIT)
        self._next_due[cls] = now + max(wait, WAIT_PER_WALK * (now - self._walk_started))

    def _set_cursor(self, ref: int) -> None:
        self._cursor = ref
        if ref:
            self._cursor_cas = self._arena.cas(ref)
            self._cursor_hash = self._arena.item_hash(ref)

    def _walk(self, lst: int, budget: int, now: float) -> int:
        """Visit up to ``budget`` items of LRU list ``lst`` from the cursor towards the head;
        returns how many were visited. Leaves the cursor on the next item (0: the walk is at
        the head)."""
        arena = self._arena
        cls = lst & ~TEMP_LRU
        ref = self._cursor
        if ref and not (arena.is_item(ref) and arena.list_of(ref) == lst and arena.cas(ref) == self._cursor_cas
                        and arena.item_hash(ref) == self._cursor_hash):
            ref = arena.lru_tail(lst)  # the remembered item is gone or moved: from the tail again
        visited = 0
        reclaimed = 0
        unfetched = 0
        dumping = self._kind == METADUMP
        left = self._left
        earliest = self._earliest
        while ref != 0 and visited < budget and left > 0:
            newer = arena.newer(ref)
            visited += 1
            left -= 1
            expire_at = arena.expire_at(ref)
            if expire_at != 0 and expire_at <= now:
                if not dumping:  # (memcached's metadump skips expired items, leaves them be)
                    unfetched += arena.reclaim_expired(ref)
                    reclaimed += 1
            elif dumping:
                self._lines.append(metadump_line(arena, ref))
            elif expire_at != 0 and expire_at < earliest:
                earliest = expire_at
            ref = newer
        self._left = left
        self._earliest = earliest
        self.checked[cls] += visited
        self.reclaimed[cls] += reclaimed
        stats = self._cache.stats
        stats.crawler_items_checked += visited
        stats.crawler_reclaimed += reclaimed
        stats.expired_unfetched += unfetched
        self._set_cursor(ref)
        return visited

    # ----- what stats show --------------------------------------------------------------------------

    def class_figures(self, cls: int) -> dict[str, int]:
        """``stats items``' crawler fields of class ``cls``."""
        return {"crawler_reclaimed": self.reclaimed[cls], "crawler_items_checked": self.checked[cls]}

