"""The POSIX network stack: the kernel's TCP through uvloop.

Each shard opens its own listening socket on the same address with ``SO_REUSEPORT``; the kernel
spreads incoming connections over the shards by a hash of the 4-tuple, and every connection is
served to its end by the shard that accepted it (no hand-offs, no shared accept queue). The
alternative, one acceptor passing connections to shards, balances counts exactly but costs a
file-descriptor hand-off per connection; see the closing note of issue 3 for the measurement
behind this choice.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Callable

__all__ = ["PosixStack", "check_can_listen"]

ProtocolFactory = Callable[[], asyncio.Protocol]


class PosixStack:
    """Listens on kernel sockets; transports come from the event loop (uvloop)."""

    name = "posix"

    def __init__(self, loop: asyncio.AbstractEventLoop, backlog: int = 1024) -> None:
        self._loop = loop
        self._backlog = backlog

    async def listen_tcp(
        self, factory: ProtocolFactory, host: str, port: int, tls: ssl.SSLContext | None = None,
    ) -> asyncio.AbstractServer:
        """Accept on ``host:port``; with ``tls``, every connection is TLS (the handshake is done
        before the protocol sees a byte)."""
        return await self._loop.create_server(
            factory, host, port, reuse_port=True, reuse_address=True, backlog=self._backlog, ssl=tls,
        )

    async def listen_udp(
        self, factory: Callable[[], asyncio.DatagramProtocol], host: str, port: int,
    ) -> asyncio.DatagramTransport:
        """A UDP socket shared with the other shards (``SO_REUSEPORT``: the kernel picks the
        shard by the sender's address, so one client socket always reaches the same one)."""
        transport, _ = await self._loop.create_datagram_endpoint(factory, local_addr=(host, port), reuse_port=True)
        return transport


def check_can_listen(host: str, port: int, udp: bool = False) -> None:
    """Raise OSError if ``host:port`` (TCP, or UDP) is taken by a socket we could not share
    (for example a memcached already running there). Call before starting the shards."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    for family, kind, proto, _, addr in socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)
