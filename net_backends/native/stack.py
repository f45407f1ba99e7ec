"""One shard's native network stack: frames in from a device, up through the protocols, and
frames back out, in bursts.

Theory of operation
-------------------
:meth:`NativeStack.poll` is a reactor poller (:meth:`NativeStack.attach`): it takes a burst of
frames from the device, runs each through the receive path, and sends everything the burst
produced in one burst. Nothing blocks and nothing is copied on the way up (headers are parsed
from memoryviews). While the shard sleeps, the device's file descriptor (a TAP queue) is
watched by the event loop, and a frame arriving kicks the reactor awake.

Receive path, each step dropping what it refuses under a named reason (``drops_total{reason}``):

    Ethernet  shorter than a header: ethernet_malformed; not to our MAC or broadcast:
              ethernet_not_for_us; neither IPv4 nor ARP: ethernet_unsupported
    ARP       malformed or not IPv4-over-Ethernet: arp_malformed; learned per RFC 826; a
              request for our address answered
    IPv4      see ipv4.py (malformed, bad checksum, fragment); not to our address:
              ipv4_not_for_us; a protocol we do not serve: ipv4_unsupported_protocol
    ICMP      bad checksum or short: icmp_malformed; an echo request answered; other
              messages: icmp_ignored
    UDP       see udp.py (malformed, bad checksum); no handler bound to the port:
              udp_no_listener; else ``handler(payload, (src ip, src port), dst port)``
    TCP       once enabled (:meth:`NativeStack.enable_tcp`): see tcp/endpoint.py

Replies to a received packet go to the Ethernet source it came from. A packet from an on-link
address we have no ARP entry for teaches us that address's MAC (besides ARP itself): the shards
of a server share one link address and their queues split the traffic by flow, so the ARP reply
to one shard's request may arrive at another shard, while the flow's own packets arrive here. Packets we originate go to
the destination if it is on our subnet, else to the gateway; when the next hop's MAC is not in
the ARP cache an ARP request goes out and the packet waits (at most
:data:`MAX_WAITING_PER_HOP` per hop; older ones are dropped as arp_unresolved).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import defaultdict, deque
from typing import Any, Callable, Final

from framework.metrics import Counter, MetricsRegistry

from . import arp, icmp, ipv4, udp
from .tcp.endpoint import TcpEndpoint
from .device import Device
from .ethernet import (
    BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4, HEADER_LEN, build_ethernet, parse_ethernet,
)

__all__ = ["NativeStack", "StackAddress", "UdpHandler", "MAX_WAITING_PER_HOP", "BURST"]

# called with (payload, (source address as dotted string, source port), destination port)
UdpHandler = Callable[[memoryview, tuple[str, int], int], None]

MAX_WAITING_PER_HOP: Final = 256
_IPV4_TYPE: Final = ETHERTYPE_IPV4.to_bytes(2, "big")
BURST: Final = 64


class StackAddress:
    """The stack's IPv4 configuration."""

    def __init__(self, address: str, netmask: str, gateway: str | None = None) -> None:
        self.interface = ipaddress.IPv4Interface(f"{address}/{netmask}")
        self.ip = self.interface.ip.packed
        self.network = self.interface.network
        self.broadcast = self.network.broadcast_address.packed
        self.gateway = ipaddress.IPv4Address(gateway).packed if gateway else None
        self._net = int(self.network.network_address)
        self._mask = int(self.network.netmask)

    def on_link(self, ip: bytes) -> bool:
        return int.from_bytes(ip, "big") & self._mask == self._net

    def next_hop(self, dst: bytes) -> bytes | None:
        """Where a packet to ``dst`` goes on the link: ``dst`` itself, the gateway, or None."""
        return dst if self.on_link(dst) else self.gateway


