"""Sequence-number arithmetic modulo 2**32 (RFC 9293 section 3.4).

Sequence numbers wrap, so "a comes before b" means the distance from a to b, taken modulo
2**32, is positive and less than 2**31. Every comparison of sequence numbers in the TCP code
goes through these functions or the same arithmetic written out (``(b - a) & 0xFFFFFFFF``
compared with 2**31, on the per-segment path); a bare ``<`` on two of them is a bug.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MOD", "seq_add", "seq_diff", "seq_lt", "seq_le", "seq_gt", "seq_ge", "seq_in_window"]

MOD: Final = 1 << 32
_HALF: Final = 1 << 31


def seq_add(a: int, n: int) -> int:
    return (a + n) & 0xFFFFFFFF


def seq_diff(a: int, b: int) -> int:
    """``a - b`` as a signed distance in (-2**31, 2**31]."""
    d = (a - b) & 0xFFFFFFFF
    return d - MOD if d > _HALF else d


def seq_lt(a: int, b: int) -> bool:
    return 0 < ((b - a) & 0xFFFFFFFF) < _HALF


def seq_le(a: int, b: int) -> bool:
    return a == b or seq_lt(a, b)


def seq_gt(a: int, b: int) -> bool:
    return seq_lt(b, a)


def seq_ge(a: int, b: int) -> bool:
    return a == b or seq_lt(b, a)


def seq_in_window(x: int, start: int, size: int) -> bool:
    """``start <= x < start + size`` modulo 2**32 (empty when ``size`` is 0)."""
    return ((x - start) & 0xFFFFFFFF) < size
