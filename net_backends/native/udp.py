"""UDP (RFC 768): parse and check a datagram, build one with its checksum.

Receive path (the stack counts each drop by reason): at least 8 bytes and a length field that
fits the IP payload (``udp_malformed``); a checksum that is either 0 (the sender did not compute
one, allowed over IPv4) or right over the pseudo-header (``udp_bad_checksum``); a bound port
(``udp_no_listener``; no ICMP port-unreachable is sent, memcached's own UDP socket being the
only listener and silence being what a closed port looks like to a scanner). Send path: a
header with the checksum always computed (a computed 0 is sent as 0xFFFF).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from .checksum import internet_checksum, pseudo_header_sum

__all__ = ["UdpHeader", "parse_udp", "build_udp", "HEADER_LEN", "MALFORMED", "BAD_CHECKSUM"]

HEADER_LEN: Final = 8
_HEADER: Final = struct.Struct("!HHHH")
MALFORMED: Final = "udp_malformed"
BAD_CHECKSUM: Final = "udp_bad_checksum"


class UdpHeader(NamedTuple):
    src_port: int
    dst_port: int
    length: int


def parse_udp(datagram: memoryview, src: bytes, dst: bytes) -> UdpHeader | str:
    """The header (payload: ``datagram[8:length]``), or the drop reason."""
    if len(datagram) < HEADER_LEN:
        return MALFORMED
    src_port, dst_port, length, checksum = _HEADER.unpack_from(datagram)
    if length < HEADER_LEN or length > len(datagram):
        return MALFORMED
    if checksum and internet_checksum(datagram[:length], pseudo_header_sum(src, dst, 17, length)) != 0:
        return BAD_CHECKSUM
    return UdpHeader(src_port, dst_port, length)


def build_udp(src: bytes, dst: bytes, src_port: int, dst_port: int, payload: bytes) -> bytes:
    length = HEADER_LEN + len(payload)
    datagram = _HEADER.pack(src_port, dst_port, length, 0) + payload
    checksum = internet_checksum(datagram, pseudo_header_sum(src, dst, 17, length)) or 0xFFFF
    return datagram[:6] + checksum.to_bytes(2, "big") + datagram[8:]
