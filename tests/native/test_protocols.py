"""Ethernet, ARP, IPv4, ICMP and the checksum on recorded frames: parse/build round trips,
malformed and corrupted input dropped under the right counter."""

from __future__ import annotations

import random
import struct

import pytest

from net_backends.native import arp, icmp, ipv4
from net_backends.native.checksum import internet_checksum
from net_backends.native.ethernet import BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4, build_ethernet, parse_ethernet
from net_backends.native.stack import NativeStack, StackAddress

from .frames import ARP_REQUEST, ECHO_REQUEST, KERNEL_IP, KERNEL_MAC, MLD_REPORT, STACK_IP, STACK_MAC


class Capture:
    """A device that only records what the stack sends."""

    def __init__(self, mac: bytes = STACK_MAC) -> None:
        self.mac = mac
        self.mtu = 1500
        self.sent: list[bytes] = []
        self.inbox: list[bytes] = []

    def receive_burst(self, max_frames: int = 32) -> list[bytes]:
        out, self.inbox = self.inbox[:max_frames], self.inbox[max_frames:]
        return out

    def send_burst(self, frames: list[bytes]) -> int:
        self.sent.extend(frames)
        return len(frames)

    def fileno(self) -> None:
        return None


def stack() -> tuple[NativeStack, Capture]:
    device = Capture()
    return NativeStack(device, StackAddress("10.77.0.2", "255.255.255.0")), device


def reference_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_checksum_matches_the_definition() -> None:
    rng = random.Random(7)
    for size in [*range(0, 64), 1499, 1500, 65535]:
        data = bytes(rng.randrange(256) for _ in range(size))
        assert internet_checksum(data) == reference_checksum(data), size
        assert internet_checksum(memoryview(b"x" + data)[1:]) == reference_checksum(data)  # unaligned
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D  # RFC 1071's example


def test_parse_recorded_frames() -> None:
    eth = parse_ethernet(memoryview(ARP_REQUEST))
    assert eth == (BROADCAST, KERNEL_MAC, ETHERTYPE_ARP)
    packet = arp.parse_arp(memoryview(ARP_REQUEST)[14:])
    assert packet == arp.ArpPacket(arp.OP_REQUEST, KERNEL_MAC, KERNEL_IP, b"\0" * 6, STACK_IP)
    assert arp.build_arp(*packet) == ARP_REQUEST[14:]  # round trip
    eth = parse_ethernet(memoryview(ECHO_REQUEST))
    assert eth == (STACK_MAC, KERNEL_MAC, ETHERTYPE_IPV4)
    ip = ipv4.parse_ipv4(memoryview(ECHO_REQUEST)[14:])
    assert isinstance(ip, ipv4.Ipv4Header)
    assert (ip.header_len, ip.total_len, ip.ttl, ip.protocol, ip.src, ip.dst) == (20, 84, 64, ipv4.PROTO_ICMP, KERNEL_IP, STACK_IP)
    message = icmp.parse_icmp(memoryview(ECHO_REQUEST)[34:])
    assert message is not None and (message.type, message.code, message.rest) == (8, 0, bytes.fromhex("06830001"))
    assert len(message.data) == 56


def test_ipv4_build_round_trip() -> None:
    header = ipv4.build_ipv4(STACK_IP, KERNEL_IP, ipv4.PROTO_TCP, 100, ident=0x1234)
    parsed = ipv4.parse_ipv4(memoryview(header + b"\0" * 100))
    assert parsed == ipv4.Ipv4Header(20, 120, 0x1234, 64, ipv4.PROTO_TCP, STACK_IP, KERNEL_IP)
    assert internet_checksum(header) == 0


def test_arp_request_for_us_is_answered_and_learned() -> None:
    s, device = stack()
    s.receive_frame(memoryview(ARP_REQUEST))
    s.flush()
    assert device.sent == [
        build_ethernet(KERNEL_MAC, STACK_MAC, ETHERTYPE_ARP)
        + arp.build_arp(arp.OP_REPLY, STACK_MAC, STACK_IP, KERNEL_MAC, KERNEL_IP)
    ]
    assert s.arp_cache.lookup(KERNEL_IP) == KERNEL_MAC and s.arp_replies.value == 1


