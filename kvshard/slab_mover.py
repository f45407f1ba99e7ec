"""Slab pages moving between classes, as memcached 1.6.18 moves them: ``slabs reassign <src>
<dst>``, ``slabs automove 0|1|2``, ``slabs automove ratio <r>`` and the ``-o`` options
``slab_reassign``, ``no_slab_reassign``, ``slab_automove[=N]``, ``no_slab_automove``,
``slab_automove_ratio``, ``slab_automove_window``.

Theory of operation
-------------------
Every shard has its own arena, hence its own :class:`SlabMover`, which moves that arena's
pages; a command is applied on every shard and their answers merged (:func:`slabs_command`).
Class ids are memcached's: 1 to the largest class, 0 the global page pool (pages no class
owns: a class that needs a page takes one there first), -1 as a source "any class".

A mover's states (``state``), with every transition in :meth:`SlabMover.reassign` (out of
IDLE) or :meth:`SlabMover._slice` (back to it)::

    IDLE --reassign(src >= 1, dst) OK--> CLEARING --the page's last chunk cleared--> IDLE
    IDLE --reassign(0, dst) OK---------> FROM_POOL --the loop's next turn----------> IDLE

* One move at a time, as memcached has one mover thread: a reassign that finds the mover
  out of IDLE answers BUSY. Then, in memcached's order: SAME (src == dst, as given), src -1
  replaced by the next class after the last one picked that has more than one page and is not
  dst, BADCLASS (a class id out of 0..largest, -1 left unreplaced included), NOSPARE (src has
  fewer than two pages: a class keeps its last one, and so does the pool).
* CLEARING empties src's oldest page (kvshard.slab_arena: begin_clearing, clear_chunks,
  finish_clearing) in slices on the event loop: a slice clears the chunks of at most
  ``SLICE_BYTES`` of the page (at least one chunk) and the next runs at the loop's next turn,
  so requests are served in between. Every chunk behind the slice stays claimed, so one pass
  empties the page, whatever the requests do meanwhile; memcached's busy loops (an item
  another thread holds) cannot happen in a shard, so ``slab_reassign_busy_items`` and
  ``busy_deletes`` are not kept. What a slice did (rescues, evictions_nomem, ...) is added to
  the cache's counters after it; a finished move counts ``slabs_moved``.
* FROM_POOL hands a pool page to dst at the next turn (nothing to clear).

Automove (``automove``), with reassignment on: level 1 runs memcached's algorithm
(kvshard.slab_automove) from :meth:`SlabMover.tick`, once a second, and asks for the move it
picks (a BUSY answer is dropped, as memcached drops it); a pick for the pool makes it run
again as soon as the mover is IDLE again (memcached reruns it within a millisecond). Level 2
(memcached asks ``reassign(-1, class)`` on every eviction) asks that for the first class that
evicted since the last look, once a second and whenever a move ends. Level 0 moves nothing on
its own. With ``-o no_slab_reassign`` the settings are kept and shown, and nothing moves (as in
memcached, where no mover thread runs then).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Final, Iterable

from .cache import Cache
from .memcached_options import c_float, c_integer
from .protocol.ascii import R_BAD_FORMAT, R_OK
from .protocol.ascii_admin import slabs_automove_setting
from .protocol.numbers import strtol32
from .slab_arena import POOL
from .slab_automove import NO_MOVE, TO_POOL, Automove

__all__ = [
    "SlabMover", "MoverSettings", "settings_from_options", "slabs_command", "merge_reassign",
    "IDLE", "CLEARING", "FROM_POOL", "OK", "BUSY", "BADCLASS", "NOSPARE", "SAME", "ANY_CLASS", "REPLIES",
    "SLICE_BYTES", "HANDLERS",
]

# states
IDLE: Final = 0
CLEARING: Final = 1
FROM_POOL: Final = 2
# reassign's answers (memcached's reassign_result_type) and their lines
OK: Final = 0
BUSY: Final = 1
BADCLASS: Final = 2
NOSPARE: Final = 3
SAME: Final = 4
REPLIES: Final = {
    OK: R_OK,
    BUSY: b"BUSY currently processing reassign request\r\n",
    BADCLASS: b"BADCLASS invalid src or dst class id\r\n",
    NOSPARE: b"NOSPARE source class has no spare pages\r\n",
    SAME: b"SAME src and dst class are identical\r\n",
}
ANY_CLASS: Final = -1
SLICE_BYTES: Final = 64 << 10  # chunk bytes a slice clears at most
DEFAULT_RATIO: Final = 0.8
DEFAULT_WINDOW: Final = 30
R_DISABLED: Final = b"CLIENT_ERROR slab reassignment disabled\r\n"
_NOREPLY: Final = b"noreply"
# the handlers every shard registers, as "kv.slabs.<name>": SlabMover's methods of those names
HANDLERS: Final = ("reassign", "set_automove")


class MoverSettings:
    """memcached's slab_reassign, slab_automove, slab_automove_ratio, slab_automove_window."""

    def __init__(self, reassign: bool = True, automove: int = 1, ratio: float = DEFAULT_RATIO,
                 window: int = DEFAULT_WINDOW) -> None:
        self.reassign = reassign
        self.automove = automove
        self.ratio = ratio
        self.window = window


