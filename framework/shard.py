"""One shard: its process main, and the API an application uses inside it.

Life of a shard process (forked by the supervisor, see smp.py)::

    forked -> pin to its CPU -> new uvloop loop -> Reactor + Messenger over the shared rings
      -> app.setup(shard)          register handlers and metrics
      -> send READY, wait START    (every peer is at least at READY: handlers exist everywhere)
      -> app.start(shard)          open sockets, begin serving
      -> ... serve; PEER_DOWN / PEER_UP from the supervisor update the links ...
      -> STOP (or SIGTERM)         app.stop(shard), then exit 0

If the control socket reaches end of file the supervisor is gone and the shard exits at once;
the kernel also kills it (PR_SET_PDEATHSIG) if the supervisor dies, so no shard outlives it.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

from . import control
from .logs import reopen_log_files, set_label
from .channel import DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_QUEUED, Handler, Messenger, PeerLink
from .metrics import MetricsRegistry, Sample
from .reactor import DEFAULT_IDLE_POLL_SECONDS, Reactor
from .shm_layout import SHARED_WORDS, SharedLayout

__all__ = ["Shard", "ShardApp", "ShardSettings", "gather_metrics"]

log = logging.getLogger("framework.shard")
R = TypeVar("R")

_METRICS_HANDLER = "framework.metrics.collect"
_PING_HANDLER = "framework.ping"


@dataclass(frozen=True)
class ShardSettings:
    """Tunables every shard gets; the defaults are what ``smp.run`` uses."""

    ring_capacity: int = 1 << 20
    idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    max_queued: int = DEFAULT_MAX_QUEUED
    stop_timeout: float = 5.0
    pin_cpus: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class ShardApp:
    """What runs in every shard. Subclass and override what you need."""

    async def setup(self, shard: "Shard") -> None:
        """Register handlers and metrics. Peers may call in as soon as this returns."""

    async def start(self, shard: "Shard") -> None:
        """Every shard is up: start serving (open sockets, start tasks)."""

    async def stop(self, shard: "Shard") -> None:
        """Stop serving; called once on a clean stop."""


class Shard:
    """The runtime as an application sees it, inside one shard process."""

    def __init__(
        self,
        shard_id: int,
        count: int,
        cpu: int | None,
        messenger: Messenger,
        reactor: Reactor,
        metrics: MetricsRegistry,
        control_sock: socket.socket,
        settings: ShardSettings,
        incarnation: int,
        shared_words: memoryview,
    ) -> None:
        self.id = shard_id
        self.count = count
        self.cpu = cpu
        self.messenger = messenger
        self.reactor = reactor
        self.metrics = metrics
        self.settings = settings
        self.incarnation = incarnation
        # SHARED_WORDS u64 per shard in shared memory: write only your own (``own_word``),
        # read anyone's (``word``). A restarted shard starts with its words zeroed.
        self._words = shared_words
        for i in range(SHARED_WORDS):
            self._words[shard_id * SHARED_WORDS + i] = 0
        self._control = control_sock
        self._peer_down_callbacks: list[Callable[[int], None]] = []
        self._peer_up_callbacks: list[Callable[[int], None]] = []
        self.send = messenger.send  # the hot path, without a wrapper call

    # ----- messaging ---------------------------------------------------------------------

    def register(self, name: str, handler: Handler) -> None:
        """Make ``handler`` callable by name from every shard. Register in ``setup``."""
        self.messenger.register(name, handler)

    async def submit_to(self, shard: int, name: str, *args: Any) -> Any:
        """Run handler ``name`` on ``shard`` with ``args`` (msgpack-serializable; sequences
        arrive as tuples) and return its result. A local target runs inline. Raises the
        handler's exception, or ShardUnavailable if that shard is down or dies meanwhile."""
        return await self.messenger.submit_to(shard, name, *args)

    send: Callable[..., bool]
    """``send(shard, name, *args) -> bool``: one-way message; False if the link is full (then
    ``await wait_writable(shard)`` and send again). A local target runs inline."""

    async def wait_writable(self, shard: int) -> None:
        await self.messenger.wait_writable(shard)

    async def invoke_on_all(self, name: str, *args: Any) -> list[Any]:
        """Run ``name`` on every shard; results in shard order."""
        return list(await asyncio.gather(*(self.submit_to(s, name, *args) for s in range(self.count))))

    async def map_reduce(
        self, name: str, args: Iterable[Any], reducer: Callable[[R, Any], R], initial: R
    ) -> R:
        """Run ``name(*args)`` on every shard and fold the results with ``reducer``, in shard
        order."""
        result = initial
        for value in await self.invoke_on_all(name, *args):
            result = reducer(result, value)
        return result

    def word(self, shard: int, index: int) -> int:
        """Shared word ``index`` of ``shard`` (an aligned 8-byte load: never torn)."""
        return self._words[shard * SHARED_WORDS + index]

    def set_own_word(self, index: int, value: int) -> None:
        """Publish this shard's shared word ``index`` (0 <= index < SHARED_WORDS)."""
        if not 0 <= index < SHARED_WORDS:
            raise IndexError(f"shared word index {index} out of range")
        self._words[self.id * SHARED_WORDS + index] = value

    def word_sum(self, index: int) -> int:
        """Shared word ``index`` summed over all shards."""
        words = self._words
        return sum(words[s * SHARED_WORDS + index] for s in range(self.count))

    def is_up(self, shard: int) -> bool:
        return self.messenger.is_up(shard)

    def on_peer_down(self, callback: Callable[[int], None]) -> None:
        self._peer_down_callbacks.append(callback)

    def on_peer_up(self, callback: Callable[[int], None]) -> None:
        self._peer_up_callbacks.append(callback)

    def request_shutdown(self, exit_code: int = 0) -> None:
        """Ask the supervisor to stop every shard (the whole server) and exit with ``exit_code``."""
        control.send_control(self._control, control.SHUTDOWN, exit_code)

    # ----- used by the shard main ----------------------------------------------------------

    def _peer_down(self, peer: int) -> None:
        self.messenger.peer_down(peer)
        for callback in self._peer_down_callbacks:
            callback(peer)

    def _peer_up(self, peer: int) -> None:
        self.messenger.peer_up(peer)
        for callback in self._peer_up_callbacks:
            callback(peer)