def test_echo_request_is_answered() -> None:
    s, device = stack()
    s.receive_frame(memoryview(ECHO_REQUEST))
    s.flush()
    (reply,) = device.sent
    assert parse_ethernet(memoryview(reply)) == (KERNEL_MAC, STACK_MAC, ETHERTYPE_IPV4)
    ip = ipv4.parse_ipv4(memoryview(reply)[14:])
    assert isinstance(ip, ipv4.Ipv4Header) and (ip.src, ip.dst, ip.protocol) == (STACK_IP, KERNEL_IP, ipv4.PROTO_ICMP)
    message = icmp.parse_icmp(memoryview(reply)[34:])
    request = icmp.parse_icmp(memoryview(ECHO_REQUEST)[34:])
    assert message is not None and request is not None
    assert (message.type, message.rest, bytes(message.data)) == (icmp.ECHO_REPLY, request.rest, bytes(request.data))
    assert s.echo_replies.value == 1


def flip(frame: bytes, at: int) -> bytes:
    return frame[:at] + bytes((frame[at] ^ 0x01,)) + frame[at + 1 :]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (ECHO_REQUEST[:10], "ethernet_malformed"),
        (MLD_REPORT, "ethernet_not_for_us"),
        (STACK_MAC + KERNEL_MAC + b"\x86\xdd" + b"\0" * 40, "ethernet_unsupported"),
        (ARP_REQUEST[:30], "arp_malformed"),
        (ECHO_REQUEST[:14 + 12], "ipv4_malformed"),                        # truncated header
        (ECHO_REQUEST[:14 + 60], "ipv4_malformed"),                        # total length > frame
        (flip(ECHO_REQUEST, 14 + 8), "ipv4_bad_checksum"),                 # TTL byte flipped
        (flip(ECHO_REQUEST, 14 + 20 + 20), "icmp_malformed"),              # data flipped
        (ECHO_REQUEST[:30] + bytes([10, 77, 0, 9]) + ECHO_REQUEST[34:], "ipv4_bad_checksum"),
    ],
    ids=["short-frame", "multicast", "ipv6", "short-arp", "short-ip", "ip-length", "ip-checksum",
         "icmp-checksum", "ip-dst-checksum"],
)
def test_bad_frames_are_dropped_by_reason(frame: bytes, reason: str) -> None:
    s, device = stack()
    s.receive_frame(memoryview(frame))
    s.flush()
    assert device.sent == [] and s.drops(reason) == 1


def test_fragments_and_other_destinations_are_dropped() -> None:
    def with_ip_fields(offset: int, value: bytes) -> bytes:
        header = bytearray(ECHO_REQUEST[14:34])
        header[offset : offset + len(value)] = value
        header[10:12] = b"\0\0"
        header[10:12] = internet_checksum(header).to_bytes(2, "big")
        return ECHO_REQUEST[:14] + bytes(header) + ECHO_REQUEST[34:]

    for frame, reason in (
        (with_ip_fields(6, b"\x20\x00"), "ipv4_fragment"),        # more fragments
        (with_ip_fields(6, b"\x00\x10"), "ipv4_fragment"),        # a later fragment
        (with_ip_fields(16, bytes([10, 77, 0, 9])), "ipv4_not_for_us"),
        (with_ip_fields(9, b"\x06"), "ipv4_unsupported_protocol"),  # TCP: not yet served
    ):
        s, device = stack()
        s.receive_frame(memoryview(frame))
        assert s.drops(reason) == 1, reason


def test_arp_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    cache = arp.ArpCache(lambda: now[0], ttl=10)
    cache.learn(KERNEL_IP, KERNEL_MAC)
    assert cache.lookup(KERNEL_IP) == KERNEL_MAC
    now[0] = 10.0
    assert cache.lookup(KERNEL_IP) is None
    for i in range(arp.MAX_ENTRIES + 100):
        cache.learn(i.to_bytes(4, "big"), KERNEL_MAC)
    assert len(cache) == arp.MAX_ENTRIES


