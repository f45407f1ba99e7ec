"""memcached's ``stats`` replies, built from the counters every shard keeps.

Only counters kvshard really keeps are reported, under memcached's names and in memcached's
order; a memcached field we do not track (slab rebalancing, LRU crawler, ...) is left out
rather than shown as 0. Per-shard values are summed (``sum_shards``) before formatting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["ServerInfo", "sum_shards", "general", "settings", "items", "slabs", "conns"]

# counters summed over shards, in memcached 1.6's order
_GENERAL_COUNTERS = (
    "curr_connections", "total_connections", "rejected_connections", "idle_kicks",
    "cmd_get", "cmd_set", "cmd_flush", "cmd_touch",
    "get_hits", "get_misses", "get_expired",
    "delete_misses", "delete_hits", "incr_misses", "incr_hits", "decr_misses", "decr_hits",
    "cas_misses", "cas_hits", "cas_badval", "touch_hits", "touch_misses",
    "store_too_large", "store_no_memory", "auth_cmds", "auth_errors",
    "bytes_read", "bytes_written",
)
_ITEM_COUNTERS = ("bytes", "curr_items", "total_items", "evictions", "reclaimed")


@dataclass(frozen=True)
class ServerInfo:
    """What ``stats`` needs to know about the server as a whole."""

    pid: int
    started: float
    version: str
    shards: int
    max_connections: int
    memory_bytes: int
    max_item_size: int
    port: int
    udp_port: int
    listen: str
    idle_timeout: int = 0
    shutdown_enabled: bool = False
    auth_sasl: bool = False  # -S
    auth_file: str = ""  # -Y
    tcp_backlog: int = 1024  # -b
    flush_enabled: bool = True  # -F: False
    cas_enabled: bool = True  # -C: False


def sum_shards(per_shard: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for shard in per_shard:
        for name, value in shard.items():
            total[name] = total.get(name, 0) + value
    return total


def _lines(pairs: Iterable[tuple[str, Any]]) -> bytes:
    return b"".join(b"STAT %s %s\r\n" % (k.encode(), _fmt(v)) for k, v in pairs) + b"END\r\n"


def _fmt(value: Any) -> bytes:
    if isinstance(value, float):
        return b"%d.%06d" % (int(value), int(round((value - int(value)) * 1e6)) % 1_000_000)
    return str(value).encode()


def general(info: ServerInfo, totals: dict[str, Any], now: float | None = None) -> bytes:
    now = time.time() if now is None else now
    pairs: list[tuple[str, Any]] = [
        ("pid", info.pid),
        ("uptime", int(now - info.started)),
        ("time", int(now)),
        ("version", info.version),
        ("pointer_size", 64),
        ("rusage_user", float(totals.get("rusage_user", 0.0))),
        ("rusage_system", float(totals.get("rusage_system", 0.0))),
        ("max_connections", info.max_connections),
    ]
    pairs.extend((name, totals.get(name, 0)) for name in _GENERAL_COUNTERS)
    pairs.append(("limit_maxbytes", info.memory_bytes))
    pairs.append(("threads", info.shards))
    pairs.extend((name, totals.get(name, 0)) for name in _ITEM_COUNTERS)
    return _lines(pairs)


def settings(info: ServerInfo, verbosity: int) -> bytes:
    return _lines([
        ("maxbytes", info.memory_bytes),
        ("maxconns", info.max_connections),
        ("tcpport", info.port),
        ("udpport", info.udp_port),
        ("inter", info.listen or "NULL"),
        ("verbosity", verbosity),
        ("evictions", "on"),
        ("shutdown_command", "yes" if info.shutdown_enabled else "no"),
        ("num_threads", info.shards),
        ("cas_enabled", "yes" if info.cas_enabled else "no"),
        ("tcp_backlog", info.tcp_backlog),
        ("binding_protocol", "binary" if info.auth_sasl else "ascii" if info.auth_file else "auto-negotiate"),
        ("auth_enabled_sasl", "yes" if info.auth_sasl else "no"),
        ("auth_enabled_ascii", info.auth_file or "no"),
        ("item_size_max", info.max_item_size),
        ("flush_enabled", "yes" if info.flush_enabled else "no"),
        ("idle_timeout", info.idle_timeout),
    ])


def items(totals: dict[str, Any]) -> bytes:
    """kvshard has one LRU per shard and no slab classes: all items show as class 1."""
    if not totals.get("curr_items"):
        return b"END\r\n"
    return _lines([
        ("items:1:number", totals.get("curr_items", 0)),
        ("items:1:mem_requested", totals.get("bytes", 0)),
        ("items:1:evicted", totals.get("evictions", 0)),
        ("items:1:outofmemory", totals.get("store_no_memory", 0)),
        ("items:1:reclaimed", totals.get("reclaimed", 0)),
    ])


def slabs(totals: dict[str, Any]) -> bytes:
    """No slab allocator here: only the memory charged to items is meaningful."""
    return _lines([("total_malloced", totals.get("bytes", 0))])


def conns(described: Iterable[tuple[int, str, str, str, int]]) -> bytes:
    """``stats conns``: per listening socket and client connection of every shard, ordered by
    id: its address, the address it came in on (clients only), its state and the seconds since
    its last command (for a listener, since it opened)."""
    pairs: list[tuple[str, Any]] = []
    for cid, addr, listen_addr, state, idle in sorted(described):
        pairs.append((f"{cid}:addr", addr))
        if listen_addr:
            pairs.append((f"{cid}:listen_addr", listen_addr))
        pairs.append((f"{cid}:state", state))
        pairs.append((f"{cid}:secs_since_last_cmd", idle))
    return _lines(pairs)
