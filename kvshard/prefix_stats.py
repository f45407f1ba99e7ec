"""Per-prefix statistics: memcached's ``stats detail on|off|dump`` (``-D`` sets the delimiter).

A key's *prefix* is what comes before the first delimiter byte (``:`` unless ``-D`` says
otherwise); a key with no delimiter (or a NUL byte before it, where memcached's C string ends)
has none and is not counted. Each shard counts the commands whose keys it owns, in the commands
memcached counts: every key of ``get``/``gets``/``gat``/``gats`` and of the binary GET and
TOUCH families (with hits), every valid storage command (before it is tried, so an item too
large counts too) and every ``delete``. Meta commands, incr/decr and touch are not counted.

``stats detail dump`` merges every shard's counts. memcached lists its prefixes in the order of
its prefix hash table: by bucket (MurmurHash3 of the prefix, modulo 256), and within a bucket
the newest prefix first; :func:`dump` orders them the same way (a prefix's age is the first
time any shard saw it), so the reply is byte for byte memcached's.

Recording costs nothing while detail is off: the service checks one C flag
(``KVService.detail_enabled``) before it calls in here.
"""

from __future__ import annotations

import time
from typing import Final, Iterable

__all__ = ["PrefixStats", "dump", "murmur3_32", "PREFIX_BUCKETS"]

PREFIX_BUCKETS: Final = 256  # memcached's PREFIX_HASH_SIZE
_MASK32: Final = 0xFFFFFFFF

# one prefix's counters: [gets, hits, sets, deletes, first seen (monotonic ns)]
_GETS, _HITS, _SETS, _DELETES, _FIRST_SEEN = range(5)


class PrefixStats:
    """One shard's per-prefix counters."""

    def __init__(self, delimiter: bytes = b":") -> None:
        if len(delimiter) != 1:
            raise ValueError("the prefix delimiter is one byte")
        self.delimiter = delimiter
        self._counts: dict[bytes, list[int]] = {}

    def _entry(self, key: bytes) -> list[int] | None:
        end = key.find(self.delimiter)
        if end < 0 or b"\0" in key[:end]:
            return None
        prefix = key[:end]
        entry = self._counts.get(prefix)
        if entry is None:
            entry = self._counts[prefix] = [0, 0, 0, 0, time.monotonic_ns()]
        return entry

    def record_get(self, key: bytes, hit: bool) -> None:
        entry = self._entry(key)
        if entry is not None:
            entry[_GETS] += 1
            if hit:
                entry[_HITS] += 1

    def record_set(self, key: bytes) -> None:
        entry = self._entry(key)
        if entry is not None:
            entry[_SETS] += 1

    def record_delete(self, key: bytes) -> None:
        entry = self._entry(key)
        if entry is not None:
            entry[_DELETES] += 1

    def clear(self) -> None:
        """Forget every prefix (``stats reset``)."""
        self._counts.clear()

    def snapshot(self) -> list[list[object]]:
        """``[prefix, gets, hits, sets, deletes, first seen]`` per prefix (it crosses shards)."""
        return [[prefix, *entry] for prefix, entry in self._counts.items()]


def dump(snapshots: Iterable[list[list[object]]]) -> bytes:
    """The reply to ``stats detail dump``: every shard's counts merged, in memcached's order."""
    merged: dict[bytes, list[int]] = {}
    for snapshot in snapshots:
        for prefix, *counts in snapshot:
            assert isinstance(prefix, bytes)
            total = merged.get(prefix)
            if total is None:
                merged[prefix] = [int(n) for n in counts]  # type: ignore[call-overload]
                continue
            for i in (_GETS, _HITS, _SETS, _DELETES):
                total[i] += counts[i]  # type: ignore[operator]
            total[_FIRST_SEEN] = min(total[_FIRST_SEEN], counts[_FIRST_SEEN])  # type: ignore[type-var]
    order = sorted(merged, key=lambda p: (murmur3_32(p) % PREFIX_BUCKETS, -merged[p][_FIRST_SEEN]))
    lines = [
        b"PREFIX %b get %d hit %d set %d del %d\r\n" % (p, *merged[p][_GETS : _DELETES + 1]) for p in order
    ]
    return b"".join(lines) + b"END\r\n"


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK32


def _scramble(k: int) -> int:
    return (_rotl32((k * 0xCC9E2D51) & _MASK32, 15) * 0x1B873593) & _MASK32


def murmur3_32(data: bytes) -> int:
    """MurmurHash3_x86_32 with seed 0: memcached's default hash (``hash_algorithm murmur3``)."""
    h = 0
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        h = (_rotl32(h ^ _scramble(int.from_bytes(data[i : i + 4], "little")), 13) * 5 + 0xE6546B64) & _MASK32
    if whole < len(data):
        h ^= _scramble(int.from_bytes(data[whole:], "little"))
    h ^= len(data)
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & _MASK32
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & _MASK32
    return h ^ (h >> 16)
