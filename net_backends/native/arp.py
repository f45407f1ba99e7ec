"""ARP for IPv4 over Ethernet (RFC 826): parse and build packets, and the neighbour cache.

Receive path (in the stack): a valid packet for IPv4 over Ethernet teaches the cache the
sender's address when the sender is already known or the packet is for us (RFC 826's merge
rule); a request for our address is answered with a reply. Send path: a request for an address
not in the cache, and a gratuitous ARP (a request for our own address) when the stack starts,
so the link learns our MAC at once. Every shard of a server answers for the same address with
the same MAC: they are one host whose receive queue is split.

Cache entries live :data:`ARP_TTL` seconds; a lookup of an expired entry misses.
"""

from __future__ import annotations

import struct
from typing import Callable, Final, NamedTuple

__all__ = [
    "ArpPacket", "ArpCache", "parse_arp", "build_arp",
    "OP_REQUEST", "OP_REPLY", "PACKET_LEN", "ARP_TTL", "MAX_ENTRIES",
]

OP_REQUEST: Final = 1
OP_REPLY: Final = 2
PACKET_LEN: Final = 28
ARP_TTL: Final = 60.0
MAX_ENTRIES: Final = 1024  # a flood of ARP cannot grow the cache without bound
_FIXED: Final = struct.Struct("!HHBBH")  # hardware type, protocol type, lengths, operation
_ETHERNET_IPV4: Final = (1, 0x0800, 6, 4)


class ArpPacket(NamedTuple):
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


def parse_arp(payload: memoryview) -> ArpPacket | None:
    """An ARP packet for IPv4 over Ethernet, or None (short, or another kind)."""
    if len(payload) < PACKET_LEN:
        return None
    htype, ptype, hlen, plen, op = _FIXED.unpack_from(payload)
    if (htype, ptype, hlen, plen) != _ETHERNET_IPV4 or op not in (OP_REQUEST, OP_REPLY):
        return None
    return ArpPacket(op, bytes(payload[8:14]), bytes(payload[14:18]), bytes(payload[18:24]), bytes(payload[24:28]))


def build_arp(op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    return _FIXED.pack(1, 0x0800, 6, 4, op) + sender_mac + sender_ip + target_mac + target_ip


class ArpCache:
    """IPv4 address -> (MAC, expiry), bounded."""

    def __init__(self, clock: Callable[[], float], ttl: float = ARP_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[bytes, tuple[bytes, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ip: bytes) -> bytes | None:
        entry = self._entries.get(ip)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[ip]
            return None
        return entry[0]

    def entry(self, ip: bytes) -> tuple[bytes, float] | None:
        """(MAC, expiry time) of a live entry."""
        return self._entries.get(ip) if self.lookup(ip) is not None else None

    def knows(self, ip: bytes) -> bool:
        return self.lookup(ip) is not None

    def learn(self, ip: bytes, mac: bytes) -> None:
        entries = self._entries
        if ip not in entries and len(entries) >= MAX_ENTRIES:
            now = self._clock()
            for stale in [k for k, (_, expires) in entries.items() if expires <= now]:
                del entries[stale]
            if len(entries) >= MAX_ENTRIES:
                del entries[next(iter(entries))]  # the oldest learned
        entries[ip] = (mac, self._clock() + self._ttl)
