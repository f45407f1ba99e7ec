"""Walks over one shard's arena that read items for a client: ``stats cachedump``'s lines and
``stats sizes``' histogram. Both only read; compiled, the walks are C loops over the arena's
links (item_dumps.pxd)."""

from __future__ import annotations

from typing import Final

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

from .cache import BINARY_KEY
from .protocol.ascii import item_total_size
from .slab_arena import COLD_LRU, LRUS, SlabArena

__all__ = ["cachedump_lines", "size_histogram", "SIZE_BUCKET", "CACHEDUMP_CAP"]

SIZE_BUCKET: Final = 32  # stats sizes: items counted per 32 bytes of memcached's item size
CACHEDUMP_CAP: Final = 2 * 1024 * 1024  # memcached's cap on a cachedump's reply, END included
_END_ROOM: Final = 6  # "END\r\n" and memcached's NUL, which the cap keeps room for


def cachedump_lines(arena: SlabArena, cls: int, limit: int, used: int = 0) -> list[bytes]:
    """``stats cachedump``'s ``ITEM <key> [<bytes> b; <expiry> s]`` lines for class ``cls``
    (an arena class index): its COLD LRU's items, as memcached's, most recently used first
    (new items are in HOT until the maintainer moves them): at most ``limit`` (0: no limit), and no
    more than fit under :data:`CACHEDUMP_CAP` after ``used`` bytes. The expiry is a Unix time, 0
    for none. Items with a binary key are skipped, the key is cut at a NUL (memcached prints it
    as a C string)."""
    lines = []
    total = used
    ref = arena.lru_head(cls | COLD_LRU)
    while ref != 0 and (limit == 0 or len(lines) < limit):
        if not arena.marks(ref) & BINARY_KEY:
            expire_at = arena.expire_at(ref)
            key = arena.key(ref)
            if 0 in key:
                key = key[: key.index(0)]
            line = b"ITEM %b [%d b; %d s]\r\n" % (key, arena.nbytes(ref), 0 if expire_at == 0 else int(expire_at))
            if total + len(line) + _END_ROOM > CACHEDUMP_CAP:
                break
            total += len(line)
            lines.append(line)
        ref = arena.older(ref)
    return lines


def size_histogram(arena: SlabArena, cas_min: int, largest: int) -> dict[int, int]:
    """``stats sizes``: {bucket: items} over the linked items whose CAS is at least
    ``cas_min`` (those stored since tracking began, as memcached tells them), a bucket being
    memcached's item size rounded up to :data:`SIZE_BUCKET` (buckets from ``largest`` up are
    not kept, as memcached's histogram ends at the item size limit)."""
    counts: dict[int, int] = {}
    for lst in range(arena.class_count * len(LRUS)):
        ref = arena.lru_head((lst >> 2) | LRUS[lst & 3])
        while ref != 0:
            if arena.cas(ref) >= cas_min:
                size = item_total_size(arena.key_length(ref), arena.flags(ref), arena.nbytes(ref))
                bucket = (size + SIZE_BUCKET - 1) // SIZE_BUCKET * SIZE_BUCKET
                if bucket < largest:
                    counts[bucket] = counts.get(bucket, 0) + 1
            ref = arena.older(ref)
    return counts