class NativeStack:
    """Ethernet, ARP, IPv4 and ICMP for one device (TCP and UDP come on top)."""

    def __init__(
        self,
        device: Device,
        address: StackAddress,
        metrics: MetricsRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.address = address
        self.mac = device.mac
        self.arp_cache = arp.ArpCache(clock)
        self._out: list[bytes] = []
        self._waiting: dict[bytes, deque[tuple[bytes, int]]] = defaultdict(deque)  # hop -> (packet, ethertype)
        self._ident = 0
        self._udp_handlers: dict[int, UdpHandler] = {}
        self._neighbour_seen: bytes | None = None  # the last source address checked this burst (receive_ipv4)
        # (destination, protocol) -> (Ethernet header, IPv4 header's constant sum, valid until): see send_ipv4
        self._routes: dict[tuple[bytes, int], tuple[bytes, int, float]] = {}
        self.tcp: TcpEndpoint | None = None  # see enable_tcp
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None  # see attach
        self._reactor: Any = None
        self._wake: asyncio.TimerHandle | None = None  # the delayed-ACK wake-up (see prepare_sleep)
        self._wake_at = 0.0
        registry = metrics or MetricsRegistry()
        self._m_rx = registry.counter("native_frames_received_total", "Frames taken from the device")
        self._m_tx = registry.counter("native_frames_sent_total", "Frames handed to the device")
        self._registry = registry
        self._drops: dict[str, Counter] = {}
        self._events: dict[str, Counter] = {}
        self.echo_replies = registry.counter("native_icmp_echo_replies_total", "Echo requests answered")
        self.arp_replies = registry.counter("native_arp_replies_total", "ARP requests for our address answered")

    # ----- counters -----------------------------------------------------------------------

    def drop(self, reason: str) -> None:
        """Count a frame or packet dropped: ``native_drops_total{reason}``."""
        self._labelled(self._drops, "native_drops_total", "Frames or packets dropped, by reason", "reason", reason).value += 1

    def count(self, event: str) -> None:
        """Count something that happened (not a drop): ``native_events_total{event}``."""
        self.event_counter(event).value += 1

    def event_counter(self, event: str) -> Counter:
        """The counter :meth:`count` adds to, for a hot path to keep and add to itself."""
        return self._labelled(
            self._events, "native_events_total", "Protocol events (segments, retransmissions, resets), by event",
            "event", event,
        )

    def gauge(self, name: str, help_text: str, labels: dict[str, str], read: Callable[[], float]) -> None:
        """A value read at collection time (protocol layers use it for their tables)."""
        self._registry.gauge(name, help_text, labels, read=read)

    def _labelled(self, counters: dict[str, Counter], name: str, help_text: str, label: str, value: str) -> Counter:
        counter = counters.get(value)
        if counter is None:
            counter = counters[value] = self._registry.counter(name, help_text, {label: value})
        return counter

    def drops(self, reason: str) -> int:
        counter = self._drops.get(reason)
        return 0 if counter is None else counter.value

    def events(self, event: str) -> int:
        counter = self._events.get(event)
        return 0 if counter is None else counter.value

    def enable_tcp(self, **settings: Any) -> "TcpEndpoint":
        """Serve TCP (see tcp/endpoint.py for the settings)."""
        if self.tcp is None:
            self.tcp = TcpEndpoint(self, clock=self._clock, **settings)
        return self.tcp

    # ----- the poller ---------------------------------------------------------------------

    def poll(self) -> bool:
        """Handle one burst of received frames; send what it produced. True if any."""
        frames = self.device.receive_burst(BURST)
        self._neighbour_seen = None
        if frames:
            self._m_rx.value += len(frames)
            for frame in frames:
                self.receive_frame(memoryview(frame))
        if self.tcp is not None:
            self.tcp.run_timers()
            self.tcp.send_pending_acks()
        self.flush()
        return bool(frames)

    # the rest of the reactor's poller interface (framework.reactor.Poller)

    def prepare_sleep(self) -> None:
        """A device with a file descriptor wakes the loop itself (see :meth:`attach`); what
        is armed here is a wake-up for the earliest delayed ACK (other TCP timers are coarse
        enough for the owner's tick)."""
        tcp, loop = self.tcp, self._loop
        if tcp is None or loop is None or tcp.next_delayed_ack is None:
            return
        deadline = tcp.next_delayed_ack
        if self._wake is not None and self._wake_at <= deadline and not self._wake.cancelled():
            return
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = deadline
        self._wake = loop.call_later(max(0.0, deadline - self._clock()), self._woken)

    def _woken(self) -> None:
        self._wake = None
        if self._reactor is not None:
            self._reactor.kick()

    def has_pending_work(self) -> bool:
        """A device without a file descriptor cannot wake us, so it never lets us sleep."""
        return self.device.fileno() is None

    def attach(self, reactor: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Run this stack as one of ``reactor``'s pollers: polled every tick while the shard is
        busy; while it sleeps, the device's descriptor becoming readable wakes it."""
        reactor.add_poller(self)
        self._loop, self._reactor = loop, reactor
        fd = self.device.fileno()
        if fd is not None:
            loop.add_reader(fd, reactor.kick)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._loop = self._reactor = None
        fd = self.device.fileno()
        if fd is not None:
            loop.remove_reader(fd)

    def flush(self) -> None:
        out = self._out
        if out:
            self._m_tx.value += self.device.send_burst(out)
            out.clear()

    def announce(self) -> None:
        """A gratuitous ARP: tell the link our address is at our MAC."""
        packet = arp.build_arp(arp.OP_REQUEST, self.mac, self.address.ip, b"\x00" * 6, self.address.ip)
        self._out.append(build_ethernet(BROADCAST, self.mac, ETHERTYPE_ARP) + packet)

    # ----- receive path ---------------------------------------------------------------------

    def receive_frame(self, frame: memoryview) -> None:
        if frame[0:6] == self.mac and frame[12:14] == _IPV4_TYPE and len(frame) >= HEADER_LEN:
            self.receive_ipv4(frame[HEADER_LEN:], bytes(frame[6:12]))  # unicast IPv4: the common case
            return
        header = parse_ethernet(frame)
        if header is None:
            self.drop("ethernet_malformed")
            return
        if header.dst != self.mac and header.dst != BROADCAST:
            self.drop("ethernet_not_for_us")
            return
        payload = frame[HEADER_LEN:]
        if header.ethertype == ETHERTYPE_IPV4:
            self.receive_ipv4(payload, header.src)
        elif header.ethertype == ETHERTYPE_ARP:
            self.receive_arp(payload)
        else:
            self.drop("ethernet_unsupported")

    def receive_arp(self, payload: memoryview) -> None:
        packet = arp.parse_arp(payload)
        if packet is None:
            self.drop("arp_malformed")
            return
        me = self.address.ip
        for_us = packet.target_ip == me
        if for_us or self.arp_cache.knows(packet.sender_ip):
            self.arp_cache.learn(packet.sender_ip, packet.sender_mac)
            self._release_waiting(packet.sender_ip, packet.sender_mac)
        if for_us and packet.op == arp.OP_REQUEST:
            self.arp_replies.value += 1
            reply = arp.build_arp(arp.OP_REPLY, self.mac, me, packet.sender_mac, packet.sender_ip)
            self._out.append(build_ethernet(packet.sender_mac, self.mac, ETHERTYPE_ARP) + reply)

    def receive_ipv4(self, payload: memoryview, src_mac: bytes) -> None:
        header = ipv4.parse_ipv4(payload)
        if type(header) is str:
            self.drop(header)
            return
        assert isinstance(header, ipv4.Ipv4Header)
        if header.dst != self.address.ip and header.dst != self.address.broadcast:
            self.drop("ipv4_not_for_us")
            return
        src = header.src
        if src != self._neighbour_seen:  # (checked once per burst for the source just seen)
            if src != self.address.ip and self.address.on_link(src) and not self.arp_cache.knows(src):
                # learn on-link neighbours from their packets too: with several shards on one
                # link, the ARP reply to a shard's request may reach another shard's queue
                self.arp_cache.learn(src, src_mac)
                self._release_waiting(src, src_mac)
            self._neighbour_seen = src
        body = payload[header.header_len : header.total_len]
        if header.protocol == ipv4.PROTO_ICMP:
            self.receive_icmp(body, header, src_mac)
        elif header.protocol == ipv4.PROTO_UDP:
            self.receive_udp(body, header)
        elif header.protocol == ipv4.PROTO_TCP and self.tcp is not None:
            self.tcp.receive(body, header.src, header.dst)
        else:
            self.drop("ipv4_unsupported_protocol")

    def receive_icmp(self, body: memoryview, ip: ipv4.Ipv4Header, src_mac: bytes) -> None:
        message = icmp.parse_icmp(body)
        if message is None:
            self.drop("icmp_malformed")
            return
        if message.type != icmp.ECHO_REQUEST or message.code != 0 or ip.dst != self.address.ip:
            self.drop("icmp_ignored")
            return
        self.echo_replies.value += 1
        self.reply_ipv4(src_mac, ip.src, ipv4.PROTO_ICMP, icmp.build_echo_reply(message))

    def bind_udp(self, port: int, handler: UdpHandler) -> None:
        """Deliver datagrams for ``port`` to ``handler`` (one handler per port)."""
        if port in self._udp_handlers:
            raise OSError(f"UDP port {port} is already bound")
        self._udp_handlers[port] = handler

    def unbind_udp(self, port: int) -> None:
        self._udp_handlers.pop(port, None)

    def receive_udp(self, body: memoryview, ip: ipv4.Ipv4Header) -> None:
        header = udp.parse_udp(body, ip.src, ip.dst)
        if type(header) is str:
            self.drop(header)
            return
        assert isinstance(header, udp.UdpHeader)
        handler = self._udp_handlers.get(header.dst_port)
        if handler is None:
            self.drop("udp_no_listener")
            return
        src = ".".join(str(b) for b in ip.src)
        handler(body[udp.HEADER_LEN : header.length], (src, header.src_port), header.dst_port)

    # ----- send path ------------------------------------------------------------------------

    def send_udp(self, dst: bytes, src_port: int, dst_port: int, payload: bytes) -> bool:
        """Originate a datagram (through the ARP cache or after resolving the next hop)."""
        datagram = udp.build_udp(self.address.ip, dst, src_port, dst_port, payload)
        return self.send_ipv4(dst, ipv4.PROTO_UDP, datagram)

    def _ipv4_packet(self, dst: bytes, protocol: int, payload: bytes) -> bytes:
        self._ident = (self._ident + 1) & 0xFFFF
        return ipv4.build_ipv4(self.address.ip, dst, protocol, len(payload), self._ident) + payload

    def reply_ipv4(self, dst_mac: bytes, dst: bytes, protocol: int, payload: bytes) -> None:
        """Answer a packet we received: back to the MAC it came from."""
        packet = self._ipv4_packet(dst, protocol, payload)
        self._out.append(build_ethernet(dst_mac, self.mac, ETHERTYPE_IPV4) + packet)

    def send_ipv4(self, dst: bytes, protocol: int, payload: bytes) -> bool:
        """Originate a packet to ``dst``; False if there is no route (no gateway).

        A destination whose next hop's MAC is known gets a route-cache entry: the Ethernet
        header and the IPv4 header's constant part (packed, with its checksum sum) for as long
        as the ARP entry lives, so most packets cost one pack and one join."""
        route = self._routes.get((dst, protocol))
        if route is not None and route[2] > self._clock():
            ethernet, constant_sum, _until = route
            ident = self._ident = (self._ident + 1) & 0xFFFF
            total_len = ipv4.HEADER_LEN + len(payload)
            folded = (constant_sum + total_len + ident) % 0xFFFF
            header = ipv4.pack_header(total_len, ident, protocol, 0xFFFF - folded if folded else 0, self.address.ip, dst)
            self._out.append(ethernet + header + payload)
            return True
        hop = self.address.next_hop(dst)
        if hop is None:
            self.drop("ipv4_no_route")
            return False
        packet = self._ipv4_packet(dst, protocol, payload)
        entry = self.arp_cache.entry(hop)
        if entry is not None:
            ethernet = build_ethernet(entry[0], self.mac, ETHERTYPE_IPV4)
            self._routes[(dst, protocol)] = (ethernet, ipv4.constant_sum(self.address.ip, dst, protocol), entry[1])
            self._out.append(ethernet + packet)
            return True
        waiting = self._waiting[hop]
        if len(waiting) >= MAX_WAITING_PER_HOP:
            waiting.popleft()
            self.drop("arp_unresolved")
        waiting.append((packet, ETHERTYPE_IPV4))
        request = arp.build_arp(arp.OP_REQUEST, self.mac, self.address.ip, b"\x00" * 6, hop)
        self._out.append(build_ethernet(BROADCAST, self.mac, ETHERTYPE_ARP) + request)
        return True

    def _release_waiting(self, hop: bytes, mac: bytes) -> None:
        waiting = self._waiting.pop(hop, None)
        if waiting:
            for packet, ethertype in waiting:
                self._out.append(build_ethernet(mac, self.mac, ethertype) + packet)
