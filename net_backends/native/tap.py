"""A TAP device: the kernel hands us the Ethernet frames it sends to the tap, and puts on its
side the frames we write.

Opening ``/dev/net/tun`` with ``IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE`` attaches one queue of
the named tap (creating the tap if it does not exist and we may). Each shard opens its own
queue of the same tap: the kernel spreads the flows it sends over the queues by hash, like a
NIC's RSS, and a flow stays on its shard because each shard replies on its own queue.

The fd is non-blocking: ``receive_burst`` reads until the queue is empty or the burst is full;
``send_burst`` writes frame by frame and drops (counting ``tx_dropped``) what the kernel will
not take now, including everything while the tap is down (the kernel answers EIO then). The stack's MAC is its own (the kernel's side of the tap has another): by default
a locally administered address derived from the stack's IPv4 address, the same on every shard.
"""

from __future__ import annotations

import fcntl
import os
import struct
from typing import Final, Sequence

from .device import ETHERNET_MTU

__all__ = ["TapDevice", "mac_for_ipv4", "TUNSETIFF", "IFF_TAP", "IFF_NO_PI", "IFF_MULTI_QUEUE"]

TUNSETIFF: Final = 0x400454CA
IFF_TAP: Final = 0x0002
IFF_NO_PI: Final = 0x1000
IFF_MULTI_QUEUE: Final = 0x0100
_MAX_FRAME: Final = 65536


def mac_for_ipv4(ip: bytes) -> bytes:
    """02:00:a.b.c.d: locally administered, unicast, one per stack address."""
    return b"\x02\x00" + ip


class TapDevice:
    """One queue of a multi-queue TAP device (a :class:`~net_backends.native.device.Device`)."""

    def __init__(self, name: str, mac: bytes, mtu: int = ETHERNET_MTU, multi_queue: bool = True) -> None:
        if len(name.encode()) >= 16:
            raise ValueError(f"tap name too long: {name!r}")
        self.name = name
        self.mac = mac
        self.mtu = mtu
        flags = IFF_TAP | IFF_NO_PI | (IFF_MULTI_QUEUE if multi_queue else 0)
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self.tx_dropped = 0

    def fileno(self) -> int | None:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def receive_burst(self, max_frames: int = 32) -> list[bytes]:
        out: list[bytes] = []
        read = os.read
        fd = self._fd
        while len(out) < max_frames:
            try:
                out.append(read(fd, _MAX_FRAME))
            except OSError:  # nothing more (EAGAIN), or the link is down (EIO)
                break
        return out

    def send_burst(self, frames: Sequence[bytes]) -> int:
        write = os.write
        fd = self._fd
        sent = 0
        for frame in frames:
            try:
                write(fd, frame)
                sent += 1
            except OSError:  # the queue is full (EAGAIN) or the link is down (EIO)
                self.tx_dropped += 1
        return sent
