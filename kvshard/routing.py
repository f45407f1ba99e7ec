"""Which shard owns a key, the same in every process and in both cores; and the arena index's
hash of a key, from the same mix.

The key's bytes, read as one little-endian number, taken modulo the Mersenne prime
2**61 - 1, then mixed so that every bit of it moves every bit of the result (MurmurHash3's
64-bit finalizer: xor-shift, multiply, xor-shift, multiply, xor-shift, modulo 2**64), whose
top 32 bits taken modulo the number of shards are the owner::

    owner = (mix64(int.from_bytes(key, "little") % (2**61 - 1)) >> 32) % shards

The mix's low 32 bits are the slab arena's index hash (:func:`key_mix`; kvshard.slab_arena):
the finalizer's output bits are independent of each other, so the keys a shard owns spread
over all of its index, and one mix serves both.

Interpreted, that is the line above (two C-level integer operations in CPython). Compiled, the
remainder is taken eight bytes at a time (Horner's rule: 2**64 is 8 modulo 2**61 - 1, so each
step is a shift by 3 and an add, in 128 bits, folded every 16 words), about five instructions
per eight bytes where the CRC-32 this replaced spent some sixty; the number is the same.
"""

from __future__ import annotations

from array import array
from typing import Final

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

__all__ = ["owner_of", "route_hash", "key_mix", "mix_at", "remember_mix", "pack_mixes", "remember_mixes"]

MERSENNE_61: Final = (1 << 61) - 1
MIX1: Final = 0xFF51AFD7ED558CCD  # MurmurHash3's fmix64 multipliers
MIX2: Final = 0xC4CEB9FE1A85EC53
_MASK64: Final = (1 << 64) - 1
_M61: Final = MERSENNE_61  # (typed twins, for C arithmetic)
_MIX1: Final = MIX1
_MIX2: Final = MIX2


def owner_of(key: bytes, shards: int) -> int:
    """The shard that owns ``key`` among ``shards``."""
    return (key_mix(key) >> 32) % shards  # (route_hash, one call fewer interpreted)


def route_hash(key: bytes) -> int:
    """A 32-bit number for ``key`` (see the module docstring)."""
    return key_mix(key) >> 32


# The last keys mixed and their mixes: a request's key is mixed to route it, then again by the
# owner's index lookup, and when that owner is this shard it is the same object (bytes cannot
# change, and the reference held here keeps its address from being reused). Compiled, a table of
# _MEMO_SLOTS entries indexed by the object's address (a multi-key get routes all its keys
# before it looks any up). Interpreted, a dict by the key's value, emptied when it holds
# _MEMO_KEYS: a bytes object keeps its hash once computed, so a hit costs a dict lookup where the
# mix costs a dozen operations on Python integers (multi-key gets spent 9% of an interpreted
# shard's time mixing).
_MEMO_SLOTS: Final = 16
_memo_keys: list[bytes | None] = [None] * _MEMO_SLOTS
_MEMO_KEYS: Final = 256
_memo: dict[bytes, int] = {}


def key_mix(key: bytes) -> int:
    """The 64-bit mix of ``key`` (see the module docstring)."""
    if cython.compiled:
        if type(key) is bytes:
            slot = (cython.cast(cython.size_t, cython.cast(cython.p_void, key)) >> 4) & (_MEMO_SLOTS - 1)
            if _memo_keys[slot] is key:
                return _memo_mixes[slot]
            mix = mix_at(cython.cast(cython.p_uchar, cython.cast(cython.p_char, key)), len(key))
            _memo_keys[slot] = key
            _memo_mixes[slot] = mix
            return mix
        return _mix64(int.from_bytes(key, "little") % MERSENNE_61)
    if type(key) is not bytes:
        key = bytes(key)
    mix = _memo.get(key)
    if mix is None:  # (the finalizer, _mix64, written out: a call would cost a sixth of it)
        mix = int.from_bytes(key, "little") % MERSENNE_61
        mix ^= mix >> 33
        mix = mix * MIX1 & _MASK64
        mix ^= mix >> 33
        mix = mix * MIX2 & _MASK64
        mix ^= mix >> 33
        if len(_memo) >= _MEMO_KEYS:
            _memo.clear()
        _memo[key] = mix
    return mix


