"""Messages between shards: calls, one-way messages, replies, batched over the rings.

Theory of operation
-------------------
Every ordered pair of shards (A, B) has one ring, A producing and B consuming (ring.py). On top of
it a :class:`PeerLink` (one per peer, per shard) carries four kinds of message, each a tuple::

    (REQUEST, call_id, handler_name, args)   run handler_name(*args) and answer
    (ONEWAY,  handler_name, [args, ...])     run handler_name(*args) for each args, no answer
    (REPLY,   call_id, result)
    (FAILURE, call_id, exception_type, message)

Batching: a message is appended to the link's ``pending`` list and the link is marked dirty;
nothing touches shared memory yet. Consecutive one-way messages to the same handler share one
ONEWAY entry (a *run*): the handler name is packed once per run, not once per message, which
halves the cost of small one-way messages on both sides. The reactor's tick (reactor.py) calls :meth:`Messenger.poll`,
which first drains every inbound ring (running handlers inline, so their replies join
``pending`` in the same tick) and then flushes each dirty link: all its pending messages are
packed as ONE msgpack array = one ring record, written, and published with one tail store.
After all links are flushed there is one fence and, per peer that was asleep, one doorbell
write. So whatever a shard sends one peer during a loop iteration goes out as one batch.

Ordering: per link, messages are packed and written in the order they were queued, and the
consumer handles records in ring order, so messages between a pair are never reordered.

Back-pressure, without unbounded queues and without deadlock:
  * calls: at most ``max_inflight`` unanswered REQUESTs per peer; later calls wait, in order,
    in the link's ``overflow`` queue (whose callers bound it: a connection stops reading).
  * one-way messages: ``send`` refuses (returns False) when the link has ``max_queued`` messages
    or ring-capacity bytes waiting locally; the sender awaits ``wait_writable``.
  * replies are never refused: their number is bounded by the peer's in-flight limit.
  * a full ring: the unwritten rest of the packed bytes waits in ``queued``; the link sets the
    ring's ``waiting`` flag before the shard sleeps and the consumer rings our doorbell when it
    frees space. Consuming never waits for producing, so two full rings cannot deadlock.

Peer failure (``peer_down``, sent by the supervisor after the peer process died): the link's
calls in flight fail with ShardUnavailable, its queues are dropped, both rings are emptied (the
dead side cannot race us), and ``epoch`` is bumped so that replies still being computed for the
dead incarnation are dropped rather than sent to its successor. ``peer_up`` reopens the link.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from functools import partial
from typing import Any, Callable

import msgpack

from .errors import ShardUnavailable, UnknownHandler, decode_exception, encode_exception
from .metrics import MetricsRegistry
from .reactor import Reactor
from .ring import FRAGMENT_HEADER_BYTES, RingConsumer, RingProducer, full_fence

__all__ = [
    "Handler",
    "ReplyCallback",
    "Messenger",
    "PeerLink",
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_MAX_QUEUED",
]

log = logging.getLogger("framework.channel")

REQUEST, ONEWAY, REPLY, FAILURE = 0, 1, 2, 3
DEFAULT_MAX_INFLIGHT = 1024
# One-way messages a link holds beyond its ring. Each holds its arguments (a forwarded set: its
# value), so this bounds what a shard keeps for a peer under a flood: with 64 connections
# flooding noreply sets of 1 KiB (-m 64, two shards) the server peaked at 155-168 MiB with 4096
# and 143-144 MiB with 512 (the rest then waits in the clients' sockets), for the same memaslap
# throughput.
DEFAULT_MAX_QUEUED = 512

Handler = Callable[..., Any]
ReplyCallback = Callable[[Any, "BaseException | None"], None]

# One packer per process, reused: msgpack.packb() makes a new Packer per call, and each one
# mallocs a 256 KiB buffer (an mmap + munmap pair per batch with our malloc settings).
_packer = msgpack.Packer(autoreset=True)
_packb = _packer.pack


_awaitable_types: dict[type, bool] = {}


def _is_awaitable(value: Any) -> bool:
    """inspect.isawaitable without its ABC check (which costs more than a small handler),
    memoized per type: on 3.11 a failed ``hasattr`` on a type raises and formats an
    AttributeError inside, which cost more than the rest of serving a small request."""
    kind = type(value)
    known = _awaitable_types.get(kind)
    if known is None:
        known = _awaitable_types[kind] = hasattr(kind, "__await__")
    return known


def _unpack(record: bytes | memoryview) -> Any:
    return msgpack.unpackb(record, use_list=False, strict_map_key=False)


class PeerLink:
    """This shard's end of the two rings it shares with one peer."""

    __slots__ = (
        "peer", "out", "inp", "doorbell_fd", "up", "epoch", "pending", "pending_count",
        "run_name", "run", "queued",
        "queued_bytes", "calls", "next_call_id", "overflow", "space_waiters",
        "dirty", "blocked",
    )

    def __init__(self, peer: int, out: RingProducer, inp: RingConsumer, doorbell_fd: int) -> None:
        self.peer = peer
        self.out = out
        self.inp = inp
        self.doorbell_fd = doorbell_fd
        self.up = False
        self.epoch = 0
        self.pending: list[tuple[Any, ...]] = []
        self.pending_count = 0  # messages in ``pending`` (a run holds several)
        self.run_name: str | None = None  # handler of the open one-way run ending ``pending``
        self.run: list[tuple[Any, ...]] = []
        self.queued: deque[memoryview] = deque()
        self.queued_bytes = 0
        self.calls: dict[int, ReplyCallback] = {}
        self.next_call_id = 0
        # calls made while ``max_inflight`` are in flight wait here, in order
        self.overflow: deque[tuple[str, tuple[Any, ...], ReplyCallback]] = deque()
        self.space_waiters: deque[asyncio.Future[None]] = deque()
        self.dirty = False
        self.blocked = False