def settings_from_options(options: Iterable[tuple[str, str | None]]) -> MoverSettings:
    """The -o options (already checked, kvshard.memcached_options), applied in order as
    memcached applies them."""
    settings = MoverSettings()
    for name, value in options:
        if name == "slab_reassign":
            settings.reassign = True
        elif name == "no_slab_reassign":
            settings.reassign = False
        elif name == "slab_automove":
            settings.automove = 1 if value is None else c_integer(value)[0]
        elif name == "no_slab_automove":
            settings.automove = 0
        elif name == "slab_automove_ratio" and value is not None:
            settings.ratio = c_float(value)[0]
        elif name == "slab_automove_window" and value is not None:
            settings.window = c_integer(value)[0]
    return settings


class SlabMover:
    """One shard's mover; see the module docstring."""

    def __init__(self, cache: Cache, loop: asyncio.AbstractEventLoop, settings: MoverSettings) -> None:
        self._cache = cache
        self._arena = cache.arena
        self._loop = loop
        self.enabled = settings.reassign
        self.automove = settings.automove
        self.ratio = settings.ratio
        self.window = settings.window
        self.state = IDLE
        self._src = 0
        self._dst = 0
        self._next_chunk = 0
        self._picked = 0  # the class -1 picked last (memcached's static cursor)
        self._timer: Any = None
        self._automover = Automove(self.window, self.ratio, self._figures())
        self._rerun = False  # automove 1 picked the pool: run it again when IDLE
        self._evicted_seen = self._evictions()  # automove 2: per class, evictions at the last look

    def register(self, shard: Any) -> None:
        for name in HANDLERS:
            shard.register("kv.slabs." + name, getattr(self, name))

    @property
    def running(self) -> bool:
        """memcached's slab_reassign_running."""
        return self.state != IDLE

    # ----- commands -----------------------------------------------------------------------------

    def reassign(self, src: int, dst: int) -> int:
        """Start moving a page of class ``src`` to class ``dst``: OK, BUSY, SAME, BADCLASS or
        NOSPARE (see the module docstring)."""
        if self.state != IDLE:
            return BUSY
        if src == dst:
            return SAME
        if src == ANY_CLASS:
            src = self._pick_any(dst)
        largest = self._arena.class_count
        if not (0 <= src <= largest and 0 <= dst <= largest):
            return BADCLASS
        if self._arena.class_pages(_arena_class(src)) < 2:
            return NOSPARE
        self._src, self._dst = src, dst
        if src == TO_POOL:
            self.state = FROM_POOL
        else:
            self._arena.begin_clearing(src - 1)
            self._next_chunk = 0
            self.state = CLEARING
        self._timer = self._loop.call_soon(self._slice)
        return OK

    def set_automove(self, setting: str, value: float) -> None:
        """``slabs automove <level>`` (setting "level") or ``slabs automove ratio <r>``."""
        if setting == "ratio":
            self.ratio = value
            self._automover = Automove(self.window, self.ratio, self._figures())  # (memcached starts afresh)
        else:
            self.automove = int(value)

    def _pick_any(self, dst: int) -> int:
        for _ in range(self._arena.class_count):
            self._picked = self._picked % self._arena.class_count + 1
            if self._picked != dst and self._arena.class_pages(self._picked - 1) > 1:
                return self._picked
        return ANY_CLASS

    # ----- moving ------------------------------------------------------------------------------

    def _slice(self) -> None:
        """One slice of the move in progress (see the module docstring)."""
        self._timer = None
        arena = self._arena
        if self.state == FROM_POOL:
            # (classes may have taken the pool's pages meanwhile: memcached checks again too)
            if arena.class_pages(POOL) >= 2 and arena.give_pool_page(self._dst - 1):
                self._finish()
            else:
                self.state = IDLE
            return
        size = arena.sizes[self._src - 1]
        before = (arena.rescues, arena.chunk_rescues, arena.evictions_nomem, arena.inline_reclaim)
        arena.now = self._cache._clock()
        self._next_chunk = arena.clear_chunks(self._next_chunk, max(1, SLICE_BYTES // size))
        stats = self._cache.stats
        stats.slab_reassign_rescues += arena.rescues - before[0]
        stats.slab_reassign_chunk_rescues += arena.chunk_rescues - before[1]
        stats.slab_reassign_evictions_nomem += arena.evictions_nomem - before[2]
        stats.slab_reassign_inline_reclaim += arena.inline_reclaim - before[3]
        if self._next_chunk < arena.page_size // size:
            self._timer = self._loop.call_soon(self._slice)
            return
        arena.finish_clearing(_arena_class(self._dst))
        self._finish()

    def _finish(self) -> None:
        self.state = IDLE
        self._cache.stats.slabs_moved += 1
        if self.automove == 1 and self._rerun:
            self._rerun = False
            self._run_automove()
        elif self.automove == 2:
            self._follow_evictions()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ----- automove -----------------------------------------------------------------------------

    def tick(self) -> None:
        """Once a second: the automover of the level set (nothing when reassignment is off)."""
        if not self.enabled:
            return
        if self.automove == 1:
            self._run_automove()
        elif self.automove == 2:
            self._follow_evictions()

    def _run_automove(self) -> None:
        src, dst = self._automover.run(self._figures())
        if (src, dst) != NO_MOVE:
            self._rerun = self.reassign(src, dst) in (OK, BUSY) and dst == TO_POOL

    def _follow_evictions(self) -> None:
        evicted = self._evictions()
        seen, self._evicted_seen = self._evicted_seen, evicted
        for clsid, count in evicted.items():
            if count > seen.get(clsid, 0) and self.state == IDLE:
                self.reassign(ANY_CLASS, clsid)

    def _figures(self) -> list[dict[str, int]]:
        """Every class's figures (a class with no page and no item: zeros)."""
        _, shown = self._cache.class_stats()
        by_id = {figures["id"]: figures for figures in shown}
        empty = {"evicted": 0, "outofmemory": 0, "total_pages": 0, "total_chunks": 0, "used_chunks": 0, "age": 0}
        out = []
        for cls in range(self._arena.class_count):
            figures = by_id.get(cls + 1)
            if figures is None:
                figures = dict(empty, id=cls + 1, chunks_per_page=self._arena.page_size // self._arena.sizes[cls])
            out.append(figures)
        return out

    def _evictions(self) -> dict[int, int]:
        _, shown = self._cache.class_stats()
        return {figures["id"]: figures["evicted"] for figures in shown}


def _arena_class(clsid: int) -> int:
    """memcached's class id as the arena's class (0, the pool: POOL)."""
    return POOL if clsid == TO_POOL else clsid - 1


# ----- the connection's side ------------------------------------------------------------------


def merge_reassign(answers: list[int]) -> bytes:
    """The shards' answers to a reassign as one: OK if any shard started a move, else BUSY if
    one was busy (a retry may move), else NOSPARE, BADCLASS, SAME, the first any gave."""
    for answer in (OK, BUSY, NOSPARE, BADCLASS, SAME):
        if answer in answers:
            return REPLIES[answer]
    raise ValueError(f"no reassign answer: {answers!r}")


def slabs_command(ctx: Any, conn: Any, tokens: list[bytes]) -> None:
    """``slabs reassign <src> <dst>`` and ``slabs automove ...`` (the parser sends only these
    forms here, with memcached's token counts), checked as memcached checks them, then applied on
    every shard. ``ctx.info.slab_reassign``: -o no_slab_reassign refuses reassign (before its
    numbers are read, as memcached)."""
    if tokens[1] == b"reassign":
        if not ctx.info.slab_reassign:
            conn.reply(R_DISABLED)
            return
        src, dst = strtol32(tokens[2]), strtol32(tokens[3])
        if src is None or dst is None:
            conn.reply(R_BAD_FORMAT)
        else:
            conn.fan_out("kv.slabs.reassign", (src, dst), merge_reassign)
        return
    noreply = tokens[-1] == _NOREPLY
    setting = slabs_automove_setting(tokens)
    if isinstance(setting, bytes):
        if not noreply:
            conn.reply(setting)
        return
    answer: Callable[[list[Any]], bytes] = (lambda done: b"") if noreply else (lambda done: REPLIES[OK])
    conn.fan_out("kv.slabs.set_automove", setting, answer)
