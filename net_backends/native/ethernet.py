"""Ethernet II framing: parse and build the 14-byte header.

Only Ethernet II frames carrying IPv4 or ARP are for us; the stack drops others (802.1Q
tags, IPv6, LLC) and counts them as ``ethernet_unsupported``. No FCS: devices hand over frames
without it."""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

__all__ = [
    "EthernetHeader", "parse_ethernet", "build_ethernet",
    "HEADER_LEN", "ETHERTYPE_IPV4", "ETHERTYPE_ARP", "BROADCAST",
]

HEADER_LEN: Final = 14
ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_ARP: Final = 0x0806
BROADCAST: Final = b"\xff" * 6
_TYPE: Final = struct.Struct("!H")


class EthernetHeader(NamedTuple):
    dst: bytes
    src: bytes
    ethertype: int


def parse_ethernet(frame: memoryview) -> EthernetHeader | None:
    """The header of ``frame``, or None if it is shorter than a header."""
    if len(frame) < HEADER_LEN:
        return None
    return EthernetHeader(bytes(frame[0:6]), bytes(frame[6:12]), _TYPE.unpack_from(frame, 12)[0])


def build_ethernet(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return dst + src + _TYPE.pack(ethertype)
