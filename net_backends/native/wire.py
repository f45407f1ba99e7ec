"""Two devices joined by an in-memory wire that misbehaves on purpose, deterministically.

Theory of operation
-------------------
``WirePair(seed, ...)`` gives endpoints ``a`` and ``b``. A frame sent on one is delivered to
the other's receive queue after the wire's impairments, drawn from one ``random.Random(seed)``,
so a test that sends the same frames in the same order sees the same misbehaviour every run:

  * ``mtu``: a frame carrying more than ``mtu`` bytes of payload is dropped;
  * ``loss``: the probability that a frame is dropped;
  * ``duplicate``: the probability that it is delivered twice;
  * ``corrupt``: the probability that one byte of it (past the Ethernet header) is flipped;
  * ``reorder``: the probability that it is held back and delivered after the next frame;
  * ``delay``: seconds before a frame may be received, on the pair's ``clock`` (injectable,
    so a test can step time instead of sleeping).

Counters on each endpoint say what happened to what it sent (``sent``, ``dropped_loss``,
``dropped_mtu``, ``duplicated``, ``corrupted``, ``reordered``).
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from typing import Callable, Sequence

from .device import ETHERNET_MTU

__all__ = ["WirePair", "WireEnd"]

_ETHERNET_HEADER = 14


class WireEnd:
    """One endpoint of a :class:`WirePair` (a :class:`~net_backends.native.device.Device`)."""

    def __init__(self, pair: "WirePair", mac: bytes) -> None:
        self.mac = mac
        self.mtu = pair.mtu
        self._pair = pair
        self.peer: WireEnd | None = None
        self._inbox: list[tuple[float, int, bytes]] = []  # (due time, order, frame)
        self._held: bytes | None = None  # a frame held back to be reordered
        self.sent = self.dropped_loss = self.dropped_mtu = 0
        self.duplicated = self.corrupted = self.reordered = 0

    def fileno(self) -> int | None:
        return None

    def receive_burst(self, max_frames: int = 32) -> list[bytes]:
        now = self._pair.clock()
        out: list[bytes] = []
        inbox = self._inbox
        while inbox and inbox[0][0] <= now and len(out) < max_frames:
            out.append(heapq.heappop(inbox)[2])
        return out

    def send_burst(self, frames: Sequence[bytes]) -> int:
        for frame in frames:
            self._send_one(bytes(frame))
        return len(frames)

    def flush(self) -> None:
        """Deliver a frame held back for reordering (nothing came after it)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._deliver(held)

    def _send_one(self, frame: bytes) -> None:
        pair = self._pair
        rng = pair.rng
        self.sent += 1
        if len(frame) - _ETHERNET_HEADER > pair.mtu:
            self.dropped_mtu += 1
            return
        if rng.random() < pair.loss:
            self.dropped_loss += 1
            return
        if rng.random() < pair.corrupt and len(frame) > _ETHERNET_HEADER:
            self.corrupted += 1
            at = rng.randrange(_ETHERNET_HEADER, len(frame))
            frame = frame[:at] + bytes((frame[at] ^ (1 << rng.randrange(8)),)) + frame[at + 1 :]
        copies = 2 if rng.random() < pair.duplicate else 1
        self.duplicated += copies - 1
        for _ in range(copies):
            if self._held is None and rng.random() < pair.reorder:
                self.reordered += 1
                self._held = frame
                continue
            self._deliver(frame)
            if self._held is not None:
                held, self._held = self._held, None
                self._deliver(held)

    def _deliver(self, frame: bytes) -> None:
        assert self.peer is not None
        pair = self._pair
        heapq.heappush(self.peer._inbox, (pair.clock() + pair.delay, next(pair.order), frame))


class WirePair:
    """Two :class:`WireEnd` devices, ``a`` and ``b``, joined by one impaired wire."""

    def __init__(
        self,
        seed: int = 0,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        corrupt: float = 0.0,
        reorder: float = 0.0,
        delay: float = 0.0,
        mtu: int = ETHERNET_MTU,
        clock: Callable[[], float] = time.monotonic,
        mac_a: bytes = b"\x02\x00\x00\x00\x00\x0a",
        mac_b: bytes = b"\x02\x00\x00\x00\x00\x0b",
    ) -> None:
        self.rng = random.Random(seed)
        self.loss, self.duplicate, self.corrupt, self.reorder = loss, duplicate, corrupt, reorder
        self.delay, self.mtu, self.clock = delay, mtu, clock
        self.order = itertools.count()
        self.a = WireEnd(self, mac_a)
        self.b = WireEnd(self, mac_b)
        self.a.peer, self.b.peer = self.b, self.a
