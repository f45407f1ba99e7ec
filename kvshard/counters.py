"""Statistics counters as attributes: C integers when compiled, so counting a hit or a byte on
the request path is an add, not a dict lookup and a new int object.

Each class names its counters in ``NAMES`` (the order ``stats`` lists them); :meth:`Counters.reset`
zeroes those (``stats reset``) and :meth:`Counters.as_dict` reads them by name.
"""

from __future__ import annotations

__all__ = ["Counters", "CacheCounters", "ConnectionCounters"]


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
    """What one shard's item store counts (memcached's names)."""

    NAMES = (
        "cmd_set", "cmd_touch", "cmd_flush", "cmd_meta", "get_hits", "get_misses", "get_expired",
        "delete_hits", "delete_misses", "incr_hits", "incr_misses", "decr_hits", "decr_misses",
        "cas_hits", "cas_misses", "cas_badval", "touch_hits", "touch_misses", "evictions",
        "total_items", "reclaimed", "store_too_large", "store_no_memory",
        "expired_unfetched", "evicted_unfetched", "evicted_active",
        "crawler_reclaimed", "crawler_items_checked", "lru_crawler_starts",
    )


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
