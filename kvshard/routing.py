"""Which shard owns a key: ``crc32(key) % shards``, the same in every process.

Compiled, the CRC-32 (zlib's polynomial, so the result equals :func:`zlib.crc32`) runs over the
key's bytes from tables in C, eight bytes a step, with no call into the zlib module and no
Python integer; run interpreted it is :func:`zlib.crc32`.
"""

from __future__ import annotations

import zlib

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

__all__ = ["owner_of"]

_crc32 = zlib.crc32


def owner_of(key: bytes, shards: int) -> int:
    """The shard that owns ``key`` among ``shards``."""
    if cython.compiled:
        if type(key) is bytes:
            return _table_crc32(key) % shards
    return _crc32(key) % shards


def _table_crc32(key: bytes) -> int:
    """CRC-32 of ``key`` (compiled only): eight bytes a step from eight tables ("slicing by
    8"), then the rest a byte at a time."""
    data = cython.cast(cython.p_uchar, cython.cast(cython.p_char, key))
    n = len(key)
    crc = 0xFFFFFFFF
    i = 0
    while i + 8 <= n:
        crc ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (cython.cast(cython.uint, data[i + 3]) << 24)
        crc = (
            _CRC_TABLE[7 * 256 + (crc & 0xFF)] ^ _CRC_TABLE[6 * 256 + ((crc >> 8) & 0xFF)]
            ^ _CRC_TABLE[5 * 256 + ((crc >> 16) & 0xFF)] ^ _CRC_TABLE[4 * 256 + (crc >> 24)]
            ^ _CRC_TABLE[3 * 256 + data[i + 4]] ^ _CRC_TABLE[2 * 256 + data[i + 5]]
            ^ _CRC_TABLE[256 + data[i + 6]] ^ _CRC_TABLE[data[i + 7]]
        )
        i += 8
    while i < n:
        crc = _CRC_TABLE[(crc ^ data[i]) & 0xFF] ^ (crc >> 8)
        i += 1
    return ~crc  # (crc ^ 0xFFFFFFFF, in C unsigned arithmetic)


def _fill_table() -> None:
    """Table k holds the CRC of a byte followed by k zero bytes (reflected polynomial
    0xEDB88320); table 0 is the classic byte-at-a-time table."""
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        _CRC_TABLE[n] = crc
    for k in range(1, 8):
        for n in range(256):
            prev = _CRC_TABLE[(k - 1) * 256 + n]
            _CRC_TABLE[k * 256 + n] = (prev >> 8) ^ _CRC_TABLE[prev & 0xFF]


if cython.compiled:
    _fill_table()
