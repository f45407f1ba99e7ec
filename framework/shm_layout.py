"""The one shared mapping every shard inherits, and where each piece of it lives.

The supervisor makes an anonymous ``MAP_SHARED`` mapping (``mmap.mmap(-1, size)``) before it
forks the shards, so every shard, including one restarted later, maps the same pages. These
are the pages ``multiprocessing.shared_memory`` would give, but without a name under /dev/shm:
nothing can be left behind there, even if the supervisor is killed with SIGKILL.

Layout::

    offset 0                 sleeping flags: one u64 per shard (8 bytes each), padded to 64
    then                     shared words: SHARED_WORDS u64 per shard (64 bytes, one cache
                             line each); shard s writes only its own line, anyone may read all
    then, for src in 0..n-1, dst in 0..n-1, src != dst, in that order:
                             the ring src -> dst (ring.HEADER_BYTES + capacity bytes)
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

from .ring import RingConsumer, RingProducer, ring_bytes

__all__ = ["SharedLayout", "SHARED_WORDS"]

SHARED_WORDS = 8


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class SharedLayout:
    shards: int
    ring_capacity: int

    @property
    def flags_bytes(self) -> int:
        return _round_up(8 * self.shards, 64)

    @property
    def words_offset(self) -> int:
        return self.flags_bytes

    @property
    def rings_offset(self) -> int:
        return self.flags_bytes + self.shards * SHARED_WORDS * 8

    @property
    def total_bytes(self) -> int:
        return self.rings_offset + self.shards * (self.shards - 1) * ring_bytes(self.ring_capacity)

    def ring_offset(self, src: int, dst: int) -> int:
        if src == dst or not (0 <= src < self.shards and 0 <= dst < self.shards):
            raise ValueError(f"no ring {src} -> {dst}")
        index = src * (self.shards - 1) + (dst if dst < src else dst - 1)
        return self.rings_offset + index * ring_bytes(self.ring_capacity)

    def allocate(self) -> mmap.mmap:
        """The zeroed anonymous shared mapping (call before forking)."""
        return mmap.mmap(-1, max(self.total_bytes, mmap.PAGESIZE))

    def sleeping_flags(self, buf: memoryview) -> memoryview:
        return buf[: 8 * self.shards].cast("Q")

    def shared_words(self, buf: memoryview) -> memoryview:
        """Every shard's SHARED_WORDS words as one u64 view: shard s owns
        ``[s * SHARED_WORDS, (s + 1) * SHARED_WORDS)``."""
        start = self.words_offset
        return buf[start : start + self.shards * SHARED_WORDS * 8].cast("Q")

    def _ring_buf(self, buf: memoryview, src: int, dst: int) -> memoryview:
        start = self.ring_offset(src, dst)
        return buf[start : start + ring_bytes(self.ring_capacity)]

    def producer(self, buf: memoryview, src: int, dst: int) -> RingProducer:
        return RingProducer(self._ring_buf(buf, src, dst), self.ring_capacity)

    def consumer(self, buf: memoryview, src: int, dst: int) -> RingConsumer:
        return RingConsumer(self._ring_buf(buf, src, dst), self.ring_capacity)
