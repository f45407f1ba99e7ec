"""The Internet checksum (RFC 1071), used by IPv4, ICMP, UDP and TCP.

The one's-complement sum does not depend on byte order (RFC 1071, section 2(B)), so the data is
summed as native 16-bit words in one C-level ``sum`` over a memoryview cast, and the result is
swapped to network order at the end on a little-endian machine.
"""

from __future__ import annotations

import sys
from typing import Final

__all__ = ["internet_checksum", "ones_complement_sum", "pseudo_header_sum"]

_LITTLE: Final = sys.byteorder == "little"


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The folded 16-bit one's-complement sum of ``data`` (network order), plus ``initial``
    (another such sum, e.g. a pseudo-header's)."""
    view = memoryview(data).cast("B")
    even = len(view) & ~1
    total = sum(view[:even].cast("H")) if even else 0
    if _LITTLE:
        total = ((total & 0xFF) << 8) | (total >> 8) if total <= 0xFFFF else _swap_wide(total)
    if len(view) & 1:
        total += view[-1] << 8
    total += initial
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _swap_wide(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ((total & 0xFF) << 8) | (total >> 8)


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The checksum to put in a header (0 when the data already carries a correct one)."""
    return ~ones_complement_sum(data, initial) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, protocol: int, length: int) -> int:
    """The one's-complement sum of the IPv4 pseudo-header UDP and TCP checksums cover (RFC 768, RFC 9293 section 3.1)."""
    return ones_complement_sum(src + dst + bytes((0, protocol)) + length.to_bytes(2, "big"))
