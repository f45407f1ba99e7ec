"""memcached's commands that look into or resize the item store as a whole: ``stats cachedump``,
``stats sizes`` (``sizes_enable``, ``sizes_disable``), ``cache_memlimit``, ``lru_crawler`` and
``lru`` (every shard's LRU maintainer takes the change kvshard.protocol.ascii_admin checked).

Two halves: :class:`ItemCommands` is one shard's (its handlers ``kv.item.*`` run where the
items are); the functions below run on the connection's shard: they check a command as
memcached 1.6.18 checks it, answer its errors with memcached's text, fan the work out to every
shard and merge the answers:

  * ``stats cachedump <class> <limit>``: each shard's lines (its class's LRU, most recent first),
    shard after shard, until ``limit`` lines (0: no limit) or memcached's 2 MB reply cap;
  * ``stats sizes``: the shards' histograms summed; tracking is on or off on every shard;
  * ``cache_memlimit <MB>``: every shard takes its share of the new limit;
  * ``lru_crawler crawl|metadump``: every shard's crawler runs over its classes; busy if any
    shard's was; a metadump is every shard's lines, shard after shard, then ``END``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from . import item_dumps
from .cache import Cache
from .crawler import EXPIRE, METADUMP, LruCrawler
from .protocol.ascii_admin import lru_change
from .protocol.numbers import strtoul32

__all__ = [
    "ItemCommands", "HANDLERS", "stats_cachedump", "stats_sizes", "cache_memlimit", "lru_crawler", "lru",
    "STATS_GROUPS", "MAX_CLASS_ID",
]

MAX_CLASS_ID: Final = 63  # memcached's class ids are 1..63 (MAX_NUMBER_OF_SLAB_CLASSES - 1)
ALL_CLASSES: Final = 0  # in a list of class ids: every class
MEMLIMIT_MIN_MB: Final = 8
MEMLIMIT_MAX_MB: Final = 1_000_000_000
CRAWLER_SLEEP_MAX: Final = 1_000_000  # microseconds
STATS_GROUPS: Final = frozenset((b"cachedump", b"sizes", b"sizes_enable", b"sizes_disable"))

_NOREPLY: Final = b"noreply"
R_OK: Final = b"OK\r\n"
R_ERROR: Final = b"ERROR\r\n"
R_END: Final = b"END\r\n"
R_CACHEDUMP_REFUSED: Final = b"CLIENT_ERROR stats cachedump not allowed\r\n"
R_BAD_COMMAND_LINE: Final = b"CLIENT_ERROR bad command line\r\n"
R_BAD_FORMAT: Final = b"CLIENT_ERROR bad command line format\r\n"
R_ILLEGAL_SLAB: Final = b"CLIENT_ERROR Illegal slab id\r\n"
R_SIZES_DISABLED: Final = b"STAT sizes_status disabled\r\n"
R_SIZES_ENABLED: Final = b"STAT sizes_status enabled\r\n"
R_SIZES_NO_CAS: Final = b"STAT sizes_status error\r\nSTAT sizes_error cas_support_disabled\r\n"
R_MEMLIMIT_TOO_SMALL: Final = b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
R_MEMLIMIT_NOT_BYTES: Final = b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
R_MEMLIMIT_FAILED: Final = b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
R_CRAWLER_DISABLED: Final = b"CLIENT_ERROR lru crawler disabled\r\n"
R_CRAWLER_BUSY: Final = b"BUSY currently processing crawler request\r\n"
R_BAD_CLASS: Final = b"BADCLASS invalid class id\r\n"
R_NOT_STARTED: Final = b"NOTSTARTED no items to crawl\r\n"
R_CRAWLER_ERROR: Final = b"ERROR an unknown error happened\r\n"
R_METADUMP_REFUSED: Final = b"ERROR metadump not allowed\r\n"
R_METADUMP_PIPELINED: Final = b"ERROR cannot pipeline other commands before metadump\r\n"
R_CRAWLER_START_FAILED: Final = b"ERROR failed to start lru crawler thread\r\n"
R_SLEEP_TOO_LONG: Final = b"CLIENT_ERROR sleep must be one second or less\r\n"

# the handlers every shard registers, as "kv.item.<name>"
HANDLERS: Final = (
    "cachedump", "sizes", "sizes_switch", "memlimit", "crawl", "metadump", "crawler_switch", "crawler_set", "lru",
)


class ItemCommands:
    """One shard's side: its cache, its crawler, its LRU maintainer, whether its sizes are
    tracked."""

    def __init__(self, cache: Cache, crawler: LruCrawler, *, shards: int, item_size_max: int,
                 track_sizes: bool = False, maintainer: Any = None) -> None:
        self.cache = cache
        self.crawler = crawler
        self.maintainer = maintainer
        self.shards = shards
        self.item_size_max = item_size_max
        self.ctx: Any = None  # the shard's ShardContext: ``cache_memlimit`` updates its info
        # stats sizes: items whose CAS is at least this are counted (None: not tracking)
        self.sizes_cas_min: int | None = None
        if track_sizes:
            self.sizes_switch(True)

    def register(self, shard: Any) -> None:
        for name in HANDLERS:
            shard.register("kv.item." + name, getattr(self, name))

    def cachedump(self, clsid: int, limit: int) -> list[bytes]:
        arena = self.cache.arena
        if not 1 <= clsid <= arena.class_count:
            return []
        return item_dumps.cachedump_lines(arena, clsid - 1, limit)

    def sizes(self) -> list[list[int]] | None:
        """[bucket, items] pairs, or None when sizes are not tracked."""
        if self.sizes_cas_min is None:
            return None
        largest = (self.item_size_max // item_dumps.SIZE_BUCKET + 1) * item_dumps.SIZE_BUCKET
        counts = item_dumps.size_histogram(self.cache.arena, self.sizes_cas_min, largest)
        return [[bucket, n] for bucket, n in counts.items()]

    def sizes_switch(self, on: bool) -> None:
        """Start (from the next CAS on: items stored later) or stop tracking sizes; starting
        again keeps the first start, as memcached's ``sizes_enable`` does."""
        if not on:
            self.sizes_cas_min = None
        elif self.sizes_cas_min is None:
            self.sizes_cas_min = self.cache.cas_floor()

    def memlimit(self, total: int) -> bool:
        if not self.cache.set_limit(total // self.shards):
            return False
        if self.ctx is not None:
            self.ctx.info = dataclasses.replace(self.ctx.info, memory_bytes=total)
        return True

    def crawl(self, classes: list[int]) -> bool:
        return self.crawler.start(EXPIRE, self._arena_classes(classes)) is not None

    def metadump(self, classes: list[int]) -> Any:
        """A coroutine for this shard's metadump lines, or None if the crawler is busy."""
        started = self.crawler.start(METADUMP, self._arena_classes(classes))
        return None if started is None else _result_of(started)

    def crawler_switch(self, on: bool) -> None:
        if on:
            self.crawler.enable()
        else:
            self.crawler.disable()

    def crawler_set(self, name: str, value: int) -> None:
        if name == "sleep":
            self.crawler.sleep_us = value
        elif name == "tocrawl":
            self.crawler.tocrawl = value

    def lru(self, change: str, args: list[Any]) -> None:
        """An ``lru`` change (see kvshard.protocol.ascii_admin.lru_change) for this shard."""
        if change == "tune":
            self.maintainer.tune(*args)
        elif change == "mode":
            self.maintainer.set_mode(*args)
        else:
            self.maintainer.set_temp_ttl(*args)

    def _arena_classes(self, classes: list[int]) -> list[int]:
        """Class ids (1...; 0: all) as the indexes of the arena's classes among them (a list
        may come as a tuple from another shard)."""
        count = self.cache.arena.class_count
        if ALL_CLASSES in classes:
            return list(range(count))
        return [clsid - 1 for clsid in classes if 1 <= clsid <= count]


async def _result_of(future: Any) -> Any:
    return await future


# ----- the connection's side ------------------------------------------------------------------


def stats_cachedump(ctx: Any, conn: Any, args: list[bytes]) -> None:
    """``stats cachedump <class> <limit>`` (``args``: the tokens after ``stats``)."""
    if not ctx.info.dump_enabled:
        conn.reply(R_CACHEDUMP_REFUSED)
        return
    if len(args) < 3:
        conn.reply(R_BAD_COMMAND_LINE)
        return
    clsid = strtoul32(args[1])
    limit = strtoul32(args[2])
    if clsid is None or limit is None:
        conn.reply(R_BAD_FORMAT)
    elif clsid > MAX_CLASS_ID:
        conn.reply(R_ILLEGAL_SLAB)
    else:
        conn.fan_out("kv.item.cachedump", (clsid, limit), lambda parts: _merge_cachedump(parts, limit))


def _merge_cachedump(parts: list[list[bytes]], limit: int) -> bytes:
    """The shards' lines, shard after shard, within the limit and memcached's reply cap."""
    out = []
    used = 0
    for lines in parts:
        for line in lines:
            if (limit and len(out) >= limit) or used + len(line) + len(R_END) + 1 > item_dumps.CACHEDUMP_CAP:
                return b"".join(out) + R_END
            out.append(line)
            used += len(line)
    return b"".join(out) + R_END


def stats_sizes(ctx: Any, conn: Any, group: bytes) -> None:
    """``stats sizes``, ``stats sizes_enable``, ``stats sizes_disable`` (memcached answers the
    last two with one STAT line and no END)."""
    if group == b"sizes":
        conn.fan_out("kv.item.sizes", (), _merge_sizes)
    elif group == b"sizes_enable":
        if not ctx.info.cas_enabled:
            conn.reply(R_SIZES_NO_CAS)
        else:
            conn.fan_out("kv.item.sizes_switch", (True,), lambda parts: R_SIZES_ENABLED)
    else:
        conn.fan_out("kv.item.sizes_switch", (False,), lambda parts: R_SIZES_DISABLED)


def _merge_sizes(parts: list[list[list[int]] | None]) -> bytes:
    if any(part is None for part in parts):
        return R_SIZES_DISABLED + R_END
    counts: dict[int, int] = {}
    for part in parts:
        for bucket, n in part:  # type: ignore[union-attr]
            counts[bucket] = counts.get(bucket, 0) + n
    return b"".join(b"STAT %d %d\r\n" % (bucket, counts[bucket]) for bucket in sorted(counts)) + R_END


def cache_memlimit(conn: Any, tokens: list[bytes]) -> None:
    """``cache_memlimit <MB> [noreply]`` (the parser checked there are 2 or 3 tokens)."""
    noreply = tokens[-1] == _NOREPLY
    megabytes = strtoul32(tokens[1])
    refusal = None
    if megabytes is None:
        refusal = R_ERROR
    elif megabytes < MEMLIMIT_MIN_MB:
        refusal = R_MEMLIMIT_TOO_SMALL
    elif megabytes > MEMLIMIT_MAX_MB:
        refusal = R_MEMLIMIT_NOT_BYTES
    if refusal is not None:
        if not noreply:
            conn.reply(refusal)
        return
    assert megabytes is not None
    conn.fan_out("kv.item.memlimit", (megabytes << 20,),
                 lambda done: b"" if noreply else R_OK if all(done) else R_MEMLIMIT_FAILED)


def lru_crawler(ctx: Any, conn: Any, tokens: list[bytes], answers_waiting: bool) -> None:
    """``lru_crawler crawl|metadump|tocrawl|sleep <arg>``, ``lru_crawler enable|disable``;
    ``answers_waiting``: earlier commands of the read have answers memcached would still hold
    (a metadump then refuses)."""
    n = len(tokens)
    sub = tokens[1] if n > 1 else b""
    crawler = ctx.service.crawler
    if n == 3 and sub in (b"crawl", b"metadump"):
        if not crawler.enabled:
            conn.reply(R_CRAWLER_DISABLED)
            return
        if sub == b"metadump":
            if not ctx.info.dump_enabled:
                conn.reply(R_METADUMP_REFUSED)
                return
            if answers_waiting:
                conn.reply(R_METADUMP_PIPELINED)
                return
        elif tokens[2] == b"hash":  # memcached walks its hash table for a metadump only
            conn.reply(R_CRAWLER_ERROR)
            return
        classes = _class_list(tokens[2])
        if classes is None:
            conn.reply(R_BAD_CLASS)
        elif not classes:
            conn.reply(R_NOT_STARTED)
        elif sub == b"crawl":
            conn.fan_out("kv.item.crawl", (classes,), lambda started: R_OK if all(started) else R_CRAWLER_BUSY)
        else:
            conn.fan_out("kv.item.metadump", (classes,), _merge_metadump)
    elif n == 3 and sub in (b"tocrawl", b"sleep"):
        value = strtoul32(tokens[2])
        if value is None:
            conn.reply(R_BAD_FORMAT)
        elif sub == b"sleep" and value > CRAWLER_SLEEP_MAX:
            conn.reply(R_SLEEP_TOO_LONG)
        else:
            conn.fan_out("kv.item.crawler_set", (sub.decode(), value), lambda done: R_OK)
    elif n == 2 and sub == b"enable":
        if crawler.enabled:
            conn.reply(R_CRAWLER_START_FAILED)
        else:
            conn.fan_out("kv.item.crawler_switch", (True,), lambda done: R_OK)
    elif n == 2 and sub == b"disable":
        conn.fan_out("kv.item.crawler_switch", (False,), lambda done: R_OK)
    else:
        conn.reply(R_ERROR)


def _class_list(text: bytes) -> list[int] | None:
    """``all`` or ``hash`` ([ALL_CLASSES]), else comma-separated class ids 1..63 (empty
    parts skipped, as C's strtok skips them); None if one is not such an id."""
    if text == b"all" or text == b"hash":
        return [ALL_CLASSES]
    classes = []
    for part in text.split(b","):
        if not part:
            continue
        clsid = strtoul32(part)
        if clsid is None or not 1 <= clsid <= MAX_CLASS_ID:
            return None
        classes.append(clsid)
    return classes


def _merge_metadump(parts: list[bytes | None]) -> bytes:
    if any(part is None for part in parts):
        return R_CRAWLER_BUSY
    return b"".join(parts) + R_END  # type: ignore[arg-type]


def lru(ctx: Any, conn: Any, tokens: list[bytes]) -> None:
    """``lru tune|mode|temp_ttl ...``: checked (kvshard.protocol.ascii_admin), then made on every
    shard; ``OK`` once all have it."""
    change = lru_change(tokens, ctx.service.maintainer.running)
    if isinstance(change, bytes):
        if change:
            conn.reply(change)
        return
    noreply = tokens[-1] == _NOREPLY
    conn.fan_out("kv.item.lru", change, lambda done: b"" if noreply else R_OK)