def test_arp_from_strangers_is_not_learned() -> None:
    """RFC 826: a request between two other hosts teaches us nothing new."""
    s, device = stack()
    other = arp.build_arp(arp.OP_REQUEST, KERNEL_MAC, KERNEL_IP, b"\0" * 6, bytes([10, 77, 0, 9]))
    s.receive_frame(memoryview(build_ethernet(BROADCAST, KERNEL_MAC, ETHERTYPE_ARP) + other))
    s.flush()
    assert device.sent == [] and s.arp_cache.lookup(KERNEL_IP) is None


def test_gratuitous_arp_announces_us() -> None:
    s, device = stack()
    s.announce()
    s.flush()
    (frame,) = device.sent
    assert frame == build_ethernet(BROADCAST, STACK_MAC, ETHERTYPE_ARP) + arp.build_arp(
        arp.OP_REQUEST, STACK_MAC, STACK_IP, b"\0" * 6, STACK_IP
    )


def test_udp_round_trip_and_refusals() -> None:
    from net_backends.native import udp

    datagram = udp.build_udp(KERNEL_IP, STACK_IP, 40000, 11211, b"get k\r\n")
    header = udp.parse_udp(memoryview(datagram), KERNEL_IP, STACK_IP)
    assert header == udp.UdpHeader(40000, 11211, 15)
    assert udp.parse_udp(memoryview(flip(datagram, 9)), KERNEL_IP, STACK_IP) == udp.BAD_CHECKSUM
    assert udp.parse_udp(memoryview(datagram), KERNEL_IP, bytes([10, 77, 0, 9])) == udp.BAD_CHECKSUM  # pseudo-header
    no_checksum = datagram[:6] + b"\0\0" + datagram[8:]
    assert udp.parse_udp(memoryview(no_checksum), KERNEL_IP, STACK_IP) == header  # 0: not computed
    assert udp.parse_udp(memoryview(datagram[:7]), KERNEL_IP, STACK_IP) == udp.MALFORMED
    assert udp.parse_udp(memoryview(datagram[:12]), KERNEL_IP, STACK_IP) == udp.MALFORMED  # length > data


def test_udp_delivery_and_no_listener() -> None:
    from net_backends.native import udp

    s, device = stack()
    got: list[tuple[bytes, tuple[str, int], int]] = []
    s.bind_udp(11211, lambda payload, addr, port: got.append((bytes(payload), addr, port)))
    for port in (11211, 9):
        datagram = udp.build_udp(KERNEL_IP, STACK_IP, 40000, port, b"payload")
        packet = ipv4.build_ipv4(KERNEL_IP, STACK_IP, ipv4.PROTO_UDP, len(datagram), 1) + datagram
        s.receive_frame(memoryview(build_ethernet(STACK_MAC, KERNEL_MAC, ETHERTYPE_IPV4) + packet + b"\0" * 6))
    assert got == [(b"payload", ("10.77.0.1", 40000), 11211)]  # Ethernet padding cut off by IPv4's length
    assert s.drops("udp_no_listener") == 1
    with pytest.raises(OSError):
        s.bind_udp(11211, lambda *a: None)


def test_on_link_senders_are_learned_from_their_packets() -> None:
    """A shard whose ARP reply went to another shard's queue still reaches its flow's peer."""
    s, device = stack()
    s.receive_frame(memoryview(ECHO_REQUEST))  # from 10.77.0.1, on our subnet
    assert s.arp_cache.lookup(KERNEL_IP) == KERNEL_MAC
    far = bytes([192, 0, 2, 1])
    header = bytearray(ECHO_REQUEST[14:34])
    header[12:16] = far
    header[10:12] = b"\0\0"
    header[10:12] = internet_checksum(header).to_bytes(2, "big")
    s2, _ = stack()
    s2.receive_frame(memoryview(ECHO_REQUEST[:14] + bytes(header) + ECHO_REQUEST[34:]))
    assert s2.arp_cache.lookup(far) is None  # off-link: the frame came from a router
