"""The key-value service of one shard: the operations the owner of a key runs, as handlers.

Every operation runs on the shard that owns the key (:func:`kvshard.routing.owner_of`). A connection calls these
methods directly when it is that shard, and through the runtime's channels (handler names
``kv.*``, registered by :meth:`KVService.register`) when it is not. Each returns the reply
bytes of the memcached protocol, so the connection only has to put them in order; a reply that
crosses shards is one bytes object.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any, Final

from framework import Shard
from framework.channel import FixedTarget

from . import cache as c
from . import meta_ops
from .counters import ConnectionCounters
from .packed_blocks import pack_blocks
from .prefix_stats import PrefixStats
from .protocol import ascii as proto
from .protocol.ascii import (
    R_DELETED, R_END, R_EXISTS, R_NON_NUMERIC, R_NOT_FOUND, R_NOT_STORED, R_OUT_OF_MEMORY, R_STORED, R_TOUCHED,
    tokenize,
)
from .protocol import binary as bp
from .protocol.byte_slices import bytes_slice
from .routing import remember_mix, remember_mixes
from .protocol import meta as m
from .slab_arena import POOL

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

__all__ = [
    "KVService", "MAINTENANCE_INTERVAL", "HANDLER_NAMES", "REPORT_HANDLER", "PING_HANDLER",
    "FIXED_GET_ONE", "FIXED_STORE", "FIXED_DELETE", "FIXED_ARITH", "FIXED_TOUCH", "FIXED_BGET_PACKET",
    "STORE_CODES", "as_int64", "FIXED_BSTORE_PACKET", "BINARY_STORE_VERBS", "BINARY_RESULT_STATUS",
    "FIXED_GET_MANY",
]

MAINTENANCE_INTERVAL: Final = 1.0  # seconds between the crawler's ticks
# handlers the server registers beside the service's own: a shard's part of a scrape
# (kvshard.exporter) and the health check's ping (kvshard.metrics_http)
REPORT_HANDLER: Final = "kv.report"
PING_HANDLER: Final = "kv.ping"
# the operations other shards may call, as ``kv.<name>``
HANDLER_NAMES: Final = (
    "get", "get_one", "gat", "store", "delete", "arith", "touch", "too_large", "flush", "stats", "slab_stats",
    "stats_reset", "stats_detail", "prefix_stats", "bget", "bget_packet", "bgat", "bstore", "bstore_packet", "bdelete", "barith", "meta",
)

# The hot operations also travel as the channel's fixed records (framework.channel:
# call_fixed/send_fixed, no msgpack, no handler name): ``handler(key, value, a, b, c)``
# returns the reply bytes; a, b, c are signed 64-bit integers (:func:`as_int64` folds a
# 64-bit unsigned CAS or delta into one, the handler unfolds it).
if not cython.compiled:  # compiled, service.pxd's C enum (the same numbers)
    FIXED_GET_ONE: Final = 1      # (key, None, mix & 0xFFFFFFFF, mix >> 32, 0): the whole reply to `get <key>`; mix = routing.key_mix(key), or 0
    FIXED_STORE: Final = 2        # (key, value, STORE_CODES[op] | flags << 8, exptime, int64(cas))
    FIXED_DELETE: Final = 3       # (key, None, 0, 0, 0)
    FIXED_ARITH: Final = 4        # (key, None, 1 incr / 0 decr, int64(delta), 0)
    FIXED_TOUCH: Final = 5        # (key, None, exptime, 0, 0)
    FIXED_BGET_PACKET: Final = 6  # (key, None, opaque, 0, 0): the whole binary GET response
    FIXED_BSTORE_PACKET: Final = 7  # (key, value, opcode | flags << 8, int64(exptime | opaque << 32), int64(cas))
    FIXED_GET_MANY: Final = 8     # (keys joined by b" ", routing.pack_mixes(keys) or None, with_cas,
    #                               1 gat / 0 get, exptime): pack_blocks(each key's VALUE block, b"" for a miss)
# stats items' per-class fields of the segmented LRU, shown while the maintainer runs (memcached's)
_SEGMENT_FIELDS: Final = (
    "number_hot", "number_warm", "number_cold", "number_temp", "age_hot", "age_warm", "evicted_active",
    "moves_to_cold", "moves_to_warm", "moves_within_lru", "direct_reclaims", "hits_to_hot", "hits_to_warm",
    "hits_to_cold", "hits_to_temp",
)
_STORE_OPS_BY_CODE: Final = (b"set", b"add", b"replace", b"append", b"prepend", b"cas")
STORE_CODES: Final = {op: code for code, op in enumerate(_STORE_OPS_BY_CODE)}
_UINT64_MASK: Final = (1 << 64) - 1


def as_int64(n: int) -> int:
    """A 64-bit unsigned integer as the signed one with the same bits."""
    return n - (1 << 64) if n >= 1 << 63 else n


BINARY_STORE_VERBS: Final = {
    bp.OP_SET: b"set", bp.OP_SETQ: b"set", bp.OP_ADD: b"add", bp.OP_ADDQ: b"add",
    bp.OP_REPLACE: b"replace", bp.OP_REPLACEQ: b"replace",
    bp.OP_APPEND: b"append", bp.OP_APPENDQ: b"append",
    bp.OP_PREPEND: b"prepend", bp.OP_PREPENDQ: b"prepend",
}
# what a refused store answers: memcached reports an add that found the key as "exists" and a
# replace that did not as "not found"; append and prepend say "not stored"
_BINARY_NOT_STORED_STATUS: Final = {
    b"add": bp.ST_EXISTS, b"replace": bp.ST_NOT_FOUND, b"append": bp.ST_NOT_STORED,
    b"prepend": bp.ST_NOT_STORED, b"set": bp.ST_NOT_STORED,
}
BINARY_RESULT_STATUS: Final = {
    c.EXISTS: bp.ST_EXISTS, c.NOT_FOUND: bp.ST_NOT_FOUND, c.NO_MEMORY: bp.ST_NO_MEMORY,
    c.NON_NUMERIC: bp.ST_NON_NUMERIC,
}


# the ASCII reply to each store() result, indexed by it (STORED 0 ... NO_MEMORY 4)
_STORE_REPLIES: Final = (R_STORED, R_NOT_STORED, R_EXISTS, R_NOT_FOUND, R_OUT_OF_MEMORY)
assert [c.STORED, c.NOT_STORED, c.EXISTS, c.NOT_FOUND, c.NO_MEMORY] == list(range(5))


def _with_cas(item: c.Item) -> bytes:
    """An item's VALUE block with its CAS unique added to the header (``gets``)."""
    block, header_len = item[0], item[4]
    return b"%b %d\r\n%b" % (block[: header_len - 2], item[3], block[header_len:])


