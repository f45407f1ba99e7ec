"""A multi-key get's VALUE blocks in one bytes object, and the reply merged from such parts.

Theory of operation
-------------------
``get k1 k2 ... kn`` asks every shard that owns some of the keys for their blocks (the owner's
``VALUE <key> <flags> <bytes>\\r\\n<data>\\r\\n``, or nothing for a miss). Each owner answers
with its blocks *packed*, in the order of its keys, each behind its length::

    u32 little-endian length, then that many bytes; repeated, nothing after the last

(:func:`pack_blocks`; kvshard.cache packs straight from the arena). The requesting shard knows
which shard owns each key, in key order (``owners``), so the reply is the next block of
``parts[owners[0]]``, then the next of ``parts[owners[1]]``, and so on, then the tail (``END``):
:func:`merge_blocks` writes it in one pass, with one allocation, checking first that every part
holds exactly its keys' blocks (a short or long part is a ValueError, answered SERVER_ERROR).
"""

from __future__ import annotations

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

from .protocol.byte_slices import bytes_slice

__all__ = ["pack_blocks", "unpack_blocks", "merge_blocks", "put_le32"]


def pack_blocks(blocks: list[bytes]) -> bytes:
    """Blocks as one bytes object, each behind its length (4 bytes, little-endian)."""
    if cython.compiled:  # one allocation, the lengths and blocks copied in C
        total = 0
        for block in blocks:
            total += 4 + len(block)
        packed = PyBytes_FromStringAndSize(cython.NULL, total)
        out = PyBytes_AS_STRING(packed)
        at = 0
        for block in blocks:
            size = len(block)
            put_le32(out + at, size)
            memcpy(out + at + 4, cython.cast(cython.p_char, block), size)
            at += 4 + size
        return packed
    return b"".join([len(block).to_bytes(4, "little") + block for block in blocks])


def unpack_blocks(packed: bytes, count: int) -> list[bytes]:
    """The ``count`` blocks of :func:`pack_blocks`'s output."""
    blocks = []
    at = 0
    if cython.compiled:
        p = cython.cast(cython.p_uchar, cython.cast(cython.p_char, packed))
        end = len(packed)
        for _ in range(count):
            if at + 4 > end:
                raise ValueError("packed blocks cut short")
            size = _le32(p + at)
            if at + 4 + size > end:
                raise ValueError("packed blocks cut short")
            blocks.append(bytes_slice(packed, at + 4, at + 4 + size))
            at += 4 + size
        return blocks
    for _ in range(count):
        if at + 4 > len(packed):
            raise ValueError("packed blocks cut short")
        size = int.from_bytes(packed[at : at + 4], "little")
        if at + 4 + size > len(packed):
            raise ValueError("packed blocks cut short")
        blocks.append(packed[at + 4 : at + 4 + size])
        at += 4 + size
    return blocks


def merge_blocks(owners: list[int], parts: list[bytes | None], tail: bytes) -> bytes:
    """The blocks of ``parts`` (packed, one per owner: ``parts[o]`` holds the blocks of the
    keys ``o`` owns, in key order) in the order of the keys (``owners[i]``: the owner of key
    i), then ``tail``. ValueError when a part holds more or fewer blocks than its keys."""
    if cython.compiled:
        count = len(parts)
        cursors = cython.cast(cython.p_Py_ssize_t, PyMem_Calloc(count, cython.sizeof(Py_ssize_t)))
        if cursors == cython.NULL:
            raise MemoryError()
        try:
            total = len(tail)
            for i in range(len(owners)):  # every length read and checked before anything is written
                owner = owners[i]
                if owner < 0 or owner >= count or parts[owner] is None:
                    raise ValueError("a key's owner sent no part")
                part = parts[owner]
                size = _next_block(part, cursors + owner)
                total += size
            for owner in range(count):
                if parts[owner] is not None and cursors[owner] != len(parts[owner]):
                    raise ValueError("a part holds more blocks than its keys")
                cursors[owner] = 0
            merged = PyBytes_FromStringAndSize(cython.NULL, total)
            out = PyBytes_AS_STRING(merged)
            at = 0
            for i in range(len(owners)):
                owner = owners[i]
                part = parts[owner]
                size = _le32(cython.cast(cython.p_uchar, cython.cast(cython.p_char, part)) + cursors[owner])
                memcpy(out + at, cython.cast(cython.p_char, part) + cursors[owner] + 4, size)
                cursors[owner] += 4 + size
                at += size
            memcpy(out + at, cython.cast(cython.p_char, tail), len(tail))
            return merged
        finally:
            PyMem_Free(cursors)
    unpacked: dict[int, list[bytes]] = {}
    for owner, part in enumerate(parts):
        if part is not None:
            blocks = unpack_blocks(part, owners.count(owner))
            if 4 * len(blocks) + len(b"".join(blocks)) != len(part):
                raise ValueError("a part holds more blocks than its keys")
            unpacked[owner] = blocks[::-1]  # popped from the end, in key order
    try:
        return b"".join([unpacked[owner].pop() for owner in owners]) + tail
    except KeyError:
        raise ValueError("a key's owner sent no part") from None


def _next_block(part: bytes, cursor: object) -> int:
    """The length of the block at ``*cursor`` in ``part``, the cursor moved past it (compiled
    only); ValueError if the part ends first."""
    at = cursor[0]  # type: ignore[index]
    if at + 4 > len(part):
        raise ValueError("packed blocks cut short")
    size = _le32(cython.cast(cython.p_uchar, cython.cast(cython.p_char, part)) + at)
    if at + 4 + size > len(part):
        raise ValueError("packed blocks cut short")
    cursor[0] = at + 4 + size  # type: ignore[index]
    return size


def _le32(p: object) -> int:
    """The little-endian 32-bit number at ``p`` (compiled only)."""
    return (  # type: ignore[no-any-return]
        p[0] | (p[1] << 8) | (p[2] << 16) | (cython.cast(cython.uint, p[3]) << 24)  # type: ignore[index]
    )


def put_le32(out: object, n: int) -> None:
    """``n`` as four little-endian bytes at ``out`` (compiled only)."""
    out[0] = n & 0xFF  # type: ignore[index]
    out[1] = (n >> 8) & 0xFF  # type: ignore[index]
    out[2] = (n >> 16) & 0xFF  # type: ignore[index]
    out[3] = (n >> 24) & 0xFF  # type: ignore[index]
