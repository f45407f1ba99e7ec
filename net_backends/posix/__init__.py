"""The POSIX network stack: the kernel's TCP, plain sockets served by our own transport.

Each shard opens its own listening socket on the same address with ``SO_REUSEPORT``; the kernel
spreads incoming connections over the shards by a hash of the 4-tuple, and every connection is
served to its end by the shard that accepted it (no hand-offs, no shared accept queue). The
alternative, one acceptor passing connections to shards, balances counts exactly but costs a
file-descriptor hand-off per connection; see the closing note of issue 3 for the measurement
behind this choice.

A plain connection (no TLS) is served by :mod:`net_backends.posix.socket_stream` when that
module is compiled: the loop (uvloop) only watches the descriptor, and reads and writes are
``recv(2)``/``send(2)`` calls from compiled code, one C call per read into the protocol. TLS
connections, UDP, and every connection of the interpreted core (where uvloop's C transport is
the faster one: memaslap_ab measured the interpreted socket_stream at 0.95x) use uvloop's
transports.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Callable

from .socket_stream import COMPILED, SocketListener, listening_sockets, shared_sockets

__all__ = ["PosixStack", "check_can_listen", "resolve_passive", "overlaps", "SocketAddress"]

SocketAddress = tuple[int, str, int]  # (family, address, port)
_WILDCARDS = frozenset(("0.0.0.0", "::"))

ProtocolFactory = Callable[[], asyncio.Protocol]


class PosixStack:
    """Listens on kernel sockets: plain connections get a :class:`SocketTransport
    <net_backends.posix.socket_stream.SocketTransport>`, TLS ones uvloop's transport."""

    name = "posix"

    def __init__(self, loop: asyncio.AbstractEventLoop, backlog: int = 1024) -> None:
        self._loop = loop
        self._backlog = backlog

    async def listen_tcp(
        self, factory: ProtocolFactory, host: str, port: int, tls: ssl.SSLContext | None = None,
    ) -> Any:
        """Accept on ``host:port``; with ``tls``, every connection is TLS (the handshake is done
        before the protocol sees a byte). The result has ``sockets`` and ``close()``."""
        if tls is not None or not COMPILED:
            return await self._loop.create_server(
                factory, host, port, reuse_port=True, reuse_address=True, backlog=self._backlog, ssl=tls,
            )
        return _Listeners([SocketListener(self._loop, sock, factory) for sock in listening_sockets(host, port, self._backlog)])

    async def serve_socket(self, factory: ProtocolFactory, sock: socket.socket, tls: ssl.SSLContext | None = None) -> Any:
        """Accept on a listening socket opened elsewhere (the supervisor's UNIX socket, ``-s``)."""
        if tls is not None or not COMPILED:
            if sock.family == socket.AF_UNIX:
                return await self._loop.create_unix_server(factory, sock=sock, backlog=self._backlog, ssl=tls)
            return await self._loop.create_server(factory, sock=sock, backlog=self._backlog, ssl=tls)
        sock.listen(self._backlog)
        return _Listeners([SocketListener(self._loop, sock, factory)])

    async def listen_udp(
        self, factory: Callable[[], asyncio.DatagramProtocol], host: str, port: int,
    ) -> asyncio.DatagramTransport:
        """A UDP socket shared with the other shards (``SO_REUSEPORT``: the kernel picks the
        shard by the sender's address, so one client socket always reaches the same one)."""
        transport, _ = await self._loop.create_datagram_endpoint(factory, local_addr=(host, port), reuse_port=True)
        return transport

    async def listen_udp_all(
        self, factory: Callable[[], asyncio.DatagramProtocol], host: str, port: int,
    ) -> list[asyncio.DatagramTransport]:
        """As :meth:`listen_udp`, on every address ``host`` resolves to (``""``: every address of
        the machine, IPv4 and IPv6), one socket and one ``factory()`` each, as memcached binds them."""
        transports = []
        for sock in shared_sockets(host, port, socket.SOCK_DGRAM):
            transport, _ = await self._loop.create_datagram_endpoint(factory, sock=sock)
            transports.append(transport)
        return transports


class _Listeners:
    """The listeners of one address, shown as one server (``sockets``, ``close()``)."""

    def __init__(self, listeners: list[SocketListener]) -> None:
        self._listeners = listeners

    @property
    def sockets(self) -> list[socket.socket]:
        return [sock for listener in self._listeners for sock in listener.sockets]

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()


def check_can_listen(host: str, port: int, udp: bool = False) -> None:
    """Raise OSError if ``host:port`` (TCP, or UDP) is taken by a socket we could not share
    (for example a memcached already running there). Call before starting the shards.
    ``host`` ``""``: every address."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    for family, kind, proto, _, addr in socket.getaddrinfo(host or None, port, type=kind, flags=socket.AI_PASSIVE):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)


def resolve_passive(host: str, port: int, udp: bool = False) -> list[SocketAddress]:
    """The addresses a listener on ``host:port`` binds (``""``: every address): (family,
    address, port) each. Raises ``socket.gaierror`` for a host that does not resolve."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    found = socket.getaddrinfo(host or None, port, type=kind, flags=socket.AI_PASSIVE)
    return [(family, address[0], address[1]) for family, _, _, _, address in found]


def overlaps(first: SocketAddress, second: SocketAddress) -> bool:
    """Whether the kernel refuses to bind both without ``SO_REUSEPORT``: one family and port,
    the same address or a wildcard one (memcached binds so, and fails on the second)."""
    (family, address, port), (other_family, other_address, other_port) = first, second
    same_port = family == other_family and port == other_port
    return same_port and (address == other_address or address in _WILDCARDS or other_address in _WILDCARDS)
