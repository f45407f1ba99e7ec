"""The LRU maintainer of one shard: memcached 1.6's ``lru_maintainer_thread``, run from the
shard's event loop, moving items between the segmented LRU's lists of its arena.

Theory of operation
-------------------
The item's side of the state machine, the lists and every move between them, is the arena's
(kvshard.slab_arena, "The segmented LRU"): an item enters HOT (TEMP for a short TTL, COLD when
flat); a hit marks it FETCHED, then ACTIVE (a COLD item hit so goes to WARM at once); a tail
pull moves HOT's and WARM's tails to WARM (ACTIVE) or COLD (over their share of the class's
bytes, or too old), COLD's ACTIVE tail to WARM, and reclaims expired tails; allocation evicts
COLD's tail. This module decides *when* the pulls run, as memcached's maintainer thread does:

States (``state``)::

    OFF (-o no_lru_maintainer: never runs; the LRU is flat)
    IDLE --timer--> WAKING --every due class juggled--> IDLE (timer set to the nearest due class)
                      |  ^
                      +--+ budget spent: the rest at the loop's next turn

* A *wake-up* (``lru_maintainer_juggles`` counts them) juggles every class that is due and
  holds items (:meth:`SlabArena.juggle`: TEMP's expired tail, then rounds of HOT/WARM/COLD
  pulls while they move something, at most ``JUGGLE_ROUNDS`` of each, memcached's 500).
* Each class has its own back-off, memcached's: a juggle that moved nothing makes the class wait
  ``MIN_SLEEP`` (1 ms), then 1/8 longer each time, up to ``MAX_SLEEP`` (1 s); one that moved
  something halves the wait (below ``MIN_SLEEP``: none). The next wake-up comes when the
  nearest class is due, ``WAKE_INTERVAL`` (10 ms) at the soonest: kvshard's. memcached's
  maintainer is a thread beside its workers, which does not sleep at all while classes move;
  this one takes turns with the shard's requests, and each wake-up has a fixed cost (the
  timer, the scan of the classes, a juggle's last round that finds nothing) that 1 ms
  wake-ups paid ten times as often, for the same moves in shorter runs (interpreted,
  memaslap's mix: 4% of the shard's CPU per operation). HOT and WARM then pass their share
  by at most 10 ms of stores between juggles; an allocation that finds COLD empty still
  pulls HOT at once.
* Work per turn of the event loop is bounded: a wake-up spends at most ``ROUNDS_PER_TURN``
  rounds (a juggle that moves nothing costs one); when they run out, the classes not yet juggled
  wait for the loop's next turn, so requests are served in between.
* kvshard's own: each turn also moves up to ``INDEX_SLOTS_PER_WAKE`` slots of the arena's index
  while it grows (:meth:`SlabArena.grow_index`), so that a growth the last stores began ends, and
  its old array is freed, even if no request comes after them.

The settings (``lru tune``, ``lru mode``, ``lru temp_ttl``, memcached's ``-o`` options) are the
arena's fields, which its pulls and its allocation read; they change here. ``lru tune`` works
with the maintainer off too (memcached stores the numbers either way); ``lru mode`` and ``lru
temp_ttl`` need it running.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Final, Mapping

from .cache import Cache
from .memcached_options import c_float, c_integer

__all__ = [
    "LruMaintainer", "settings_from_options", "OFF", "IDLE", "WAKING", "JUGGLE_ROUNDS", "ROUNDS_PER_TURN",
    "MIN_SLEEP", "MAX_SLEEP", "WAKE_INTERVAL", "INDEX_SLOTS_PER_WAKE",
]

# states
OFF: Final = 0
IDLE: Final = 1
WAKING: Final = 2

JUGGLE_ROUNDS: Final = 500  # memcached's rounds per juggle
ROUNDS_PER_TURN: Final = 2000  # the most rounds one turn of the event loop spends
MIN_SLEEP: Final = 0.001  # memcached's MIN_LRU_MAINTAINER_SLEEP, 1 ms
MAX_SLEEP: Final = 1.0  # ... MAX_LRU_MAINTAINER_SLEEP, 1 s
WAKE_INTERVAL: Final = 0.01  # kvshard's: the least time from one wake-up to the next (see above)
INDEX_SLOTS_PER_WAKE: Final = 16384  # slots of a growing index moved per wake-up (see SlabArena.grow_index)


def settings_from_options(options: Mapping[str, str | None]) -> dict[str, Any]:
    """The maintainer's keyword arguments from memcached's ``-o`` options (already checked by
    kvshard.memcached_options), read as memcached reads them, in their order."""
    out: dict[str, Any] = {"running": True, "segmented": True}
    for name, value in options.items():
        if name == "lru_maintainer":
            out["running"] = out["segmented"] = True
        elif name == "no_lru_maintainer":
            out["running"] = out["segmented"] = False
        elif name == "no_modern":
            out["segmented"] = False
        elif name in ("hot_lru_pct", "warm_lru_pct"):
            out[name.removesuffix("_lru_pct") + "_pct"] = c_integer(value or "")[0]
        elif name in ("hot_max_factor", "warm_max_factor"):
            out[name.removesuffix("_max_factor") + "_factor"] = c_float(value or "")[0]
        elif name == "temporary_ttl":
            out["temporary_ttl"] = c_integer(value or "")[0]
    return out


class LruMaintainer:
    """One shard's maintainer; see the module docstring."""

    def __init__(
        self, cache: Cache, loop: asyncio.AbstractEventLoop, *, running: bool = True, segmented: bool = True,
        hot_pct: int = 20, warm_pct: int = 40, hot_factor: float = 0.2, warm_factor: float = 2.0,
        temporary_ttl: int | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache = cache
        self._arena = arena = cache.arena
        self._loop = loop
        self._monotonic = clock
        arena.segmented = segmented
        self.tune(hot_pct, warm_pct, hot_factor, warm_factor)
        if temporary_ttl is not None:
            self.set_temp_ttl(temporary_ttl)
        self.state = IDLE if running else OFF
        self.juggles = 0  # wake-ups (memcached's lru_maintainer_juggles)
        n = arena.class_count
        self._backoff = [0.0] * n
        self._next_due = [0.0] * n  # (monotonic) when a class's next juggle is due
        self._pending: list[int] = []  # a wake-up's classes still to juggle
        self._timer: Any = None

    @property
    def running(self) -> bool:
        return self.state != OFF

    # ----- settings ---------------------------------------------------------------------------

    def tune(self, hot_pct: int, warm_pct: int, hot_factor: float, warm_factor: float) -> None:
        """``lru tune`` (checked by kvshard.protocol.ascii_admin) and the ``-o`` options."""
        arena = self._arena
        arena.hot_pct, arena.warm_pct = hot_pct, warm_pct
        arena.hot_factor, arena.warm_factor = hot_factor, warm_factor

    def set_mode(self, segmented: bool) -> None:
        """``lru mode segmented|flat``."""
        self._arena.segmented = segmented

    def set_temp_ttl(self, ttl: int) -> None:
        """``lru temp_ttl <ttl>``: TEMP on for TTLs up to ``ttl``; a negative one turns it off
        (the TTL setting stays)."""
        if ttl < 0:
            self._arena.temp_lru = False
        else:
            self._arena.temp_lru = True
            self._arena.temporary_ttl = ttl

    def settings(self) -> list[tuple[str, Any]]:
        """``stats settings``' fields for the segmented LRU, memcached's names and formats."""
        arena = self._arena
        yes_no = ("no", "yes")
        return [
            ("lru_maintainer_thread", yes_no[self.running]), ("lru_segmented", yes_no[arena.segmented]),
            ("hot_lru_pct", arena.hot_pct), ("warm_lru_pct", arena.warm_pct),
            ("hot_max_factor", "%.2f" % arena.hot_factor), ("warm_max_factor", "%.2f" % arena.warm_factor),
            ("temp_lru", yes_no[arena.temp_lru]), ("temporary_ttl", arena.temporary_ttl),
        ]

    # ----- running ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.state == IDLE and self._timer is None:
            self._timer = self._loop.call_later(WAKE_INTERVAL, self._wake)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        """A wake-up: the due classes that hold items, juggled until the turn's budget is spent."""
        self._timer = None
        now = self._monotonic()
        arena = self._arena
        due = self._next_due
        if self.state == IDLE:
            self.state = WAKING
            self.juggles += 1
            self._pending = [cls for cls, when in enumerate(due) if when <= now]
        arena.now = self._cache._clock()
        budget = ROUNDS_PER_TURN
        pending = self._pending
        done = 0
        while done < len(pending) and budget > 0:
            cls = pending[done]
            done += 1
            did = arena.juggle(cls, min(JUGGLE_ROUNDS, budget)) if arena.class_items(cls) else 0
            budget -= did + 1
            self._back_off(cls, did, now)
        del pending[:done]
        arena.grow_index(INDEX_SLOTS_PER_WAKE)  # (so that a growth ends when requests stop)
        if pending:
            self._timer = self._loop.call_soon(self._wake)
            return
        self.state = IDLE
        nearest = min(MAX_SLEEP + now, min(due))
        self._timer = self._loop.call_later(min(max(nearest - now, WAKE_INTERVAL), MAX_SLEEP), self._wake)

    def _back_off(self, cls: int, did: int, now: float) -> None:
        """memcached's per-class back-off after a juggle that moved ``did`` rounds."""
        wait = self._backoff[cls]
        if did == 0:
            wait = min(wait + wait / 8 if wait else MIN_SLEEP, MAX_SLEEP)
        elif wait:
            wait /= 2
            if wait < MIN_SLEEP:
                wait = 0.0
        self._backoff[cls] = wait
        self._next_due[cls] = now + wait