def remember_mix(key: bytes, mix: int) -> None:
    """Have :func:`key_mix` answer ``mix`` for ``key`` without mixing it: the mix that the
    shard which routed the key computed, sent along with it (kvshard.service's
    FIXED_GET_ONE), so that the owner's index lookup does not mix the key a second time."""
    if cython.compiled:
        slot = (cython.cast(cython.size_t, cython.cast(cython.p_void, key)) >> 4) & (_MEMO_SLOTS - 1)
        _memo_keys[slot] = key
        _memo_mixes[slot] = mix
        return
    if len(_memo) >= _MEMO_KEYS:
        _memo.clear()
    _memo[key] = mix


def pack_mixes(keys: list[bytes]) -> bytes:
    """The mixes of ``keys`` (:func:`key_mix`), as unsigned 64-bit native-order numbers, for
    :func:`remember_mixes` on the shard the keys are sent to (the same machine)."""
    return array("Q", map(key_mix, keys)).tobytes()


def remember_mixes(keys: list[bytes], packed: bytes) -> None:
    """:func:`remember_mix` of each of ``keys`` with its mix from :func:`pack_mixes`."""
    mixes = array("Q", packed)
    if len(mixes) != len(keys):
        raise ValueError(f"{len(mixes)} mixes for {len(keys)} keys")
    if cython.compiled:
        for i in range(len(keys)):
            remember_mix(keys[i], mixes[i])
        return
    if len(_memo) + len(keys) > _MEMO_KEYS:
        _memo.clear()
    _memo.update(zip(keys, mixes))


def mix_at(data: bytes, n: int) -> int:
    """:func:`key_mix` of the first ``n`` bytes of ``data`` (compiled: a C pointer, so that the
    arena hashes a key where it lies)."""
    if cython.compiled:
        return _mix64(_mod_m61(data, n))
    return key_mix(data[:n])


def _mix64(x: int) -> int:
    """MurmurHash3's fmix64 of a number below 2**64 (compiled only: unsigned 64-bit arithmetic
    wraps modulo 2**64 by itself; interpreted, :func:`key_mix` writes it out, masked)."""
    x ^= x >> 33
    x *= _MIX1
    x ^= x >> 33
    x *= _MIX2
    return x ^ (x >> 33)


def _mod_m61(data: bytes, n: int) -> int:
    """The first ``n`` bytes at ``data`` as a little-endian number, modulo 2**61 - 1 (compiled
    only): from the most significant eight-byte word down, residue = residue * 2**64 + word,
    which is congruent to residue * 8 + word. The sum is kept unreduced in 128 bits (five
    instructions a word) and folded every 16 words, before it could pass 2**128 (below
    2**(62 + 3 * 16 + 1) by then), and at the end."""
    top = n & 7  # the most significant word is the short one
    residue = 0
    i = n - top
    for j in range(top - 1, -1, -1):
        residue = (residue << 8) | data[i + j]
    acc = cython.cast(uint128, residue)  # below 2**56
    words = 0
    while i > 0:
        i -= 8
        memcpy(cython.address(word), data + i, 8)
        acc = (acc << 3) + le64toh(word)
        words += 1
        if words & 15 == 0:  # every 16 words
            acc = _fold128(acc)
    residue = _fold(_fold128(acc))  # below 2**61 + 8
    if residue >= _M61:
        residue -= _M61
    return residue


def _fold128(x: int) -> int:
    """A number below 2**128 made congruent and below 2**62, modulo 2**61 - 1 (compiled only)."""
    return (cython.cast(cython.ulonglong, x) & _M61) + (cython.cast(cython.ulonglong, x >> 61) & _M61) + cython.cast(cython.ulonglong, x >> 122)


def _fold(x: int) -> int:
    """A number below 2**64 made congruent and below 2**61 + 8, modulo 2**61 - 1."""
    return (x & _M61) + (x >> 61)
