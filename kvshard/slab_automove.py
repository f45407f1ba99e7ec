"""memcached 1.6.18's slab automover (its default algorithm, ``slab_automove.c``) over one shard's
arena: run once a second, it may choose one page to move.

Theory of operation
-------------------
Each run reads, per class, what the arena shows in ``stats slabs`` / ``stats items`` (evicted,
outofmemory, total_pages, free chunks, the age of the LRU tail) and keeps, per class, a window
of the last ``window`` runs (memcached's ``slab_automove_window``, 30). A run fills one slot of
each class's window, from what changed since the previous run:

* ``dirty``: the class evicted, ran out of memory or got a page;
* ``evicted_seen`` (it evicted) and ``evicted_ratio`` (its share of all evictions);
* ``age``: its tail's age now.

Then it goes through the classes in order (sums and averages are over the window):

1. a class with more than ``MIN_PAGES_FOR_RECLAIM`` pages' worth of free chunks and no dirty
   slot: move a page of it to the global page pool (class 0) and stop there (the classes after
   it keep their old slot for this run, as memcached's do);
2. the class with the highest average age among those with more than ``MIN_PAGES_FOR_SOURCE``
   pages is the *oldest*;
3. the class with the lowest average age among those that evicted in more than half of the
   window, or took more than a quarter of the evictions on average, is the *youngest*.

Once the window has filled, a page moves from the oldest to the youngest if the youngest's
average age is below ``ratio`` (``slab_automove_ratio``, 0.8) times the oldest's and the
youngest evicted in this run. Integer and float arithmetic follow memcached's (an average age
is a whole number of seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["Automove", "MIN_PAGES_FOR_SOURCE", "MIN_PAGES_FOR_RECLAIM", "NO_MOVE", "TO_POOL"]

MIN_PAGES_FOR_SOURCE: Final = 2
MIN_PAGES_FOR_RECLAIM: Final = 2.5
TO_POOL: Final = 0  # the destination class id of the global page pool
NO_MOVE: Final = (-1, -1)


@dataclass
class _Slot:
    age: int = 0
    dirty: bool = False
    evicted_ratio: float = 0.0
    evicted_seen: bool = False


@dataclass(frozen=True)
class _Seen:
    """A class's cumulative figures at the previous run."""

    evicted: int = 0
    outofmemory: int = 0
    total_pages: int = 0


def _seen(figures: list[dict[str, int]]) -> dict[int, _Seen]:
    return {f["id"]: _Seen(f["evicted"], f["outofmemory"], f["total_pages"]) for f in figures}


class Automove:
    """One shard's automover state: the windows and the figures of the previous run.
    ``figures`` are the arena's classes as ``Cache.class_stats`` gives them (a class missing
    from them has nothing: no pages, no items)."""

    def __init__(self, window: int, ratio: float, figures: list[dict[str, int]]) -> None:
        self.window = window
        self.ratio = ratio
        self.runs = 0  # memcached's window_cur
        self._slots: dict[int, list[_Slot]] = {}
        self._before = _seen(figures)

    def run(self, figures: list[dict[str, int]]) -> tuple[int, int]:
        """One run: (source, destination) class ids (destination 0: the pool), or NO_MOVE."""
        before = self._before
        empty = _Seen()
        evicted_total = sum(f["evicted"] - before.get(f["id"], empty).evicted for f in figures)
        self.runs += 1
        window = self.window
        decision = NO_MOVE
        oldest, oldest_age = -1, 0
        youngest, youngest_age, youngest_evicting = -1, None, False
        for f in figures:
            clsid = f["id"]
            was = before.get(clsid, empty)
            slots = self._slots.setdefault(clsid, [_Slot() for _ in range(window)])
            slot = slots[self.runs % window] = _Slot(age=f["age"])
            evicted = f["evicted"] - was.evicted
            if evicted > 0:
                slot.evicted_ratio = evicted / evicted_total
                slot.evicted_seen = slot.dirty = True
            if f["outofmemory"] > was.outofmemory or f["total_pages"] > was.total_pages:
                slot.dirty = True
            age = sum(s.age for s in slots) // window
            free_chunks = f["total_chunks"] - f["used_chunks"]
            if free_chunks > f["chunks_per_page"] * MIN_PAGES_FOR_RECLAIM and not any(s.dirty for s in slots):
                decision = (clsid, TO_POOL)
                youngest = oldest = -1
                break
            if age > oldest_age and f["total_pages"] > MIN_PAGES_FOR_SOURCE:
                oldest, oldest_age = clsid, age
            seen = sum(s.evicted_seen for s in slots)
            ratio = sum(s.evicted_ratio for s in slots)
            if (youngest_age is None or age < youngest_age) and (seen > window // 2 or ratio / window > 0.25):
                youngest, youngest_age, youngest_evicting = clsid, age, slot.evicted_seen
        self._before = _seen(figures)
        if youngest != -1 and oldest != -1 and self.runs > window:
            assert youngest_age is not None
            if youngest_age < oldest_age * self.ratio and youngest_evicting:
                decision = (oldest, youngest)
        return decision
