"""Which shard owns a key: ``crc32(key) % shards``, the same in every process.

Compiled, the CRC-32 (zlib's polynomial, so the result equals :func:`zlib.crc32`) runs over the
key's bytes from a table in C, with no call into the zlib module and no Python integer; run
interpreted it is :func:`zlib.crc32`.
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
    """CRC-32 of ``key`` (compiled only), a byte at a time from :data:`_CRC_TABLE`."""
    data = cython.cast(cython.p_uchar, cython.cast(cython.p_char, key))
    crc = 0xFFFFFFFF
    for i in range(len(key)):
        crc = _CRC_TABLE[(crc ^ data[i]) & 0xFF] ^ (crc >> 8)
    return ~crc  # (crc ^ 0xFFFFFFFF, in C unsigned arithmetic)


def _fill_table() -> None:
    """The 256 CRCs of a single byte (reflected polynomial 0xEDB88320)."""
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        _CRC_TABLE[n] = crc


if cython.compiled:
    _fill_table()
