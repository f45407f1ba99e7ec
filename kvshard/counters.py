"""Statistics counters as attributes: C integers when compiled, so counting a hit or a byte on
the request path is an add, not a dict lookup and a new int object.

Each class names its counters in ``NAMES`` (the order ``stats`` lists them); :meth:`Counters.reset`
zeroes those (``stats reset``) and :meth:`Counters.as_dict` reads them by name.
"""

from __future__ import annotations

from array import array
from typing import Final

__all__ = [
    "Counters", "CacheCounters", "ConnectionCounters", "CLASS_COUNTERS", "CLASS_SLOTS",
    "GET_HITS", "CMD_SET", "DELETE_HITS", "INCR_HITS", "DECR_HITS", "CAS_HITS", "CAS_BADVAL", "TOUCH_HITS",
]

# the commands memcached 1.6.18 counts per slab class (``stats slabs``, in its order), whose sums
# are the totals of ``stats``: CacheCounters.per_class holds CLASS_SLOTS of each, the counter's
# index times CLASS_SLOTS plus the class's index
CLASS_COUNTERS: Final = (
    "get_hits", "cmd_set", "delete_hits", "incr_hits", "decr_hits", "cas_hits", "cas_badval", "touch_hits",
)
GET_HITS: Final = 0
CMD_SET: Final = 1
DELETE_HITS: Final = 2
INCR_HITS: Final = 3
DECR_HITS: Final = 4
CAS_HITS: Final = 5
CAS_BADVAL: Final = 6
TOUCH_HITS: Final = 7
CLASS_SLOTS: Final = 64  # memcached's class ids stop at 63, and so do the arena's classes


class Counters:
    """Counters named by ``NAMES``."""

    NAMES = ()  # the counters, by name

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Every counter in ``NAMES`` to 0."""
        for name in self.NAMES:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """name -> value, in ``NAMES`` order."""
        return {name: getattr(self, name) for name in self.NAMES}

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter called ``name`` (for cold paths that choose it by name)."""
        setattr(self, name, getattr(self, name) + n)


class CacheCounters(Counters):
    """What one shard's item store counts (memcached's names). The commands of
    :data:`CLASS_COUNTERS` are counted per slab class, in ``per_class`` (one array increment
    each); read as attributes they are the sums over the classes."""

    NAMES = (
        "cmd_touch", "cmd_flush", "cmd_meta", "get_misses", "get_expired",
        "delete_misses", "incr_misses", "decr_misses",
        "cas_misses", "touch_misses", "evictions",
        "total_items", "reclaimed", "store_too_large", "store_no_memory",
        "expired_unfetched", "evicted_unfetched", "evicted_active",
        "crawler_reclaimed", "crawler_items_checked", "lru_crawler_starts",
        "slab_reassign_rescues", "slab_reassign_chunk_rescues", "slab_reassign_evictions_nomem",
        "slab_reassign_inline_reclaim", "slabs_moved",
    )

    def __init__(self, hit_source: object = None) -> None:
        self.per_class = memoryview(array("q", bytes(8 * len(CLASS_COUNTERS) * CLASS_SLOTS)))
        # with a hit source (the slab arena), a class's get_hits are not counted here but are
        # its ``hit_source.class_hits(cls)``: the sum of its hits_to_hot/warm/cold/temp, as
        # memcached derives them from its lru_hits (one counter per hit, not two)
        self.hit_source = hit_source
        Counters.__init__(self)

    def reset(self) -> None:
        Counters.reset(self)
        for i in range(len(CLASS_COUNTERS) * CLASS_SLOTS):
            self.per_class[i] = 0
        if self.hit_source is not None:
            self.hit_source.reset_hits()

    def total(self, counter: int) -> int:
        """Counter ``counter`` (GET_HITS ...) summed over the classes."""
        if counter == GET_HITS and self.hit_source is not None:
            return self.hit_source.total_hits()
        n = 0
        for i in range(counter * CLASS_SLOTS, (counter + 1) * CLASS_SLOTS):
            n += self.per_class[i]
        return n

    def class_counts(self, cls: int) -> dict[str, int]:
        """Class ``cls``'s counts, by name."""
        out = {name: self.per_class[i * CLASS_SLOTS + cls] for i, name in enumerate(CLASS_COUNTERS)}
        if self.hit_source is not None:
            out["get_hits"] = self.hit_source.class_hits(cls)
        return out

    def as_dict(self) -> dict[str, int]:
        out = Counters.as_dict(self)
        for i, name in enumerate(CLASS_COUNTERS):
            out[name] = self.total(i)
        return out

    def __getattr__(self, name: str) -> int:
        if name in CLASS_COUNTERS:
            return self.total(CLASS_COUNTERS.index(name))
        raise AttributeError(name)


class ConnectionCounters(Counters):
    """What one shard's client connections count; ``curr_connections`` is a gauge, left alone
    by :meth:`reset`."""

    NAMES = (
        "total_connections", "rejected_connections", "idle_kicks", "bytes_read", "bytes_written",
        "auth_cmds", "auth_errors", "conn_yields",
    )

    def __init__(self) -> None:
        self.curr_connections = 0
        Counters.__init__(self)

    def as_dict(self) -> dict[str, int]:
        out = {"curr_connections": self.curr_connections}
        out.update(Counters.as_dict(self))
        return out
