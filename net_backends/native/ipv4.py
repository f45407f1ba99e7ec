"""IPv4 (RFC 791): parse and check a header, build one with its checksum.

Receive path rules (the stack applies them in this order, counting each drop by reason):
the packet must be at least a header long with version 4 and IHL >= 5 (``ipv4_malformed``),
its total length must fit the frame (trailing Ethernet padding is cut off), the header checksum
must be right (``ipv4_bad_checksum``), it must be for our address or a broadcast
(``ipv4_not_for_us``). **Fragments are dropped** (``ipv4_fragment``): memcached's traffic is
TCP, whose MSS keeps segments within the MTU, and UDP requests are one datagram; reassembly
would buy nothing but a memory-exhaustion target. Options are accepted and skipped.

Send path: a 20-byte header (no options), DF set, TTL 64, a per-stack identification counter.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from .checksum import internet_checksum

__all__ = [
    "Ipv4Header", "parse_ipv4", "build_ipv4", "constant_sum", "pack_header", "PROTO_ICMP", "PROTO_TCP", "PROTO_UDP",
    "HEADER_LEN", "DEFAULT_TTL", "MALFORMED", "BAD_CHECKSUM", "FRAGMENT",
]

PROTO_ICMP: Final = 1
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
HEADER_LEN: Final = 20
DEFAULT_TTL: Final = 64
_FLAG_DF: Final = 0x4000
_FLAG_MF: Final = 0x2000
_OFFSET_MASK: Final = 0x1FFF
_HEADER: Final = struct.Struct("!BBHHHBBH4s4s")

# why parse_ipv4 refused a packet (the stack's drop counters)
MALFORMED: Final = "ipv4_malformed"
BAD_CHECKSUM: Final = "ipv4_bad_checksum"
FRAGMENT: Final = "ipv4_fragment"


class Ipv4Header(NamedTuple):
    header_len: int
    total_len: int
    ident: int
    ttl: int
    protocol: int
    src: bytes
    dst: bytes


def parse_ipv4(packet: memoryview) -> Ipv4Header | str:
    """The header of ``packet``, or the reason it is refused (a drop counter's name)."""
    if len(packet) < HEADER_LEN:
        return MALFORMED
    ver_ihl, _tos, total_len, ident, flags_offset, ttl, protocol, _csum, src, dst = _HEADER.unpack_from(packet)
    header_len = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or header_len < HEADER_LEN or total_len < header_len or total_len > len(packet):
        return MALFORMED
    if internet_checksum(packet[:header_len]) != 0:
        return BAD_CHECKSUM
    if flags_offset & (_FLAG_MF | _OFFSET_MASK):
        return FRAGMENT
    return Ipv4Header(header_len, total_len, ident, ttl, protocol, src, dst)


def constant_sum(src: bytes, dst: bytes, protocol: int, ttl: int = DEFAULT_TTL) -> int:
    """The one's-complement sum (before folding) of the words of our headers that do not
    change from packet to packet (see checksum.py: the sum of words is the sum of the fields)."""
    return 0x4500 + _FLAG_DF + (ttl << 8) + protocol + int.from_bytes(src, "big") + int.from_bytes(dst, "big")


def pack_header(total_len: int, ident: int, protocol: int, checksum: int, src: bytes, dst: bytes, ttl: int = DEFAULT_TTL) -> bytes:
    return _HEADER.pack(0x45, 0, total_len, ident, _FLAG_DF, ttl, protocol, checksum, src, dst)


def build_ipv4(src: bytes, dst: bytes, protocol: int, payload_len: int, ident: int, ttl: int = DEFAULT_TTL) -> bytes:
    """A 20-byte header with its checksum, for ``payload_len`` bytes of payload."""
    total_len = HEADER_LEN + payload_len
    ident &= 0xFFFF
    folded = (constant_sum(src, dst, protocol, ttl) + total_len + ident) % 0xFFFF
    return pack_header(total_len, ident, protocol, 0xFFFF - folded if folded else 0, src, dst, ttl)
