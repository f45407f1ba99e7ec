"""What the native stack needs of a network device, and nothing more.

A device moves whole Ethernet frames (no preamble, no FCS): ``receive_burst`` returns the
frames that have arrived (at most ``max_frames``, possibly none, never blocking) and
``send_burst`` queues frames for the wire, returning how many it took. ``mac`` is the stack's
own address on the link, ``mtu`` the largest IP packet a frame may carry. A device whose
arrivals can wake the event loop gives a ``fileno``; one that must be polled gives None.
"""

from __future__ import annotations

from typing import Protocol, Sequence

__all__ = ["Device", "ETHERNET_MTU"]

ETHERNET_MTU = 1500


class Device(Protocol):
    mac: bytes
    mtu: int

    def receive_burst(self, max_frames: int = 32) -> list[bytes]:
        """Frames received since the last call, oldest first; never blocks."""

    def send_burst(self, frames: Sequence[bytes]) -> int:
        """Queue ``frames`` for sending, in order; the number taken (the rest were dropped)."""

    def fileno(self) -> int | None:
        """A file descriptor readable when frames may have arrived, or None (poll instead)."""