class Messenger:
    """The message layer of one shard; also the reactor poller for its inbound rings."""

    def __init__(
        self,
        shard_id: int,
        links: dict[int, PeerLink],
        sleeping_flags: memoryview,
        reactor: Reactor,
        loop: asyncio.AbstractEventLoop,
        metrics: MetricsRegistry,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self.shard_id = shard_id
        self._links = links
        self._up_links: list[PeerLink] = []
        self._dirty: list[PeerLink] = []
        self._flags = sleeping_flags
        self._reactor = reactor
        self._loop = loop
        self._handlers: dict[str, Handler] = {}
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self._m_batches_out = metrics.counter("channel_batches_sent_total", "Batches published")
        self._m_msgs_out = metrics.counter("channel_messages_sent_total", "Messages sent to peers")
        self._m_msgs_in = metrics.counter("channel_messages_received_total", "Messages from peers")
        self._m_batches_in = metrics.counter("channel_batches_received_total", "Batches consumed")
        self._m_doorbells = metrics.counter("channel_doorbells_rung_total", "Doorbell writes")
        self._m_full = metrics.counter(
            "channel_ring_full_total", "Flushes that found the ring full and kept bytes locally"
        )
        self._m_handler_errors = metrics.counter(
            "channel_oneway_errors_total", "One-way messages whose handler raised or was unknown"
        )
        for peer, link in links.items():  # read when collected: nothing to update meanwhile
            labels = {"peer": str(peer)}
            out = link.out
            metrics.gauge(
                "channel_ring_used_bytes", "Bytes written to the ring to this peer and not yet consumed",
                labels, read=lambda out=out: out.capacity - out.free_bytes(),  # type: ignore[misc]
            )
            metrics.gauge(
                "channel_queued_bytes", "Packed bytes waiting for room in the ring to this peer",
                labels, read=lambda link=link: link.queued_bytes,  # type: ignore[misc]
            )
            metrics.gauge(
                "channel_calls_in_flight", "Calls to this peer awaiting their reply",
                labels, read=lambda link=link: len(link.calls),  # type: ignore[misc]
            )

    # ----- registration and link state ---------------------------------------------------

    def register(self, name: str, handler: Handler) -> None:
        if name in self._handlers:
            raise ValueError(f"handler {name!r} is already registered")
        self._handlers[name] = handler

    def link(self, shard: int) -> PeerLink:
        try:
            return self._links[shard]
        except KeyError:
            raise ValueError(f"no shard {shard}") from None

    def is_up(self, shard: int) -> bool:
        return shard == self.shard_id or self.link(shard).up

    def peer_up(self, shard: int) -> None:
        link = self.link(shard)
        if not link.up:
            link.up = True
            self._up_links.append(link)
            self._reactor.kick()

    def peer_down(self, shard: int) -> None:
        """The peer process is dead: fail what waits on it and empty both rings."""
        link = self.link(shard)
        if link.up:
            self._up_links.remove(link)
        link.up = False
        link.epoch += 1
        callbacks = list(link.calls.values())
        link.calls.clear()
        parked = [entry[2] for entry in link.overflow]
        link.overflow.clear()
        link.pending.clear()
        link.pending_count = 0
        link.run_name = None
        link.queued.clear()
        link.queued_bytes = 0
        link.blocked = False
        if link.dirty:
            link.dirty = False
            self._dirty.remove(link)
        link.out.discard_unread()
        link.inp.discard_unread()
        for callback in callbacks:
            self._run_callback(callback, None, ShardUnavailable(shard, "shard died with the call in flight"))
        for callback in parked:
            self._run_callback(callback, None, ShardUnavailable(shard, "shard died before the call was sent"))
        while link.space_waiters:
            fut = link.space_waiters.popleft()
            if not fut.done():
                fut.set_exception(ShardUnavailable(shard))

    # ----- sending ---------------------------------------------------------------------

    def _queue(self, link: PeerLink, message: tuple[Any, ...]) -> None:
        link.pending.append(message)
        link.pending_count += 1
        link.run_name = None
        if not link.dirty:
            link.dirty = True
            self._dirty.append(link)
            self._reactor.kick()

    async def submit_to(self, shard: int, name: str, *args: Any) -> Any:
        """Run handler ``name`` on ``shard`` and return its result (or raise its exception)."""
        if shard == self.shard_id:
            result = self.local_handler(name)(*args)
            if _is_awaitable(result):
                result = await result
            return result
        fut: asyncio.Future[Any] = self._loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if not fut.done():
                if error is None:
                    fut.set_result(result)
                else:
                    fut.set_exception(error)

        self.call(shard, name, args, settle)
        return await fut

    def call(self, shard: int, name: str, args: tuple[Any, ...], on_reply: ReplyCallback) -> None:
        """Run handler ``name(*args)`` on remote ``shard``; ``on_reply(result, None)`` or
        ``on_reply(None, exception)`` runs when the answer arrives (inside the poller: keep it
        short, never raise). At most ``max_inflight`` calls per peer are in flight; later ones
        wait in order. Raises ShardUnavailable at once if the peer is down."""
        link = self._links.get(shard)
        if link is None or not link.up:
            raise ShardUnavailable(self.link(shard).peer)
        if len(link.calls) >= self.max_inflight:
            link.overflow.append((name, args, on_reply))
            return
        call_id = link.next_call_id
        link.next_call_id = call_id + 1
        link.calls[call_id] = on_reply
        self._queue(link, (REQUEST, call_id, name, args))

    def writable(self, shard: int) -> bool:
        """True if a one-way message to ``shard`` would be accepted now."""
        if shard == self.shard_id:
            return True
        link = self.link(shard)
        return link.up and self._has_room(link)

    def _has_room(self, link: PeerLink) -> bool:
        # never let a one-way message overtake a call parked in ``overflow``
        return (
            link.pending_count < self.max_queued
            and link.queued_bytes < link.out.capacity
            and not link.overflow
        )

    def send(self, shard: int, name: str, *args: Any) -> bool:
        """Queue a one-way message; False (nothing queued) if the link is full: await
        :meth:`wait_writable` and try again. A local target runs inline."""
        # the hot path of one-way traffic: kept flat on purpose (no helper calls)
        link = self._links.get(shard)
        if link is None or not link.up:
            return self._send_slow(shard, name, args)
        if (
            link.pending_count >= self.max_queued
            or link.queued_bytes >= link.out.capacity
            or link.overflow
        ):
            return False
        link.pending_count += 1
        if link.run_name == name:
            link.run.append(args)
            return True
        run = [args]
        link.pending.append((ONEWAY, name, run))
        link.run_name = name
        link.run = run
        if not link.dirty:
            link.dirty = True
            self._dirty.append(link)
            self._reactor.kick()
        return True

    def _send_slow(self, shard: int, name: str, args: tuple[Any, ...]) -> bool:
        if shard == self.shard_id:
            result = self.local_handler(name)(*args)
            if _is_awaitable(result):
                self._loop.create_task(result).add_done_callback(self._log_oneway_failure)
            return True
        link = self.link(shard)  # raises for a shard that does not exist
        raise ShardUnavailable(link.peer)

    async def wait_writable(self, shard: int) -> None:
        while not self.writable(shard):
            link = self.link(shard)
            if not link.up:
                raise ShardUnavailable(shard)
            waiter = self._loop.create_future()
            link.space_waiters.append(waiter)
            await waiter

    def local_handler(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandler(f"no handler {name!r} on shard {self.shard_id}") from None

    # ----- the poller --------------------------------------------------------------------

    def poll(self) -> bool:
        work = False
        for link in self._up_links:
            records = link.inp.read()
            if records is None:
                continue
            work = True
            full_fence()  # our head store before the load of the producer's waiting flag
            if link.inp.producer_waiting():
                self._ring(link.doorbell_fd)
            for record in records:
                self._dispatch(link, _unpack(record))
        if self._dirty and self._flush_all():
            work = True
        return work

    def prepare_sleep(self) -> None:
        for link in self._dirty:
            if link.blocked:
                link.out.set_waiting(True)

    def has_pending_work(self) -> bool:
        for link in self._up_links:
            if link.inp.has_data():
                return True
        for link in self._dirty:
            if not link.blocked or link.out.free_bytes() > FRAGMENT_HEADER_BYTES:
                return True
        return False

    def _ring(self, fd: int) -> None:
        self._m_doorbells.value += 1
        os.eventfd_write(fd, 1)

    def _flush_all(self) -> bool:
        progressed = False
        published: list[PeerLink] = []
        still_dirty: list[PeerLink] = []
        for link in self._dirty:
            if self._flush(link):
                progressed = True
                published.append(link)
            if link.queued:
                still_dirty.append(link)
            else:
                link.dirty = False
        self._dirty = still_dirty
        if published:
            full_fence()  # our tail stores before the loads of the peers' sleeping flags
            flags = self._flags
            for link in published:
                if flags[link.peer]:
                    self._ring(link.doorbell_fd)
        return progressed

    def _flush(self, link: PeerLink) -> bool:
        """Pack the link's pending messages and write what fits; True if anything was
        published."""
        if link.pending:
            batch = link.pending
            link.pending = []
            link.run_name = None
            self._m_msgs_out.value += link.pending_count
            link.pending_count = 0
            try:
                data = _packb(batch)
            except (TypeError, ValueError, OverflowError):
                data = self._pack_salvaging(link, batch)
            self._m_batches_out.value += 1
            if not link.queued and link.out.write(data, True) == len(data):  # type: ignore[arg-type]
                link.out.publish()  # the common case: nothing backed up and the batch fits
                if link.space_waiters:
                    self._wake_space_waiters(link)
                return True
            if link.queued:
                link.queued.append(memoryview(data))
                link.queued_bytes += len(data)
            else:  # part of it went in: the rest waits
                link.queued.append(memoryview(data)[link.out.last_written :])
                link.queued_bytes += len(data) - link.out.last_written
        out = link.out
        queued = link.queued
        while queued:
            chunk = queued[0]
            written = out.write(chunk, final=True)
            link.queued_bytes -= written
            if written == len(chunk):
                queued.popleft()
            else:
                queued[0] = chunk[written:]
                if not link.blocked:
                    link.blocked = True
                    self._m_full.value += 1
                break
        else:
            if link.blocked:
                link.blocked = False
                out.set_waiting(False)
        if link.space_waiters and self._has_room(link):
            self._wake_space_waiters(link)
        if out.has_unpublished():
            out.publish()
            return True
        return False

    def _pack_salvaging(self, link: PeerLink, batch: list[tuple[Any, ...]]) -> bytes:
        """Pack message by message; a message that cannot be packed is replaced (a reply
        becomes a FAILURE) or dropped with its caller failed, so one bad value cannot sink the
        batch."""
        parts: list[bytes] = []
        for message in batch:
            try:
                parts.append(_packb(message))
                continue
            except (TypeError, ValueError, OverflowError) as exc:
                error = exc
            kind = message[0]
            if kind == REPLY:
                parts.append(_packb((FAILURE, message[1], "TypeError", f"result not serializable: {error}")))
            elif kind == REQUEST:
                callback = link.calls.pop(message[1], None)
                if callback is not None:
                    self._run_callback(callback, None, TypeError(f"arguments not serializable: {error}"))
            else:
                packable = []
                for args in message[2]:
                    try:
                        _packb(args)
                        packable.append(args)
                    except (TypeError, ValueError, OverflowError) as exc:
                        self._m_handler_errors.value += 1
                        log.error("dropped one-way message %r: arguments not serializable: %s", message[1], exc)
                if packable:
                    parts.append(_packb((ONEWAY, message[1], packable)))
        return msgpack.Packer().pack_array_header(len(parts)) + b"".join(parts)

    # ----- receiving ---------------------------------------------------------------------

    def _dispatch(self, link: PeerLink, batch: tuple[tuple[Any, ...], ...]) -> None:
        handlers = self._handlers
        self._m_batches_in.value += 1
        self._m_msgs_in.value += len(batch)
        for message in batch:
            kind = message[0]
            if kind == ONEWAY:
                handler = handlers.get(message[1])
                if handler is None:
                    self._m_handler_errors.value += len(message[2])
                    log.error("one-way messages for unknown handler %r", message[1])
                    continue
                self._m_msgs_in.value += len(message[2]) - 1  # a run is several messages
                for args in message[2]:
                    try:
                        result = handler(*args)
                    except Exception:
                        self._m_handler_errors.value += 1
                        log.exception("one-way handler %r raised", message[1])
                        continue
                    if result is not None and _is_awaitable(result):
                        self._loop.create_task(result).add_done_callback(self._log_oneway_failure)
            elif kind == REPLY:  # the hot path of calls: kept inline
                callback = link.calls.pop(message[1], None)
                if callback is not None:
                    try:
                        callback(message[2], None)
                    except Exception:
                        log.exception("reply callback raised")
                if link.overflow:
                    self._send_parked(link)
            elif kind == REQUEST:
                self._serve(link, message[1], message[2], message[3])
            elif kind == FAILURE:
                self._settle(link, message[1], None, decode_exception(message[2], message[3]))
            else:
                log.error("unknown message kind %r from shard %d", kind, link.peer)

    def _serve(self, link: PeerLink, call_id: int, name: str, args: tuple[Any, ...]) -> None:
        handler = self._handlers.get(name)
        try:
            if handler is None:
                raise UnknownHandler(f"no handler {name!r} on shard {self.shard_id}")
            result = handler(*args)
        except Exception as exc:
            self._queue(link, (FAILURE, call_id, *encode_exception(exc)))
            return
        if result is not None and _is_awaitable(result):
            task = self._loop.create_task(result)  # type: ignore[arg-type]
            task.add_done_callback(partial(self._reply_later, link, link.epoch, call_id))
        else:  # _queue inlined: replies are half of all messages
            link.pending.append((REPLY, call_id, result))
            link.pending_count += 1
            link.run_name = None
            if not link.dirty:
                link.dirty = True
                self._dirty.append(link)
                self._reactor.kick()

    def _reply_later(self, link: PeerLink, epoch: int, call_id: int, task: asyncio.Task[Any]) -> None:
        if link.epoch != epoch or not link.up:
            return  # the caller's incarnation is gone
        if task.cancelled():
            self._queue(link, (FAILURE, call_id, "CancelledError", "handler was cancelled"))
        elif task.exception() is not None:
            self._queue(link, (FAILURE, call_id, *encode_exception(task.exception())))  # type: ignore[arg-type]
        else:
            self._queue(link, (REPLY, call_id, task.result()))

    def _settle(self, link: PeerLink, call_id: int, result: Any, error: BaseException | None) -> None:
        callback = link.calls.pop(call_id, None)
        if callback is not None:
            self._run_callback(callback, result, error)
        if link.overflow:
            self._send_parked(link)

    def _send_parked(self, link: PeerLink) -> None:
        """A call slot freed up: send the oldest parked call."""
        if link.up:
            name, args, parked = link.overflow.popleft()
            call_id = link.next_call_id
            link.next_call_id = call_id + 1
            link.calls[call_id] = parked
            self._queue(link, (REQUEST, call_id, name, args))
            if not link.overflow and link.space_waiters:
                self._wake_space_waiters(link)

    @staticmethod
    def _wake_space_waiters(link: PeerLink) -> None:
        waiters = link.space_waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    @staticmethod
    def _run_callback(callback: ReplyCallback, result: Any, error: BaseException | None) -> None:
        try:
            callback(result, error)
        except Exception:
            log.exception("reply callback raised")

    @staticmethod
    def _log_oneway_failure(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("one-way handler failed", exc_info=task.exception())