class KVService(FixedTarget):
    """The cache of this shard plus the handlers that expose it to the other shards."""

    def __init__(
        self, cache: c.Cache, loop: asyncio.AbstractEventLoop, *, prefix_delimiter: bytes = b":",
        detail_enabled: bool = False,
    ) -> None:
        self.cache = cache
        self._loop = loop
        self._flush_timer: asyncio.TimerHandle | None = None
        self._reclaim_timer: asyncio.TimerHandle | None = None
        # the shard's LRU crawler (kvshard.crawler), LRU maintainer (kvshard.lru_maintainer), item
        # commands (kvshard.item_commands) and slab mover (kvshard.slab_mover), which the server adds
        self.crawler: Any = None
        self.maintainer: Any = None
        self.items: Any = None
        self.mover: Any = None
        self.conn_stats = ConnectionCounters()
        # ``stats detail``: per-prefix counts of the keys this shard owns, kept while the flag
        # is on (-D turns it on from the start); the only cost when off is the flag's check
        self.prefixes = PrefixStats(prefix_delimiter)
        self.detail_enabled = detail_enabled

    def handlers(self) -> dict[str, Any]:
        """The operations by name, for calling them on this shard without a channel."""
        return {name: getattr(self, name) for name in HANDLER_NAMES}

    def register(self, shard: Shard) -> None:
        for name in HANDLER_NAMES:
            shard.register("kv." + name, getattr(self, name))
        for handler_id, handler in self.fixed_handlers().items():
            shard.messenger.register_fixed(handler_id, handler)
        shard.messenger.register_fixed_target(self, self.fixed_handlers())  # run_fixed: a C call

    def fixed_handlers(self) -> dict[int, Any]:
        """The hot operations by fixed-record handler id (see FIXED_GET_ONE ...)."""
        return {
            FIXED_GET_ONE: self.fixed_get_one, FIXED_STORE: self.fixed_store, FIXED_DELETE: self.fixed_delete,
            FIXED_ARITH: self.fixed_arith, FIXED_TOUCH: self.fixed_touch, FIXED_BGET_PACKET: self.fixed_bget_packet,
            FIXED_BSTORE_PACKET: self.fixed_bstore_packet, FIXED_GET_MANY: self.fixed_get_many,
        }

    # ----- the fixed-record forms of the hot operations (see FIXED_GET_ONE ...) --------------

    def run_fixed(self, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        """A hot operation in its fixed-record form, run here: what a forwarded one runs on
        its owner, and a local one inline (compiled, a C call all the way to the cache)."""
        if handler_id == FIXED_GET_ONE:
            return self.fixed_get_one(key, value, a, b, c)
        if handler_id == FIXED_STORE:
            return self.fixed_store(key, value, a, b, c)  # type: ignore[arg-type]
        if handler_id == FIXED_BGET_PACKET:
            return self.fixed_bget_packet(key, value, a, b, c)
        if handler_id == FIXED_BSTORE_PACKET:
            return self.fixed_bstore_packet(key, value, a, b, c)  # type: ignore[arg-type]
        if handler_id == FIXED_GET_MANY:
            return self.fixed_get_many(key, value, a, b, c)
        if handler_id == FIXED_DELETE:
            return self.fixed_delete(key, value, a, b, c)
        if handler_id == FIXED_ARITH:
            return self.fixed_arith(key, value, a, b, c)
        if handler_id == FIXED_TOUCH:
            return self.fixed_touch(key, value, a, b, c)
        raise ValueError(f"no fixed-record handler {handler_id}")

    def fixed_get_one(self, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        if not cython.compiled and a | b:  # (the router's mix of the key, for the index lookup)
            remember_mix(key, a | b << 32)
        block = self.cache.get_block(key, R_END)  # get_one, inlined: the most common forwarded operation
        if self.detail_enabled:
            self.prefixes.record_get(key, block is not None)
        return R_END if block is None else block

    def fixed_store(self, key: bytes, value: bytes, a: int, b: int, c: int) -> bytes:
        if a & 0xFF == 0 and c == 0:  # a plain set, the common store
            if self.detail_enabled:
                self.prefixes.record_set(key)
            return _STORE_REPLIES[self.cache.set_item(key, a >> 8, b, value)]
        return self.store(_STORE_OPS_BY_CODE[a & 0xFF], key, a >> 8, b, value, c & _UINT64_MASK)

    def fixed_get_many(self, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        keys = tokenize(key)
        if not cython.compiled and value is not None:  # (the router's mixes of the keys)
            remember_mixes(keys, value)
        return pack_blocks(self.gat(keys, a != 0, c)) if b else self.get_packed(keys, a != 0)

    def fixed_delete(self, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        return self.delete(key)

    def fixed_arith(self, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        return self.arith(a == 1, key, b & _UINT64_MASK)

    def fixed_touch(self, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        return self.touch(key, a)

    def fixed_bget_packet(self, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        return self.bget_packet(key, a)

    def fixed_bstore_packet(self, key: bytes, value: bytes, a: int, b: int, c: int) -> bytes:
        if cython.compiled:  # a, b, c are C int64s: their bits, reinterpreted in C
            unsigned_b = cython.cast(cython.ulonglong, b)
            return self.bstore_packet(a & 0xFF, key, cython.cast(cython.uint, a >> 8),
                                      cython.cast(cython.uint, unsigned_b), value,  # (the low half)
                                      cython.cast(cython.ulonglong, c), cython.cast(cython.uint, unsigned_b >> 32))
        unsigned_b = b & _UINT64_MASK  # exptime | opaque << 32
        return self.bstore_packet(a & 0xFF, key, a >> 8, unsigned_b & 0xFFFFFFFF, value, c & _UINT64_MASK,
                                  unsigned_b >> 32)

    def start(self) -> None:
        self._reclaim_timer = self._loop.call_later(MAINTENANCE_INTERVAL, self._tick)
        if self.maintainer is not None:
            self.maintainer.start()

    def stop(self) -> None:
        for timer in (self._reclaim_timer, self._flush_timer):
            if timer is not None:
                timer.cancel()
        for worker in (self.crawler, self.maintainer, self.mover):
            if worker is not None:
                worker.close()

    def _tick(self) -> None:
        """Every second: the crawler's tick (which may start reclaiming) and the slab mover's
        (which may move a page)."""
        for worker in (self.crawler, self.mover):
            if worker is not None:
                worker.tick()
        self._reclaim_timer = self._loop.call_later(MAINTENANCE_INTERVAL, self._tick)

    # ----- operations: each returns reply bytes ----------------------------------------------

    def get(self, keys: list[bytes], with_cas: bool) -> list[bytes]:
        """One entry per key: its VALUE block, or b"" for a miss."""
        cache = self.cache
        if not with_cas:
            blocks = [cache.get_block(key) or b"" for key in keys]
        else:
            blocks = [b"" if (item := cache.get(key)) is None else _with_cas(item) for key in keys]
        if self.detail_enabled:
            self._record_gets(keys, blocks)
        return blocks

    def get_packed(self, keys: list[bytes], with_cas: bool) -> bytes:
        """:meth:`get`'s blocks, packed (kvshard.packed_blocks): a multi-key get's share."""
        if self.detail_enabled:
            return pack_blocks(self.get(keys, with_cas))
        return self.cache.get_blocks_packed(keys, with_cas)

    def _record_gets(self, keys: list[bytes], blocks: list[bytes]) -> None:
        record_get = self.prefixes.record_get
        for key, block in zip(keys, blocks):
            record_get(key, block != b"")

    def get_one(self, key: bytes) -> bytes:
        """The whole reply to ``get <key>``: the fast path of the most common command."""
        block = self.cache.get_block(key, R_END)
        if self.detail_enabled:
            self.prefixes.record_get(key, block is not None)
        return R_END if block is None else block

    def gat(self, keys: list[bytes], with_cas: bool, exptime: int) -> list[bytes]:
        touch = self.cache.touch
        out = []
        for key in keys:
            item = touch(key, exptime)
            out.append(b"" if item is None else _with_cas(item) if with_cas else item[0])
        if self.detail_enabled:
            self._record_gets(keys, out)
        return out

    def store(self, op: bytes, key: bytes, flags: int, exptime: int, value: bytes, cas: int) -> bytes:
        if self.detail_enabled:
            self.prefixes.record_set(key)
        return _STORE_REPLIES[self.cache.store(op, key, flags, exptime, value, cas)]

    def delete(self, key: bytes) -> bytes:
        if self.detail_enabled:
            self.prefixes.record_delete(key)
        return R_DELETED if self.cache.delete(key) == c.STORED else R_NOT_FOUND

    def arith(self, incr: bool, key: bytes, delta: int) -> bytes:
        result = self.cache.arith(incr, key, delta)
        if result is None:
            return R_NOT_FOUND
        if result == c.NON_NUMERIC:
            return R_NON_NUMERIC
        return proto.number_line(result)

    def touch(self, key: bytes, exptime: int) -> bytes:
        return R_TOUCHED if self.cache.touch(key, exptime) is not None else R_NOT_FOUND

    # ----- the binary protocol's operations: results, not reply bytes -----------------------
    # (a binary reply echoes the request's opcode, opaque and key, which only the connection
    # knows, so these return the facts and the connection builds the packet)

    def bget(self, key: bytes) -> tuple[int, int, bytes] | None:
        """(flags, cas, value) or None."""
        found = self.cache.get_value(key)
        if self.detail_enabled:
            self.prefixes.record_get(key, found is not None)
        return found

    def bget_packet(self, key: bytes, opaque: int) -> bytes:
        """The whole response to a binary GET (the hot path of ``memaslap -B``)."""
        packet = self.cache.get_binary_hit(key, opaque)
        if self.detail_enabled:
            self.prefixes.record_get(key, packet is not None)
        return bp.error(bp.OP_GET, bp.ST_NOT_FOUND, opaque) if packet is None else packet

    def bgat(self, key: bytes, exptime: int) -> tuple[int, int, bytes] | None:
        """GAT and TOUCH (memcached counts both as gets in ``stats detail``)."""
        item = self.cache.touch(key, exptime)
        if self.detail_enabled:
            self.prefixes.record_get(key, item is not None)
        return None if item is None else (item[1], item[3], c.item_value(item))

    def bstore(self, op: bytes, key: bytes, flags: int, exptime: int, value: bytes, cas: int) -> tuple[int, int]:
        """(store result, the new CAS unique or 0)."""
        cache = self.cache
        if self.detail_enabled:
            self.prefixes.record_set(key)
        result = cache.store(op, key, flags, exptime, value, cas)
        return result, cache.cas_of(key) if result == c.STORED else 0

    def bstore_packet(self, opcode: int, key: bytes, flags: int, exptime: int, value: bytes, cas: int, opaque: int) -> bytes:
        """A binary store request, answered with its whole response packet (nothing for a
        quiet one that succeeded), as memcached answers it."""
        if cython.compiled and (opcode == C_OP_SET or opcode == C_OP_SETQ) and cas == 0:  # the common store, in C
            cache = self.cache
            if self.detail_enabled:
                self.prefixes.record_set(key)
            if cache.set_item(key, flags, exptime, value) == STORED:  # (C names: service.pxd's cimports)
                return b"" if opcode == C_OP_SETQ else header_only(opcode, 0, opaque, cache.last_cas())
            return bp.error(opcode, BINARY_RESULT_STATUS[NO_MEMORY], opaque)
        verb = BINARY_STORE_VERBS[opcode]
        result, new_cas = self.bstore(verb, key, flags, exptime, value, cas)
        if result == c.STORED:
            return b"" if opcode in bp.QUIET else bp.response(opcode, bp.ST_OK, opaque, new_cas)
        if result == c.NOT_STORED:
            return bp.error(opcode, _BINARY_NOT_STORED_STATUS[verb], opaque)
        return bp.error(opcode, BINARY_RESULT_STATUS[result], opaque)

    def bdelete(self, key: bytes, cas: int) -> int:
        if self.detail_enabled:
            self.prefixes.record_delete(key)
        return self.cache.delete(key, cas)

    def barith(
        self, incr: bool, key: bytes, delta: int, initial: int, exptime: int, cas: int,
    ) -> tuple[int, int, int]:
        """(result, new value, new CAS)."""
        cache = self.cache
        result, value = cache.arith_or_create(incr, key, delta, initial, exptime, cas)
        return result, value, cache.cas_of(key) if result == c.STORED else 0

    def meta(self, verb: bytes, key: bytes, flags: Any, value: bytes | None) -> bytes:
        """A meta command (mg, ms, md, ma, me): its whole answer. ``flags`` is a
        :class:`~kvshard.protocol.meta.MetaFlags`, or the list it becomes between shards."""
        cache = self.cache
        if verb == m.META_DEBUG:  # the one meta command memcached 1.6.18 counts in cmd_meta
            cache.stats.cmd_meta += 1
            return meta_ops.meta_debug(cache, key)
        if type(flags) is not m.MetaFlags:
            flags = m.MetaFlags(*flags)
        if verb == m.META_GET:
            return meta_ops.meta_get(cache, key, flags)
        if verb == m.META_SET:
            assert value is not None
            return meta_ops.meta_set(cache, key, flags, value)
        if verb == m.META_DELETE:
            return meta_ops.meta_delete(cache, key, flags)
        return meta_ops.meta_arith(cache, key, flags)

    def too_large(self, op: bytes, key: bytes) -> None:
        """An item over the size limit was refused: a ``set`` also drops the old item (so no
        stale value survives a failed overwrite), as memcached does."""
        if self.detail_enabled:
            self.prefixes.record_set(key)
        self.cache.stats.store_too_large += 1
        self.cache.watch_too_large(op, key)
        if op == b"set":
            self.cache.discard(key)

    def flush(self, delay: int) -> None:
        """flush_all: now (delay <= 0) or when ``delay`` has passed (memcached's exptime rules:
        up to 30 days relative, beyond that a Unix time). A new flush_all replaces a pending one."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if delay <= 0:
            self.cache.flush()
            return
        wait = max(0.0, self.cache.expire_at(delay) - time.time())
        self._flush_timer = self._loop.call_later(wait, self._delayed_flush)

    def _delayed_flush(self) -> None:
        self._flush_timer = None
        self.cache.flush()

    def slab_stats(self) -> tuple[int, list[dict[str, int]], int]:
        """(page size, per slab class of this shard's arena: its pages, chunks and items, the
        commands counted there and what the crawler did there (the segmented LRU's figures while
        the maintainer runs, TEMP's while TEMP is on, as memcached shows them), the pages in its
        global pool)."""
        page_size, classes = self.cache.class_stats()
        for figures in classes:
            figures.update(self.cache.stats.class_counts(figures["id"] - 1))
            if self.crawler is not None:
                figures.update(self.crawler.class_figures(figures["id"] - 1))
        hidden: tuple[str, ...] = ()
        if self.maintainer is None or not self.maintainer.running:
            hidden = _SEGMENT_FIELDS
        elif not self.cache.arena.temp_lru:
            hidden = ("number_temp",)
        for figures in classes:
            for name in hidden:
                del figures[name]
        return page_size, classes, self.cache.arena.class_pages(POOL)

    def stats(self) -> dict[str, Any]:
        """This shard's counters and gauges, summed over shards by the caller."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out: dict[str, Any] = self.cache.counters()
        out.update(self.conn_stats.as_dict())
        out["curr_items"] = len(self.cache)
        out["bytes"] = self.cache.used
        out["limit_bytes"] = self.cache.limit
        if self.crawler is not None:
            out["lru_crawler_enabled"] = int(self.crawler.enabled)
            out["lru_crawler_running"] = int(self.crawler.running)
        if self.maintainer is not None and self.maintainer.running:
            out["lru_maintainer_running"] = 1
            out["lru_maintainer_juggles"] = self.maintainer.juggles
            out.update(self.cache.arena.lru_totals())
        if self.mover is not None:
            out["slab_reassign_running"] = int(self.mover.running)
        out["slab_global_page_pool"] = self.cache.arena.class_pages(POOL)
        out["rusage_user"] = usage.ru_utime
        out["rusage_system"] = usage.ru_stime
        return out

    def stats_reset(self) -> None:
        """memcached's ``stats reset``: every counter (not the gauges: items, bytes, open
        connections) and the per-prefix counts; ``stats detail`` stays on or off."""
        self.cache.stats.reset()
        self.cache.arena.reset_lru_counts()
        if self.maintainer is not None:
            self.maintainer.juggles = 0
        self.conn_stats.reset()
        self.prefixes.clear()

    def stats_detail(self, on: bool) -> None:
        """``stats detail on|off`` on this shard (the counts so far are kept either way)."""
        self.detail_enabled = on

    def prefix_stats(self) -> list[list[Any]]:
        """This shard's part of ``stats detail dump``."""
        return self.prefixes.snapshot()
