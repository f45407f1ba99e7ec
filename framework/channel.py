"""Messages between shards: calls, one-way messages, replies, batched over the rings.

Theory of operation
-------------------
Every ordered pair of shards (A, B) has one ring, A producing and B consuming (ring.py). On top of
it a :class:`PeerLink` (one per peer, per shard) carries ring *records* of two families, told
apart by their first byte:

* **fixed records** (first byte < 0x80), the hot path: a call or one-way message to a handler
  registered under a small integer id, carrying two byte strings and three integers, and its
  reply. Little-endian, no padding, parsed in place from the ring's memory::

      FIXED_CALL 0x01 / FIXED_SEND 0x02        (FIXED_HEADER_BYTES = 40)
        0  u8   kind
        1  u8   handler id (0..255, see register_fixed)
        2  u16  flags: bit 0 = a value follows (else the handler gets value=None)
        4  u32  key length
        8  u64  call id (0 in a FIXED_SEND)
       16  i64  a
       24  i64  b
       32  i64  c
       40  key bytes, then value bytes: value length = record length - 40 - key length
      FIXED_REPLY 0x03                          (FIXED_REPLY_HEADER_BYTES = 16)
        0  u8   kind, 1..7 zero
        8  u64  call id
       16  the reply's bytes: length = record length - 16

  The record length comes from the ring's fragment header, so no field repeats it.

* **msgpack batches** (first byte 0x90..0x9f, 0xdc or 0xdd: a msgpack array): everything else,
  several messages per record, each a tuple::

      (REQUEST, call_id, handler_name, args)   run handler_name(*args) and answer
      (ONEWAY,  handler_name, [args, ...])     run handler_name(*args) for each args, no answer
      (REPLY,   call_id, result)
      (FAILURE, call_id, exception_type, message)   also answers a fixed call that failed

Rules and invariants:

1. Order: per link, messages reach the ring in the order they were made, whatever their family,
   and the consumer handles records in ring order. Fixed records are written into the ring
   *at once* (unpublished, see 3); msgpack messages wait in ``pending`` and are packed as one
   batch = one record at flush time, or earlier, just before a fixed record is written behind
   them (so a fixed call never overtakes an earlier msgpack call). Consecutive one-way
   msgpack messages to one handler share one ONEWAY entry (a *run*, the name packed once).
2. One copy in, one copy out: a fixed record's key and value are copied once, from the
   caller's bytes into the ring (:meth:`RingProducer.reserve`); the consumer reads the header
   from the ring's memory and copies key and value once, into the ``bytes`` the handler gets
   (a reply: into the ``bytes`` the callback gets). Only a record that does not fit in place
   (a full ring, wrap-around, bytes already waiting in ``queued``, or bigger than the ring:
   then it is fragmented) is built in a local buffer first and written with the copying path.
3. Batching and doorbells: nothing is visible to the peer until the reactor's tick
   (reactor.py) calls :meth:`Messenger.poll`, which first drains every inbound ring (running
   handlers inline, so their replies join the same tick) and then flushes each dirty link:
   pack ``pending``, write what waits in ``queued``, publish with one tail store. After all
   links are flushed: one fence and, per peer whose sleeping flag is set, one doorbell write.
   A doorbell is never written to an awake peer.
4. Calls and call ids: fixed and msgpack calls share a link's call ids, in-flight limit and
   ``calls`` table; a call is answered exactly once (REPLY, FIXED_REPLY or FAILURE), or failed
   locally with ShardUnavailable when the peer dies.

Back-pressure, without unbounded queues and without deadlock:
  * calls: at most ``max_inflight`` unanswered calls per peer; later calls wait, in order,
    in the link's ``overflow`` queue (whose callers bound it: a connection stops reading).
  * one-way messages: ``send``/``send_fixed`` refuse (return False) when the link has
    ``max_queued`` messages pending or ring-capacity bytes waiting locally, or calls parked; the
    sender awaits ``wait_writable``.
  * replies are never refused: their number is bounded by the peer's in-flight limit.
  * a full ring: the unwritten rest of a record waits in ``queued``; the link sets the ring's
    ``waiting`` flag before the shard sleeps and the consumer rings our doorbell when it frees
    space. Consuming never waits for producing, so two full rings cannot deadlock.

Peer failure (``peer_down``, sent by the supervisor after the peer process died): the link's
calls in flight fail with ShardUnavailable, its queues are dropped, both rings are emptied (the
dead side cannot race us), and ``epoch`` is bumped so that replies still being computed for the
dead incarnation are dropped rather than sent to its successor. ``peer_up`` reopens the link.

Counters (per shard): ``channel_messages_{sent,received}_total`` count every message, fixed
ones included; ``channel_fixed_messages_{sent,received}_total`` the fixed ones alone (calls,
one-way and replies), so doorbells (``channel_doorbells_rung_total``) and wake-ups
(``reactor_doorbell_wakeups_total``) per forwarded operation can be derived.

Compiled (channel.pxd), the links and the messenger are ``cdef class``es with C counters, and
the fixed records are encoded and parsed with ``memcpy`` on raw pointers into the ring.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections import deque
from functools import partial
from typing import Any, Callable, Final, Iterable

import msgpack

from .errors import ShardUnavailable, UnknownHandler, decode_exception, encode_exception
from .metrics import MetricsRegistry
from .reactor import Reactor
from .ring import FRAGMENT_HEADER_BYTES, RingConsumer, RingProducer, full_fence

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from . import cython_shim as cython  # type: ignore[no-redef]

__all__ = [
    "Handler",
    "FixedHandler",
    "ReplyCallback",
    "ReplyHandler",
    "FixedTarget",
    "Messenger",
    "PeerLink",
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_MAX_QUEUED",
    "MAX_FIXED_HANDLERS",
    "FIXED_HEADER_BYTES",
    "FIXED_REPLY_HEADER_BYTES",
    "FIXED_VIA_MSGPACK",
    "FIXED_SEND_VIA_MSGPACK",
]

log = logging.getLogger("framework.channel")

REQUEST, ONEWAY, REPLY, FAILURE = 0, 1, 2, 3
_FIXED_CALL, _FIXED_SEND, _FIXED_REPLY = 0x01, 0x02, 0x03
_MSGPACK_MIN = 0x80  # a record whose first byte is >= this is a msgpack batch
_VALUE_PRESENT = 1
MAX_FIXED_HANDLERS: Final = 256  # fixed handler ids are 0..255 (one byte)
FIXED_HEADER_BYTES: Final = 40
FIXED_REPLY_HEADER_BYTES: Final = 16
_FH = FIXED_HEADER_BYTES  # typed twins (channel.pxd)
_MAX_IDS = MAX_FIXED_HANDLERS
_RH = FIXED_REPLY_HEADER_BYTES
_fixed_header = struct.Struct("<BBHIQqqq")
_reply_header = struct.Struct("<B7xQ")
assert _fixed_header.size == FIXED_HEADER_BYTES and _reply_header.size == FIXED_REPLY_HEADER_BYTES

DEFAULT_MAX_INFLIGHT = 1024
FIXED_VIA_MSGPACK: Final = "framework.fixed"  # a fixed handler's call sent as msgpack (see Messenger)
FIXED_SEND_VIA_MSGPACK: Final = "framework.fixed_send"  # ... and a one-way fixed message (its result is dropped)
# One-way messages a link holds beyond its ring. Each holds its arguments (a forwarded set: its
# value), so this bounds what a shard keeps for a peer under a flood: with 64 connections
# flooding noreply sets of 1 KiB (-m 64, two shards) the server peaked at 155-168 MiB with 4096
# and 143-144 MiB with 512 (the rest then waits in the clients' sockets), for the same memaslap
# throughput.
DEFAULT_MAX_QUEUED = 512

Handler = Callable[..., Any]
FixedHandler = Callable[[bytes, "bytes | None", int, int, int], Any]
"""``handler(key, value, a, b, c) -> bytes``: key is bytes, value bytes or None, a/b/c are
signed 64-bit integers; a call's handler returns the reply as bytes (bytearray and memoryview
are copied into bytes; an awaitable resolving to bytes also works, at the cost of a task)."""
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


_INT64_MIN: Final = -(1 << 63)
_INT64_END: Final = 1 << 63
_BYTES_LIKE: Final = (bytes, bytearray, memoryview)


def _check_fixed(handler_id: int, key: Any, value: Any, a: int, b: int, c: int) -> None:
    """What a fixed record would refuse, refused the same when it travels as msgpack."""
    if not 0 <= handler_id < MAX_FIXED_HANDLERS:
        raise ValueError(f"fixed handler id must be in 0..{MAX_FIXED_HANDLERS - 1}, got {handler_id}")
    if not isinstance(key, _BYTES_LIKE) or not (value is None or isinstance(value, _BYTES_LIKE)):
        raise TypeError("a fixed message's key and value must be bytes")
    if not (_INT64_MIN <= a < _INT64_END and _INT64_MIN <= b < _INT64_END and _INT64_MIN <= c < _INT64_END):
        raise OverflowError("a fixed message's integers are signed 64-bit")


def _unpack(record: bytes | memoryview) -> Any:
    return msgpack.unpackb(record, use_list=False, strict_map_key=False)


def _as_bytes(data: Any) -> bytes:
    """Key or value of a fixed record as something the compiled copy takes (bytes, bytearray);
    raises TypeError for what is not bytes-like. Called before any ring space is reserved."""
    if type(data) is bytes or type(data) is bytearray:
        return data  # type: ignore[no-any-return]
    return bytes(memoryview(data))


# ----- compiled-only helpers: raw little-endian loads and stores (x86-64 and ARM are LE) ------


def _load_u64(p: Any) -> int:
    x = 0
    memcpy(cython.address(x), p, 8)  # noqa: F821 - cimported in channel.pxd
    return x


def _load_i64(p: Any) -> int:
    x = 0
    memcpy(cython.address(x), p, 8)  # noqa: F821
    return x


def _load_u32(p: Any) -> int:
    x = 0
    memcpy(cython.address(x), p, 4)  # noqa: F821
    return x


def _store_request_header(p: Any, kind: int, handler_id: int, flags: int, klen: int,
                          call_id: int, a: int, b: int, c: int) -> None:
    p[0] = kind
    p[1] = handler_id
    memcpy(p + 2, cython.address(flags), 2)  # noqa: F821
    memcpy(p + 4, cython.address(klen), 4)  # noqa: F821
    memcpy(p + 8, cython.address(call_id), 8)  # noqa: F821
    memcpy(p + 16, cython.address(a), 8)  # noqa: F821
    memcpy(p + 24, cython.address(b), 8)  # noqa: F821
    memcpy(p + 32, cython.address(c), 8)  # noqa: F821


def _store_reply_header(p: Any, call_id: int) -> None:
    memset(p, 0, 8)  # noqa: F821
    p[0] = _FIXED_REPLY
    memcpy(p + 8, cython.address(call_id), 8)  # noqa: F821


class ReplyHandler:
    """A reply callback the channel reaches with a C call (compiled): subclass it and define
    ``on_reply(result, error)``. Any other callable taking ``(result, error)`` works too,
    through an ordinary Python call; this one is also callable so."""

    __slots__ = ()

    def on_reply(self, result: Any, error: BaseException | None) -> None:
        raise NotImplementedError

    def __call__(self, result: Any, error: BaseException | None) -> None:
        self.on_reply(result, error)


class FixedTarget:
    """Several fixed handlers served by one object the channel reaches with a C call
    (compiled): subclass it, define ``run_fixed(handler_id, key, value, a, b, c)`` returning
    the reply bytes, and hand it to :meth:`Messenger.register_fixed_target`."""

    __slots__ = ()

    def run_fixed(self, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        raise NotImplementedError


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
        self.queued: deque[memoryview] = deque()  # records (or their rests) waiting for room
        self.queued_bytes = 0
        self.calls: dict[int, ReplyCallback] = {}
        self.next_call_id = 1
        # calls made while ``max_inflight`` are in flight wait here, in order: (name, args,
        # on_reply) for msgpack calls, (handler id, (key, value, a, b, c), on_reply) for fixed
        self.overflow: deque[tuple[Any, tuple[Any, ...], ReplyCallback]] = deque()
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
        fixed_records: bool | None = None,
    ) -> None:
        self.shard_id = shard_id
        # Fixed records pay off compiled; interpreted, building them in Python costs more than
        # msgpack's C packer, so call_fixed/send_fixed travel as msgpack messages to
        # FIXED_VIA_MSGPACK instead (same handlers, same order and failure rules). Every shard
        # of a server runs the same core, so both ends agree; tests may choose.
        self.fixed_records = bool(cython.compiled) if fixed_records is None else fixed_records
        self._links = links
        self._up_links: list[PeerLink] = []
        self._dirty: list[PeerLink] = []
        self._flags = sleeping_flags
        self._reactor = reactor
        self._loop = loop
        self._handlers: dict[str, Handler] = {}
        self._fixed_handlers: list[FixedHandler | None] = [None] * MAX_FIXED_HANDLERS
        self._fixed_target: FixedTarget | None = None  # serves the ids marked in _by_target
        self._by_target = bytearray(MAX_FIXED_HANDLERS)
        self._handlers[FIXED_VIA_MSGPACK] = self._run_fixed
        self._handlers[FIXED_SEND_VIA_MSGPACK] = self._run_fixed_send
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.batches_out = self.batches_in = self.msgs_out = self.msgs_in = 0
        self.fixed_out = self.fixed_in = self.doorbells = self.ring_full = self.handler_errors = 0
        self._register_metrics(metrics)

    def _register_metrics(self, metrics: MetricsRegistry) -> None:
        # plain integers on the hot path, read only when collected
        counters: list[tuple[str, str, Callable[[], int]]] = [
            ("channel_batches_sent_total", "msgpack batches written to the rings",
             lambda: self.batches_out),
            ("channel_messages_sent_total", "Messages sent to peers (fixed ones included)",
             lambda: self.msgs_out + self.fixed_out),
            ("channel_messages_received_total", "Messages from peers (fixed ones included)",
             lambda: self.msgs_in + self.fixed_in),
            ("channel_batches_received_total", "msgpack batches consumed", lambda: self.batches_in),
            ("channel_fixed_messages_sent_total", "Fixed records sent: calls, one-way, replies",
             lambda: self.fixed_out),
            ("channel_fixed_messages_received_total", "Fixed records received", lambda: self.fixed_in),
            ("channel_doorbells_rung_total", "Doorbell writes", lambda: self.doorbells),
            ("channel_ring_full_total", "Flushes that found the ring full and kept bytes locally",
             lambda: self.ring_full),
            ("channel_oneway_errors_total", "One-way messages whose handler raised or was unknown",
             lambda: self.handler_errors),
        ]
        for name, help_text, read in counters:
            metrics.counter_func(name, help_text, None, read)
        for peer, link in self._links.items():  # read when collected: nothing to update meanwhile
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

    def register_fixed(self, handler_id: int, handler: FixedHandler) -> None:
        """Make ``handler(key, value, a, b, c)`` callable by ``call_fixed``/``send_fixed``
        under ``handler_id`` (0..255) from every shard. Register in ``setup``."""
        if not 0 <= handler_id < MAX_FIXED_HANDLERS:
            raise ValueError(f"fixed handler id must be in 0..{MAX_FIXED_HANDLERS - 1}, got {handler_id}")
        if self._fixed_handlers[handler_id] is not None:
            raise ValueError(f"fixed handler {handler_id} is already registered")
        self._fixed_handlers[handler_id] = handler

    def register_fixed_target(self, target: FixedTarget, handler_ids: Iterable[int]) -> None:
        """Let the fixed calls that arrive for ``handler_ids`` (registered already) run as
        ``target.run_fixed(handler_id, key, value, a, b, c)``: compiled, one C call taking C
        integers, where a registered handler is a Python call with three int objects. It must
        do what those handlers do, and return bytes."""
        if self._fixed_target is not None and self._fixed_target is not target:
            raise ValueError("another fixed target is registered")
        for handler_id in handler_ids:
            if not 0 <= handler_id < MAX_FIXED_HANDLERS or self._fixed_handlers[handler_id] is None:
                raise ValueError(f"fixed handler {handler_id} is not registered")
            self._by_target[handler_id] = 1
        self._fixed_target = target

    def link(self, shard: int) -> PeerLink:
        try:
            return self._links[shard]  # type: ignore[no-any-return]
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

    # ----- sending: msgpack messages -----------------------------------------------------

    def _mark_dirty(self, link: PeerLink) -> None:
        if not link.dirty:
            link.dirty = True
            self._dirty.append(link)
            self._reactor.kick()

    def _queue(self, link: PeerLink, message: tuple[Any, ...]) -> None:
        link.pending.append(message)
        link.pending_count += 1
        link.run_name = None
        self._mark_dirty(link)

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

    def _open_link(self, shard: int) -> PeerLink:
        link = self._links.get(shard)
        if link is None or not link.up:
            raise ShardUnavailable(self.link(shard).peer)
        return link  # type: ignore[no-any-return]

    def _next_call(self, link: PeerLink, on_reply: ReplyCallback) -> int:
        call_id = link.next_call_id
        link.next_call_id = call_id + 1
        link.calls[call_id] = on_reply
        return call_id  # type: ignore[no-any-return]

    def call(self, shard: int, name: str, args: tuple[Any, ...], on_reply: ReplyCallback) -> None:
        """Run handler ``name(*args)`` on remote ``shard``; ``on_reply(result, None)`` or
        ``on_reply(None, exception)`` runs when the answer arrives (inside the poller: keep it
        short, never raise). At most ``max_inflight`` calls per peer are in flight; later ones
        wait in order. Raises ShardUnavailable at once if the peer is down."""
        link = self._open_link(shard)
        if len(link.calls) >= self.max_inflight:
            link.overflow.append((name, args, on_reply))
            return
        self._queue(link, (REQUEST, self._next_call(link, on_reply), name, args))

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
        self._mark_dirty(link)
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
            return self._handlers[name]  # type: ignore[no-any-return]
        except KeyError:
            raise UnknownHandler(f"no handler {name!r} on shard {self.shard_id}") from None

    def local_fixed_handler(self, handler_id: int) -> FixedHandler:
        handler = self._fixed_handlers[handler_id] if 0 <= handler_id < MAX_FIXED_HANDLERS else None
        if handler is None:
            raise UnknownHandler(f"no fixed handler {handler_id} on shard {self.shard_id}")
        return handler  # type: ignore[no-any-return]

    # ----- sending: fixed records --------------------------------------------------------

    def call_fixed(self, shard: int, handler_id: int, key: bytes, value: bytes | None,
                   a: int, b: int, c: int, on_reply: ReplyCallback) -> None:
        """Run fixed handler ``handler_id(key, value, a, b, c)`` on ``shard``; then
        ``on_reply(reply_bytes, None)`` or ``on_reply(None, exception)``, as :meth:`call`
        (same in-flight limit, order and failure rules). A local target runs inline, the
        callback included."""
        if shard == self.shard_id:
            self._call_fixed_local(handler_id, key, value, a, b, c, on_reply)
            return
        if not self.fixed_records:
            _check_fixed(handler_id, key, value, a, b, c)
            self.call(shard, FIXED_VIA_MSGPACK, (handler_id, key, value, a, b, c), on_reply)
            return
        link = self._open_link(shard)
        if not 0 <= handler_id < _MAX_IDS:
            raise ValueError(f"fixed handler id must be in 0..{_MAX_IDS - 1}, got {handler_id}")
        if len(link.calls) >= self.max_inflight:
            link.overflow.append((handler_id, (key, value, a, b, c), on_reply))
            return
        call_id = self._next_call(link, on_reply)
        try:
            self._put_request(link, _FIXED_CALL, handler_id, call_id, key, value, a, b, c)
        except BaseException:
            del link.calls[call_id]
            raise

    def send_fixed(self, shard: int, handler_id: int, key: bytes, value: bytes | None,
                   a: int, b: int, c: int) -> bool:
        """One-way fixed message; False (nothing queued) when the link is full, as
        :meth:`send`. A local target runs inline."""
        link = self._links.get(shard)
        if link is None or not link.up:
            if shard == self.shard_id:
                self.local_fixed_handler(handler_id)(key, value, a, b, c)
                return True
            raise ShardUnavailable(self.link(shard).peer)
        if not self.fixed_records:
            _check_fixed(handler_id, key, value, a, b, c)
            return self.send(shard, FIXED_SEND_VIA_MSGPACK, handler_id, key, value, a, b, c)
        if not 0 <= handler_id < _MAX_IDS:
            raise ValueError(f"fixed handler id must be in 0..{_MAX_IDS - 1}, got {handler_id}")
        if (
            link.pending_count >= self.max_queued
            or link.queued_bytes >= link.out.capacity
            or link.overflow
        ):
            return False
        self._put_request(link, _FIXED_SEND, handler_id, 0, key, value, a, b, c)
        return True

    def _run_fixed(self, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int) -> Any:
        """FIXED_VIA_MSGPACK: a fixed handler's call that came as a msgpack message."""
        handler = self._fixed_handlers[handler_id]  # the id was checked where the call was made
        if handler is None:
            raise UnknownHandler(f"no fixed handler {handler_id} on shard {self.shard_id}")
        result = handler(key, value, a, b, c)
        if type(result) is not bytes and not isinstance(result, _BYTES_LIKE) and not _is_awaitable(result):
            raise TypeError(f"fixed handler {handler_id} must return bytes, not {type(result).__name__}")
        return result

    def _run_fixed_send(self, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int) -> Any:
        """FIXED_SEND_VIA_MSGPACK: a one-way fixed message that came as msgpack (whatever the
        handler returns is dropped, as for a FIXED_SEND record)."""
        handler = self._fixed_handlers[handler_id]
        if handler is None:
            raise UnknownHandler(f"no fixed handler {handler_id} on shard {self.shard_id}")
        return handler(key, value, a, b, c)

    def _call_fixed_local(self, handler_id: int, key: bytes, value: bytes | None,
                          a: int, b: int, c: int, on_reply: ReplyCallback) -> None:
        try:
            result = self.local_fixed_handler(handler_id)(key, value, a, b, c)
        except Exception as exc:
            self._run_callback(on_reply, None, exc)
            return
        if _is_awaitable(result):
            task = self._loop.create_task(result)
            task.add_done_callback(partial(self._settle_local, on_reply))
        else:
            self._run_callback(on_reply, result, None)

    def _settle_local(self, on_reply: ReplyCallback, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._run_callback(on_reply, None, asyncio.CancelledError())
        elif task.exception() is not None:
            self._run_callback(on_reply, None, task.exception())
        else:
            self._run_callback(on_reply, task.result(), None)

    def _put_request(self, link: PeerLink, kind: int, handler_id: int, call_id: int,
                     key: Any, value: Any, a: int, b: int, c: int) -> None:
        """Write one FIXED_CALL/FIXED_SEND record behind everything queued before it."""
        key = _as_bytes(key)
        flags = 0
        vlen = 0
        if value is not None:
            value = _as_bytes(value)
            flags = _VALUE_PRESENT
            vlen = len(value)
        klen = len(key)
        n = _FH + klen + vlen
        if cython.compiled:
            # (a, b, c are C long longs already: out-of-range values raised at the call)
            if link.pending:
                self._pack_pending(link)
            pos = -1 if link.queued else link.out.reserve(n)
            if pos >= 0:
                p = cython.cast(cython.p_char, cython.address(link.out.data[pos]))
            else:
                record = bytearray(n)
                p = record
            _store_request_header(p, kind, handler_id, flags, klen, call_id, a, b, c)
            kp = key
            memcpy(p + _FH, kp, klen)  # noqa: F821
            if vlen:
                vp = value
                memcpy(p + _FH + klen, vp, vlen)  # noqa: F821
            if pos < 0:
                self._enqueue_record(link, record)
        else:
            try:  # packs (and range-checks) before any ring space is taken
                header = _fixed_header.pack(kind, handler_id, flags, klen, call_id, a, b, c)
            except struct.error as exc:
                raise OverflowError(f"fixed message integers must fit in 64 bits: {exc}") from None
            if link.pending:
                self._pack_pending(link)
            pos = -1 if link.queued else link.out.reserve(n)
            if pos >= 0:
                view = link.out.view
                view[pos : pos + _FH] = header
                view[pos + _FH : pos + _FH + klen] = key
                if vlen:
                    view[pos + _FH + klen : pos + n] = value
            else:
                self._enqueue_record(link, b"".join((header, key, value or b"")))
        self.fixed_out += 1
        self._mark_dirty(link)

    def _put_reply(self, link: PeerLink, call_id: int, result: bytes) -> None:
        """Write one FIXED_REPLY record behind everything queued before it."""
        n = _RH + len(result)
        if link.pending:
            self._pack_pending(link)
        pos = -1 if link.queued else link.out.reserve(n)
        if cython.compiled:
            if pos >= 0:
                p = cython.cast(cython.p_char, cython.address(link.out.data[pos]))
            else:
                record = bytearray(n)
                p = record
            _store_reply_header(p, call_id)
            rp = result
            memcpy(p + _RH, rp, n - _RH)  # noqa: F821
            if pos < 0:
                self._enqueue_record(link, record)
        elif pos >= 0:
            view = link.out.view
            _reply_header.pack_into(view, pos, _FIXED_REPLY, call_id)
            view[pos + _RH : pos + n] = result
        else:
            self._enqueue_record(link, _reply_header.pack(_FIXED_REPLY, call_id) + result)
        self.fixed_out += 1
        self._mark_dirty(link)

    # ----- the poller --------------------------------------------------------------------

    def poll(self) -> bool:
        work = False
        for link in self._up_links:
            inp = link.inp
            if not inp.refresh():
                continue
            work = True
            n = inp.next_record()
            while n >= 0:
                self._dispatch_record(link, inp, n)
                n = inp.next_record()
            full_fence()  # our head store before the load of the producer's waiting flag
            if inp.producer_waiting():
                self._ring(link.doorbell_fd)
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
        self.doorbells += 1
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
            for link in published:
                if self._flags[link.peer]:
                    self._ring(link.doorbell_fd)
        return progressed

    def _pack_pending(self, link: PeerLink) -> None:
        """Pack the link's pending msgpack messages as one batch and write it (or queue it)."""
        batch = link.pending
        link.pending = []
        link.run_name = None
        self.msgs_out += link.pending_count
        link.pending_count = 0
        try:
            data = _packb(batch)
        except (TypeError, ValueError, OverflowError):
            data = self._pack_salvaging(link, batch)
        self.batches_out += 1
        self._enqueue_record(link, data)

    def _enqueue_record(self, link: PeerLink, data: bytes | bytearray) -> None:
        """Write one whole record into the ring if nothing waits before it, and keep what did
        not fit in ``queued``."""
        if not link.queued:
            written = link.out.write(data, True)
            if written == len(data):
                return
            rest = memoryview(data)[written:]
        else:
            rest = memoryview(data)
        link.queued.append(rest)
        link.queued_bytes += len(rest)

    def _flush(self, link: PeerLink) -> bool:
        """Pack the link's pending messages, write what fits of what waits, publish; True if
        anything was published."""
        if link.pending:
            self._pack_pending(link)
        out = link.out
        queued = link.queued
        while queued:
            chunk = queued[0]
            written = out.write(chunk, True)
            link.queued_bytes -= written
            if written == len(chunk):
                queued.popleft()
            else:
                queued[0] = chunk[written:]
                if not link.blocked:
                    link.blocked = True
                    self.ring_full += 1
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
                        self.handler_errors += 1
                        log.error("dropped one-way message %r: arguments not serializable: %s", message[1], exc)
                if packable:
                    parts.append(_packb((ONEWAY, message[1], packable)))
        return msgpack.Packer().pack_array_header(len(parts)) + b"".join(parts)  # type: ignore[no-any-return]

    # ----- receiving: fixed records ------------------------------------------------------

    def _dispatch_record(self, link: PeerLink, inp: RingConsumer, n: int) -> None:
        """Handle the record ``inp`` just handed out (``n`` bytes), by its first byte."""
        if cython.compiled:
            kind = cython.cast(cython.uchar, inp.rec_ptr[0])
        else:
            kind = inp.rec[inp.rec_pos]
        if kind == _FIXED_REPLY and n >= _RH:
            self._on_fixed_reply(link, inp, n)
        elif (kind == _FIXED_CALL or kind == _FIXED_SEND) and n >= _FH:
            self._on_fixed_request(link, inp, n)
        elif kind >= _MSGPACK_MIN:
            self._dispatch(link, _unpack(memoryview(inp.rec)[inp.rec_pos : inp.rec_pos + n]))
        else:
            log.error("unknown record kind %#x (%d bytes) from shard %d", kind, n, link.peer)

    def _on_fixed_reply(self, link: PeerLink, inp: RingConsumer, n: int) -> None:
        if cython.compiled:
            p = inp.rec_ptr
            call_id = _load_u64(p + 8)
            result = p[_RH:n]
        else:
            rec = inp.rec
            pos = inp.rec_pos
            call_id = _reply_header.unpack_from(rec, pos)[1]
            result = bytes(rec[pos + _RH : pos + n])
        self.fixed_in += 1
        callback = link.calls.pop(call_id, None)
        if callback is not None:
            try:
                if isinstance(callback, ReplyHandler):
                    if cython.compiled:
                        cython.cast(ReplyHandler, callback).on_reply(result, None)
                    else:  # (Cython's shadow cast is a call)
                        callback.on_reply(result, None)
                else:
                    callback(result, None)
            except Exception:
                log.exception("reply callback raised")
        if link.overflow:
            self._send_parked(link)

    def _on_fixed_request(self, link: PeerLink, inp: RingConsumer, n: int) -> None:
        if cython.compiled:
            p = inp.rec_ptr
            kind = cython.cast(cython.uchar, p[0])
            handler_id = cython.cast(cython.uchar, p[1])
            flags = cython.cast(cython.uchar, p[2])
            klen = _load_u32(p + 4)
            call_id = _load_u64(p + 8)
            a = _load_i64(p + 16)
            b = _load_i64(p + 24)
            c = _load_i64(p + 32)
            if _FH + klen > n:
                klen = n - _FH  # a corrupt record: never read past it
            key = p[_FH : _FH + klen]
            value = p[_FH + klen : n] if flags & _VALUE_PRESENT else None
        else:
            rec = inp.rec
            pos = inp.rec_pos
            kind, handler_id, flags, klen, call_id, a, b, c = _fixed_header.unpack_from(rec, pos)
            klen = min(klen, n - _FH)
            key = bytes(rec[pos + _FH : pos + _FH + klen])
            value = bytes(rec[pos + _FH + klen : pos + n]) if flags & _VALUE_PRESENT else None
        self.fixed_in += 1
        handler = self._fixed_handlers[handler_id]
        if kind == _FIXED_SEND:
            if self._by_target[handler_id]:
                self._run_target_oneway(handler_id, key, value, a, b, c)
            else:
                self._run_fixed_oneway(handler, handler_id, key, value, a, b, c)
            return
        try:
            if self._by_target[handler_id]:
                result = self._fixed_target.run_fixed(handler_id, key, value, a, b, c)  # type: ignore[union-attr]
            elif handler is None:
                raise UnknownHandler(f"no fixed handler {handler_id} on shard {self.shard_id}")
            else:
                result = handler(key, value, a, b, c)
        except Exception as exc:
            self._queue(link, (FAILURE, call_id, *encode_exception(exc)))
            return
        if type(result) is bytes:
            self._put_reply(link, call_id, result)
        else:
            self._reply_fixed_slow(link, call_id, result)

    def _run_fixed_oneway(self, handler: FixedHandler | None, handler_id: int, key: bytes,
                          value: bytes | None, a: int, b: int, c: int) -> None:
        if handler is None:
            self.handler_errors += 1
            log.error("one-way fixed message for unknown handler %d", handler_id)
            return
        try:
            result = handler(key, value, a, b, c)
        except Exception:
            self.handler_errors += 1
            log.exception("one-way fixed handler %d raised", handler_id)
            return
        if result is not None and _is_awaitable(result):
            self._loop.create_task(result).add_done_callback(self._log_oneway_failure)

    def _run_target_oneway(self, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int) -> None:
        """A one-way fixed message for the registered target (its reply bytes are dropped)."""
        try:
            self._fixed_target.run_fixed(handler_id, key, value, a, b, c)  # type: ignore[union-attr]
        except Exception:
            self.handler_errors += 1
            log.exception("one-way fixed handler %d raised", handler_id)

    def _reply_fixed_slow(self, link: PeerLink, call_id: int, result: Any) -> None:
        """A fixed handler's result that is not ``bytes``: bytes-like is copied, an awaitable
        is awaited in a task, anything else fails the call."""
        if isinstance(result, (bytearray, memoryview)):
            self._put_reply(link, call_id, bytes(result))
        elif result is not None and _is_awaitable(result):
            task = self._loop.create_task(result)
            task.add_done_callback(partial(self._fixed_reply_later, link, link.epoch, call_id))
        else:
            self._queue(link, (FAILURE, call_id, "TypeError",
                               f"fixed handler must return bytes, not {type(result).__name__}"))

    def _fixed_reply_later(self, link: PeerLink, epoch: int, call_id: int, task: asyncio.Task[Any]) -> None:
        if link.epoch != epoch or not link.up:
            return  # the caller's incarnation is gone
        if task.cancelled() or task.exception() is not None:
            self._reply_later(link, epoch, call_id, task)
        elif type(task.result()) is bytes:
            self._put_reply(link, call_id, task.result())
        else:
            self._reply_fixed_slow(link, call_id, task.result())

    # ----- receiving: msgpack batches ----------------------------------------------------

    def _dispatch(self, link: PeerLink, batch: tuple[tuple[Any, ...], ...]) -> None:
        handlers = self._handlers
        self.batches_in += 1
        self.msgs_in += len(batch)
        for message in batch:
            kind = message[0]
            if kind == ONEWAY:
                handler = handlers.get(message[1])
                if handler is None:
                    self.handler_errors += len(message[2])
                    log.error("one-way messages for unknown handler %r", message[1])
                    continue
                self.msgs_in += len(message[2]) - 1  # a run is several messages
                for args in message[2]:
                    try:
                        result = handler(*args)
                    except Exception:
                        self.handler_errors += 1
                        log.exception("one-way handler %r raised", message[1])
                        continue
                    if result is not None and _is_awaitable(result):
                        self._loop.create_task(result).add_done_callback(self._log_oneway_failure)
            elif kind == REPLY:  # the hot path of msgpack calls: kept inline
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
        else:
            self._queue(link, (REPLY, call_id, result))

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
            call_id = self._next_call(link, parked)
            if type(name) is int:
                key, value, a, b, c = args
                try:
                    self._put_request(link, _FIXED_CALL, name, call_id, key, value, a, b, c)
                except Exception as exc:  # bad arguments: this call fails, the link goes on
                    del link.calls[call_id]
                    self._run_callback(parked, None, exc)
            else:
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
