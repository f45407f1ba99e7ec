"""The lines of memcached 1.6.18's log streams (``watch``), field for field as its logger.c
renders them: ``ts=<sec>.<usec> gid=<n> type=<event> ...`` and a newline.

Each function here renders the part after ``gid=<n> ``; :func:`stamp` puts the time and the
entry's number in front. Keys are URI-encoded as memcached encodes them (every byte but ASCII
letters, digits and ``-._~`` becomes ``%XX``).

Where kvshard differs (the README's watch section says so too):
  * ``clsid`` is the slab class memcached would give the item with its default slab sizes
    (``-n 48 -f 1.25``, 512 KiB chunks): kvshard's item store has no slab classes yet;
  * ``cfd`` is the client's socket descriptor in its shard's process, and -1 when the request
    came from a client of another shard (the channels between shards do not carry it);
  * ``gid`` numbers entries per shard (``count * shards + shard``), so it is unique and grows, but
    it is not one global sequence as in memcached.
"""

from __future__ import annotations

from typing import Final

from .protocol.ascii import item_total_size

__all__ = [
    "uri_encode", "slab_class", "stamp", "item_get", "item_store", "eviction", "conn_new", "conn_close",
    "FETCH_STATUS", "STORE_STATUS", "TOO_LARGE",
]

# item_get's status; memcached's "flushed" never happens here (flush_all drops the items at once)
FETCH_STATUS: Final = ("not_found", "found", "flushed", "expired")
# item_store's status, indexed by kvshard.cache's store results (STORED 0 ... NO_MEMORY 4)
STORE_STATUS: Final = ("stored", "not_stored", "exists", "not_found", "no_memory")
TOO_LARGE: Final = "too_large"

_UNRESERVED: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ENCODED: Final = tuple(chr(c) if c in _UNRESERVED else "%%%02X" % c for c in range(256))


def uri_encode(key: bytes) -> str:
    return "".join([_ENCODED[c] for c in key])


def _memcached_class_sizes() -> tuple[int, ...]:
    """memcached 1.6's default slab class chunk sizes (slabs_init with -n 48 -f 1.25 and a 512 KiB
    chunk limit): 96, 120, 152, ..., then 524288 as the largest."""
    chunk_max = 512 * 1024
    sizes = []
    size = 48 + 48  # sizeof(item) + settings.chunk_size
    while size < chunk_max / 1.25:
        if size % 8:
            size += 8 - size % 8
        sizes.append(size)
        size = int(size * 1.25)
    sizes.append(chunk_max)
    return tuple(sizes)


_CLASS_SIZES: Final = _memcached_class_sizes()


def slab_class(key_length: int, flags: int, value_length: int) -> int:
    """The slab class (1, 2, ...) memcached's default sizes would put this item in."""
    total = item_total_size(key_length, flags, value_length)
    for clsid, size in enumerate(_CLASS_SIZES, 1):
        if total <= size:
            return clsid
    return len(_CLASS_SIZES)  # a chunked item: its header sits in the largest class


def stamp(time_ns: int, gid: int, body: str) -> str:
    """One whole line: memcached prints the microseconds with ``%d``, not zero-padded."""
    return "ts=%d.%d gid=%d %s\n" % (time_ns // 1_000_000_000, time_ns // 1000 % 1_000_000, gid, body)


def item_get(key: bytes, status: int, flags: int, size: int, cfd: int) -> str:
    """A lookup: ``status`` indexes :data:`FETCH_STATUS`; ``size`` is the value's length (0 on
    a miss, whose clsid is 0)."""
    clsid = slab_class(len(key), flags, size) if status == 1 else 0
    return "type=item_get key=%s status=%s clsid=%d cfd=%d size=%d" % (
        uri_encode(key), FETCH_STATUS[status], clsid, cfd, size)


def item_store(key: bytes, status: str, command: str, ttl: int, clsid: int, size: int, cfd: int) -> str:
    return "type=item_store key=%s status=%s cmd=%s ttl=%d clsid=%d cfd=%d size=%d" % (
        uri_encode(key), status, command, ttl, clsid, cfd, size)


def eviction(key: bytes, fetched: bool, ttl: int, last_access: int, flags: int, size: int) -> str:
    """An item evicted to make room: ``ttl`` -1 for one that never expires; ``last_access``
    seconds since it was stored or last became active."""
    return "type=eviction key=%s fetch=%s ttl=%d la=%d clsid=%d size=%d" % (
        uri_encode(key), "yes" if fetched else "no", ttl, last_access, slab_class(len(key), flags, size), size)


def _endpoint(peer: object) -> tuple[str, int, str]:
    """(rip, rport, transport) as memcached names a client's address."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1]), "tcp"
    return "unix", 0, "local"


def conn_new(peer: object, cfd: int) -> str:
    rip, rport, transport = _endpoint(peer)
    return "type=conn_new rip=%s rport=%d transport=%s cfd=%d" % (rip, rport, transport, cfd)


def conn_close(peer: object, reason: str, cfd: int) -> str:
    """``reason``: memcached's ``error``, ``normal``, ``idle_timeout`` or ``shutdown``."""
    rip, rport, transport = _endpoint(peer)
    return "type=conn_close rip=%s rport=%d transport=%s reason=%s cfd=%d" % (rip, rport, transport, reason, cfd)
