"""asyncio's DatagramTransport over the native stack's UDP, so memcached's UDP endpoint (an
``asyncio.DatagramProtocol``) runs on it unchanged.

A datagram for the bound port reaches ``protocol.datagram_received(data, (ip, port))``;
``sendto(data, (ip, port))`` originates one from the bound port (through the ARP cache: a
client that sent us a datagram is known by then) and flushes it to the device. The stack does
not reassemble IPv4 fragments (see ipv4.py), so a request larger than one frame is dropped,
and nothing fragments what we send: the caller keeps datagrams within the MTU (memcached's
UDP frames are at most 1400 bytes).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stack import NativeStack

__all__ = ["NativeDatagramTransport"]


class NativeDatagramTransport(asyncio.DatagramTransport):
    def __init__(self, stack: "NativeStack", port: int, protocol: asyncio.DatagramProtocol) -> None:
        super().__init__()
        self._stack = stack
        self._port = port
        self._protocol = protocol
        self._closing = False
        stack.bind_udp(port, self._received)
        protocol.connection_made(self)

    def _received(self, payload: memoryview, source: tuple[str, int], _port: int) -> None:
        if not self._closing:
            self._protocol.datagram_received(bytes(payload), source)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing or addr is None:
            return
        self._stack.send_udp(ipaddress.IPv4Address(addr[0]).packed, self._port, addr[1], bytes(data))
        self._stack.flush()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stack.unbind_udp(self._port)
        self._protocol.connection_lost(None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> Any:
        return self._protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return (str(ipaddress.IPv4Address(self._stack.address.ip)), self._port)
        return default
