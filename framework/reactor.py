"""The shard's reactor: the uvloop event loop plus pollers, and the doorbell sleep protocol.

Theory of operation
-------------------
Work reaches a shard two ways: through the event loop (sockets, timers, the control socket) and
through *pollers*, which check memory that other processes write (the inbound channel rings;
later the network device queues). Pollers cost nothing to check but nobody can interrupt us when
they have work, so the reactor runs them in a *tick*: one ``call_soon`` callback that polls every
poller once and reschedules itself, i.e. once per loop iteration, between the loop's own I/O.

States::

    POLLING --(no poller found work for idle_poll seconds)--> try to sleep
    try to sleep: every poller arms its wake-ups (prepare_sleep); sleeping flag := 1;
                  full fence; any poller has work now? --yes--> flag := 0, POLLING
                                                        --no---> SLEEPING
    SLEEPING --(doorbell eventfd readable, or kick() from local work)--> flag := 0, POLLING

While SLEEPING no tick is scheduled, so the loop blocks in epoll on its sockets and on the
doorbell eventfd: an idle shard burns no CPU.

The lost wake-up this prevents: a producer publishes into our ring and then reads our sleeping
flag; we set the flag and then re-check the rings. Each side stores first and loads second, with
a full fence between (Dekker), so at least one of them sees the other: either the producer sees
flag = 1 and writes the doorbell, or our re-check sees its data. Without the fence both loads
could pass their stores on x86-64 and both would miss.

``kick()`` is how local work (a message queued by a socket callback) restarts the tick.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Protocol

from .metrics import MetricsRegistry
from .ring import full_fence

__all__ = ["Poller", "Reactor", "DEFAULT_IDLE_POLL_SECONDS"]

_monotonic = time.monotonic

DEFAULT_IDLE_POLL_SECONDS = 0.0002


class Poller(Protocol):
    """Something the reactor checks every tick while the shard is busy."""

    def poll(self) -> bool:
        """Do the work that is there; True if there was any."""

    def prepare_sleep(self) -> None:
        """Arm whatever makes others ring our doorbell for work we cannot see yet."""

    def has_pending_work(self) -> bool:
        """Called after the sleeping flag is set and fenced: is there work after all?"""


class Reactor:
    """Runs the pollers of one shard on its loop; sleeps on the doorbell when idle."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        doorbell_fd: int,
        sleeping_flags: memoryview,
        shard_id: int,
        idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self._loop = loop
        self._doorbell_fd = doorbell_fd
        self._flags = sleeping_flags
        self._me = shard_id
        self._idle = idle_poll_seconds
        self._pollers: list[Poller] = []
        self._ticking = False
        self._stopped = False
        self._last_work = 0.0
        registry = metrics or MetricsRegistry()
        self.ticks = registry.counter("reactor_ticks_total", "Poller ticks run")
        self.sleeps = registry.counter("reactor_sleeps_total", "Times the reactor went to sleep")
        self.doorbells = registry.counter(
            "reactor_doorbell_wakeups_total", "Wake-ups caused by a peer writing our doorbell"
        )
        self._busy_since = (time.monotonic(), time.process_time())
        registry.gauge(
            "reactor_busy_ratio",
            "Share of wall time the shard process spent on a CPU since the previous collection",
            read=self._busy_ratio,
        )
        self._flags[self._me] = 0
        self._tick_callback = self._tick  # bound once: scheduled every loop iteration while busy
        loop.add_reader(doorbell_fd, self._on_doorbell)

    def _busy_ratio(self) -> float:
        """CPU seconds per wall second since the last time this was read (so every scrape
        sees the window since the one before)."""
        wall, cpu = time.monotonic(), time.process_time()
        wall0, cpu0 = self._busy_since
        self._busy_since = (wall, cpu)
        return 0.0 if wall <= wall0 else min(1.0, max(0.0, (cpu - cpu0) / (wall - wall0)))

    def add_poller(self, poller: Poller) -> None:
        self._pollers.append(poller)
        self.kick()

    def kick(self) -> None:
        """There is (or may be) work for the pollers: make sure a tick is scheduled."""
        if not self._ticking and not self._stopped:
            self._ticking = True
            self._flags[self._me] = 0
            self._last_work = _monotonic()
            self._loop.call_soon(self._tick_callback)

    def stop(self) -> None:
        self._stopped = True
        self._loop.remove_reader(self._doorbell_fd)

    def _on_doorbell(self) -> None:
        try:
            os.eventfd_read(self._doorbell_fd)
        except BlockingIOError:
            return
        self.doorbells.inc()
        self.kick()

    def _tick(self) -> None:
        if self._stopped:
            self._ticking = False
            return
        self.ticks.value += 1
        busy = False
        for poller in self._pollers:
            if poller.poll():
                busy = True
        now = _monotonic()
        if busy:
            self._last_work = now
        elif now - self._last_work >= self._idle and self._try_sleep():
            return
        self._loop.call_soon(self._tick_callback)

    def _try_sleep(self) -> bool:
        for poller in self._pollers:
            poller.prepare_sleep()
        self._flags[self._me] = 1
        full_fence()
        for poller in self._pollers:
            if poller.has_pending_work():
                self._flags[self._me] = 0
                self._last_work = _monotonic()
                return False
        self._ticking = False
        self.sleeps.value += 1
        return True
