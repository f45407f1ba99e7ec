"""The native stack as a kvshard network backend: one device (a TAP queue, or a DPDK port's
queue pair) and one stack per shard.

``NativeBackend`` offers what the POSIX backend offers (``await listen_tcp(factory, host,
port)``, accepted connections handed to a fresh ``asyncio.Protocol`` through an
``asyncio.Transport``; ``await listen_udp(factory, host, port)`` for memcached's UDP), so the
memcached server runs on it unchanged. Each shard process opens
its own device (the caller makes it: a queue of the TAP device, or a DPDK port), announces the address with a gratuitous ARP, and runs its stack as a reactor poller.
TCP timers run on every poll and, while the shard sleeps, from a loop timer every
:data:`~net_backends.native.tcp.endpoint.TIMER_TICK` seconds when there are connections (once a
second when there are none).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from framework.metrics import MetricsRegistry

from .datagram import NativeDatagramTransport
from .stack import NativeStack, StackAddress
from .device import Device
from .tcp.endpoint import TIMER_TICK

__all__ = ["NativeBackend", "NativeListener"]


class NativeListener:
    """What ``listen_tcp`` returns: ``close()`` stops accepting (connections go on)."""

    def __init__(self, backend: "NativeBackend", port: int) -> None:
        self._backend = backend
        self.port = port

    def close(self) -> None:
        tcp = self._backend.stack.tcp
        if tcp is not None:
            tcp.listeners.pop(self.port, None)


class NativeBackend:
    name = "native"

    def __init__(
        self, loop: asyncio.AbstractEventLoop, reactor: Any, metrics: MetricsRegistry,
        device: Device, address: StackAddress,
    ) -> None:
        self._loop = loop
        self.stack = NativeStack(device, address, metrics)
        self.stack.enable_tcp()
        self.stack.announce()
        self.stack.flush()
        self.stack.attach(reactor, loop)
        self._timer: asyncio.TimerHandle | None = loop.call_later(TIMER_TICK, self._tick)

    def _tick(self) -> None:
        stack = self.stack
        tcp = stack.tcp
        assert tcp is not None
        tcp.run_timers()
        stack.flush()
        self._timer = self._loop.call_later(TIMER_TICK if tcp.connections else 1.0, self._tick)

    async def listen_tcp(self, factory: Callable[[], asyncio.Protocol], host: str, port: int) -> NativeListener:
        """Accept on ``port`` of the stack's address (``host`` is the stack's one address)."""
        tcp = self.stack.tcp
        assert tcp is not None
        tcp.listen(port, factory)
        return NativeListener(self, port)

    async def listen_udp(self, factory: Callable[[], asyncio.DatagramProtocol], host: str, port: int) -> NativeDatagramTransport:
        """Serve UDP ``port`` of the stack's address with the protocol ``factory()`` makes."""
        return NativeDatagramTransport(self.stack, port, factory())

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.stack.detach(self._loop)
        self.stack.device.close()  # type: ignore[attr-defined]
