"""memcached's ``stats`` replies, built from the counters every shard keeps.

Every field of memcached 1.6.18's ``stats`` and ``stats settings`` that means something here is
reported, under memcached's name, in memcached's order and format; a counter is summed over the
shards (``sum_shards``) where memcached sums it over its threads. A field for something kvshard
does not have or does not count (libevent, extstore, ...) is
left out, never shown as a constant: the README's "stats fields not reported" lists each one
with its reason, and a conformance test holds this module and that list to memcached's fields.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any, Iterable

from .counters import CLASS_COUNTERS

__all__ = ["ServerInfo", "sum_shards", "merge_classes", "general", "settings", "items", "slabs", "conns", "PROTOCOL_NAMES"]

_POINTER_BITS = struct.calcsize("P") * 8
# counters summed over shards, in memcached 1.6.18's order (idle_kicks, only with an idle
# timeout, goes between auth_errors and bytes_read)
_COMMAND_COUNTERS = (
    "cmd_get", "cmd_set", "cmd_flush", "cmd_touch", "cmd_meta", "get_hits", "get_misses", "get_expired",
    "delete_misses", "delete_hits", "incr_misses", "incr_hits", "decr_misses", "decr_hits",
    "cas_misses", "cas_hits", "cas_badval", "touch_hits", "touch_misses",
    "store_too_large", "store_no_memory", "auth_cmds", "auth_errors",
)
_ITEM_COUNTERS = (
    "bytes", "curr_items", "total_items", "slab_global_page_pool", "expired_unfetched", "evicted_unfetched",
    "evicted_active", "evictions", "reclaimed", "crawler_reclaimed", "crawler_items_checked",
)
# with slab reassignment on (memcached leaves out its busy_items and busy_deletes here: nothing in
# a shard is ever busy; see kvshard.slab_mover)
_REASSIGN_COUNTERS = (
    "slab_reassign_rescues", "slab_reassign_chunk_rescues", "slab_reassign_evictions_nomem",
    "slab_reassign_inline_reclaim",
)
# ... and those memcached shows only while its LRU maintainer runs
_MAINTAINER_COUNTERS = frozenset(("evicted_active",))
_SEGMENT_COUNTERS = ("moves_to_cold", "moves_to_warm", "moves_within_lru", "direct_reclaims")
# memcached's names for -o ssl_min_version's levels
_TLS_VERSION_NAMES = ("tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3")
# memcached's names for -B's choices in ``stats settings``
PROTOCOL_NAMES = {"auto": "auto-negotiate", "ascii": "ascii", "binary": "binary"}  # memcached's prot_text
_PEM_KEY_FORMAT = 1  # the only ssl_keyformat kvshard reads (another is refused at start)


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
    dump_enabled: bool = True  # -X: False
    cas_enabled: bool = True  # -C: False
    evictions: bool = True  # -M: False
    growth_factor: float = 1.25  # -f
    min_chunk: int = 48  # -n
    unix_socket: str = ""  # -s
    unix_mask: int = 0o700  # -a
    prefix_delimiter: bytes = b":"  # -D
    protocol: str = "auto"  # -B (-S: binary, -Y: ascii)
    reqs_per_event: int = 20  # -R
    slab_reassign: bool = True  # -o no_slab_reassign: False
    tls: Any = None  # -Z: kvshard.tls.TlsSettings


def sum_shards(per_shard: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for shard in per_shard:
        for name, value in shard.items():
            total[name] = total.get(name, 0) + value
    return total


def _lines(pairs: Iterable[tuple[str, Any]]) -> bytes:
    return b"".join(b"STAT %s %s\r\n" % (k.encode(), _fmt(v)) for k, v in pairs) + b"END\r\n"


def _fmt(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return b"%d.%06d" % (int(value), int(round((value - int(value)) * 1e6)) % 1_000_000)
    return str(value).encode()


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def general(info: ServerInfo, totals: dict[str, Any], now: float | None = None) -> bytes:
    """``stats``: the server, then the counters of every shard summed."""
    now = time.time() if now is None else now
    pairs: list[tuple[str, Any]] = [
        ("pid", info.pid),
        ("uptime", int(now - info.started)),
        ("time", int(now)),
        ("version", info.version),
        ("pointer_size", _POINTER_BITS),
        ("rusage_user", float(totals.get("rusage_user", 0.0))),
        ("rusage_system", float(totals.get("rusage_system", 0.0))),
        ("max_connections", info.max_connections),
        ("curr_connections", totals.get("curr_connections", 0)),
        ("total_connections", totals.get("total_connections", 0)),
        # memcached's maxconns_fast, which kvshard always has: a connection over -c is refused
        ("rejected_connections", totals.get("rejected_connections", 0)),
    ]
    pairs.extend((name, totals.get(name, 0)) for name in _COMMAND_COUNTERS)
    if info.idle_timeout:
        pairs.append(("idle_kicks", totals.get("idle_kicks", 0)))
    pairs.extend((name, totals.get(name, 0)) for name in ("bytes_read", "bytes_written"))
    pairs.append(("limit_maxbytes", info.memory_bytes))
    pairs.append(("threads", info.shards))
    pairs.append(("conn_yields", totals.get("conn_yields", 0)))
    if info.slab_reassign:
        pairs.extend((name, totals.get(name, 0)) for name in _REASSIGN_COUNTERS)
        pairs.append(("slab_reassign_running", min(1, totals.get("slab_reassign_running", 0))))
        pairs.append(("slabs_moved", totals.get("slabs_moved", 0)))
    if totals.get("lru_crawler_enabled"):  # (memcached shows these while its crawler runs)
        pairs.append(("lru_crawler_running", min(1, totals.get("lru_crawler_running", 0))))
        pairs.append(("lru_crawler_starts", totals.get("lru_crawler_starts", 0)))
    maintainer = bool(totals.get("lru_maintainer_running"))  # (and these while its LRU maintainer runs)
    if maintainer:
        pairs.append(("lru_maintainer_juggles", totals.get("lru_maintainer_juggles", 0)))
    pairs.extend((name, totals.get(name, 0)) for name in _ITEM_COUNTERS
                 if maintainer or name not in _MAINTAINER_COUNTERS)
    if maintainer:
        pairs.extend((name, totals.get(name, 0)) for name in _SEGMENT_COUNTERS)
    return _lines(pairs)


def settings(info: ServerInfo, verbosity: int, detail_enabled: bool, crawler: Any = None,
             track_sizes: bool = False, maintainer: Any = None, mover: Any = None) -> bytes:
    """``stats settings``: the flags as they act here (``detail_enabled`` follows ``stats
    detail on|off``; ``crawler``, the shard's LRU crawler, ``maintainer``, its LRU maintainer,
    ``track_sizes`` and ``mover``, its slab mover, follow ``lru_crawler ...``, ``lru ...``,
    ``stats sizes_enable|disable`` and ``slabs automove ...``)."""
    pairs: list[tuple[str, Any]] = [
        ("maxbytes", info.memory_bytes),
        ("maxconns", info.max_connections),
        ("tcpport", info.port),
        ("udpport", info.udp_port),
        ("inter", info.listen or "NULL"),
        ("verbosity", verbosity),
        ("evictions", "on" if info.evictions else "off"),
        ("domain_socket", info.unix_socket or "NULL"),
        ("umask", "%o" % info.unix_mask),
        ("shutdown_command", _yes_no(info.shutdown_enabled)),
        ("growth_factor", "%.2f" % info.growth_factor),
        ("chunk_size", info.min_chunk),
        ("num_threads", info.shards),
        ("num_threads_per_udp", info.shards),  # every shard serves the UDP port
        ("stat_key_prefix", info.prefix_delimiter),
        ("detail_enabled", _yes_no(detail_enabled)),
        ("reqs_per_event", info.reqs_per_event),
        ("cas_enabled", _yes_no(info.cas_enabled)),
        ("tcp_backlog", info.tcp_backlog),
        ("binding_protocol", PROTOCOL_NAMES[info.protocol]),
        ("auth_enabled_sasl", _yes_no(info.auth_sasl)),
        ("auth_enabled_ascii", info.auth_file or "no"),
        ("item_size_max", info.max_item_size),
        ("maxconns_fast", _yes_no(True)),  # kvshard's only way: over -c, refused at once
    ]
    if mover is not None:
        pairs.extend([
            ("slab_reassign", _yes_no(mover.enabled)), ("slab_automove", mover.automove),
            ("slab_automove_ratio", "%.2f" % mover.ratio), ("slab_automove_window", mover.window),
        ])
    if crawler is not None:
        pairs.extend([
            ("lru_crawler", _yes_no(crawler.enabled)), ("lru_crawler_sleep", crawler.sleep_us),
            ("lru_crawler_tocrawl", crawler.tocrawl),
        ])
    pairs.extend([
        ("flush_enabled", _yes_no(info.flush_enabled)),
        ("dump_enabled", _yes_no(info.dump_enabled)),
    ])
    if maintainer is not None:
        pairs.extend(maintainer.settings())
    pairs.extend([
        ("idle_timeout", info.idle_timeout),
        ("track_sizes", _yes_no(track_sizes)),
    ])
    pairs.extend(_tls_settings(info.tls))
    return _lines(pairs)


def _tls_settings(tls: Any) -> list[tuple[str, Any]]:
    """-Z's settings as memcached shows them (its unset paths print as C's "(null)")."""
    if tls is None:
        return [
            ("ssl_enabled", "no"), ("ssl_chain_cert", "(null)"), ("ssl_key", "(null)"), ("ssl_verify_mode", 0),
            ("ssl_keyformat", _PEM_KEY_FORMAT), ("ssl_ciphers", "NULL"), ("ssl_ca_cert", "NULL"),
            ("ssl_min_version", _TLS_VERSION_NAMES[2]),
        ]
    return [
        ("ssl_enabled", "yes"), ("ssl_chain_cert", tls.chain_cert), ("ssl_key", tls.key),
        ("ssl_verify_mode", tls.verify_mode), ("ssl_keyformat", _PEM_KEY_FORMAT),
        ("ssl_ciphers", tls.ciphers or "NULL"), ("ssl_ca_cert", tls.ca_cert or "NULL"),
        ("ssl_min_version", _TLS_VERSION_NAMES[tls.min_version]),
    ]


# stats items: memcached 1.6.18's per-class fields in its order, those the arena and the crawler
# keep (the tail-repair ones are listed in the README as not reported; a shard leaves out the
# segmented LRU's while its maintainer is off, as memcached does); ages are a maximum over
# shards, the rest are sums
_ITEM_FIELDS = (
    "number", "number_hot", "number_warm", "number_cold", "number_temp", "age_hot", "age_warm", "age",
    "mem_requested", "evicted", "evicted_nonzero", "evicted_time", "outofmemory", "reclaimed",
    "expired_unfetched", "evicted_unfetched", "evicted_active", "crawler_reclaimed", "crawler_items_checked",
    "moves_to_cold", "moves_to_warm", "moves_within_lru", "direct_reclaims", "hits_to_hot", "hits_to_warm",
    "hits_to_cold", "hits_to_temp",
)
_SLAB_FIELDS = ("chunk_size", "chunks_per_page", "total_pages", "total_chunks", "used_chunks", "free_chunks",
                "free_chunks_end") + CLASS_COUNTERS
_LARGEST_OVER_SHARDS = frozenset(("chunk_size", "chunks_per_page", "age", "age_hot", "age_warm", "evicted_time"))


Merged = tuple[int, list[dict[str, int]], int]


def merge_classes(per_shard: Iterable[Merged]) -> Merged:
    """Every shard's arena classes as one: (page size, classes by id, pages in the global page
    pools) summed over shards (sizes, ages and times: the largest)."""
    page_size = 0
    pool = 0
    merged: dict[int, dict[str, int]] = {}
    for size, classes, pool_pages in per_shard:
        page_size = size
        pool += pool_pages
        for figures in classes:
            into = merged.setdefault(figures["id"], {})
            for name, value in figures.items():
                if name in _LARGEST_OVER_SHARDS or name == "id":
                    into[name] = max(into.get(name, 0), value)
                else:
                    into[name] = into.get(name, 0) + value
    return page_size, [merged[clsid] for clsid in sorted(merged)], pool


def items(merged: Merged) -> bytes:
    """``stats items``: every class that holds items."""
    return _lines([
        (f"items:{figures['id']}:{name}", figures[name])
        for figures in merged[1] if figures["number"] for name in _ITEM_FIELDS if name in figures
    ])


def slabs(merged: Merged) -> bytes:
    """``stats slabs``: every class that has pages (with the commands counted there), then
    how many do and the memory all pages take, the global pool's included. free_chunks counts
    every chunk not holding an item (memcached cuts a whole page into free chunks when it takes
    one; the arena cuts as it goes, and free_chunks_end is the part of the newest page not cut
    yet)."""
    page_size, classes, pool = merged
    pairs: list[tuple[str, Any]] = []
    active = 0
    pages = 0
    for figures in classes:
        if not figures["total_pages"]:
            continue
        active += 1
        pages += figures["total_pages"]
        shown = dict(figures, free_chunks=figures["total_chunks"] - figures["used_chunks"])
        pairs.extend((f"{figures['id']}:{name}", shown[name]) for name in _SLAB_FIELDS)
    pairs.append(("active_slabs", active))
    pairs.append(("total_malloced", (pages + pool) * page_size))
    return _lines(pairs)


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