async def gather_metrics(shard: Shard) -> list[tuple[int, list[Sample]]]:
    """Every shard's samples, as (shard id, samples), read at once with map_reduce."""

    def add(acc: list[tuple[int, list[Sample]]], item: Any) -> list[tuple[int, list[Sample]]]:
        acc.append((item[0], [tuple(s) for s in item[1]]))  # type: ignore[misc]
        return acc

    return await shard.map_reduce(_METRICS_HANDLER, (), add, [])


# ----- the process main ----------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass
class ShardBoot:
    """Everything a forked shard needs from the supervisor."""

    shard_id: int
    count: int
    cpu: int | None
    layout: SharedLayout
    shared: Any  # the mmap
    doorbells: list[int]
    control_sock: socket.socket
    settings: ShardSettings
    app: ShardApp
    supervisor_pid: int
    incarnation: int


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MALLOC_MMAP_THRESHOLD = 128 * 1024


def _tune_malloc() -> None:
    """Keep glibc from raising its mmap threshold after large frees (its default "dynamic"
    threshold climbs to 32 MiB, after which every large transient buffer, such as a batch read
    from a ring, is carved from the heap and fragments it): with a fixed threshold, buffers of
    128 KiB and more are mmap'd and returned to the system on free, and the heap is trimmed, so
    a shard's RSS follows its live data."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def shard_process_main(boot: ShardBoot) -> int:
    """Run one shard until it is told to stop; return the exit status."""
    _die_with_parent()
    _tune_malloc()
    if os.getppid() != boot.supervisor_pid:
        return 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the supervisor decides
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop takes it (log reopening), below
    set_label(f"shard {boot.shard_id}")
    if boot.settings.pin_cpus and boot.cpu is not None:
        try:
            os.sched_setaffinity(0, {boot.cpu})
        except OSError as exc:
            log.warning("shard %d: cannot pin to CPU %d: %s", boot.shard_id, boot.cpu, exc)
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_run_shard(boot, loop))
    finally:
        loop.close()


async def _run_shard(boot: ShardBoot, loop: asyncio.AbstractEventLoop) -> int:
    me = boot.shard_id
    buf = memoryview(boot.shared)
    flags = boot.layout.sleeping_flags(buf)
    metrics = MetricsRegistry()
    reactor = Reactor(loop, boot.doorbells[me], flags, me, boot.settings.idle_poll_seconds, metrics)
    links = {
        peer: PeerLink(
            peer,
            boot.layout.producer(buf, me, peer),
            boot.layout.consumer(buf, peer, me),
            boot.doorbells[peer],
        )
        for peer in range(boot.count)
        if peer != me
    }
    messenger = Messenger(
        me, links, flags, reactor, loop, metrics, boot.settings.max_inflight, boot.settings.max_queued
    )
    reactor.add_poller(messenger)
    shard = Shard(
        me, boot.count, boot.cpu, messenger, reactor, metrics, boot.control_sock, boot.settings,
        boot.incarnation, boot.layout.shared_words(buf),
    )
    messenger.register(_METRICS_HANDLER, lambda: (me, metrics.collect()))
    messenger.register(_PING_HANDLER, lambda: (me, os.getpid(), boot.incarnation))

    started = loop.create_future()
    stopping = loop.create_future()

    def on_control() -> None:
        messages = control.recv_control(boot.control_sock)
        if messages is None:  # the supervisor is gone: nothing may outlive it
            os._exit(1)
        for verb, *args in messages:
            if verb == control.START:
                for peer in args[0]:
                    if peer != me:
                        shard._peer_up(peer)
                if not started.done():
                    started.set_result(None)
            elif verb == control.PEER_DOWN:
                shard._peer_down(args[0])
                control.send_control(boot.control_sock, control.PEER_DOWN_ACK, args[0])
            elif verb == control.PEER_UP:
                shard._peer_up(args[0])
            elif verb == control.STOP and not stopping.done():
                stopping.set_result(None)

    loop.add_reader(boot.control_sock.fileno(), on_control)
    def on_sigterm() -> None:
        if not stopping.done():
            stopping.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    def on_sighup() -> None:
        reopen_log_files()
        log.info("shard %d: log files reopened", me)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)

    await boot.app.setup(shard)
    control.send_control(boot.control_sock, control.READY, me)
    await asyncio.wait([started, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not stopping.done():
        await boot.app.start(shard)
        await stopping
    try:
        await asyncio.wait_for(boot.app.stop(shard), boot.settings.stop_timeout)
    except asyncio.TimeoutError:
        log.warning("shard %d: app.stop() did not finish in %.1fs", me, boot.settings.stop_timeout)
    reactor.stop()
    loop.remove_reader(boot.control_sock.fileno())
    return 0

