"""Routing and reply order for one client connection: the only place that knows who owns a key.

Theory of operation
-------------------
Every protocol session (ASCII, binary, a UDP datagram) hands its keyed operations to its
connection's :class:`Dispatcher`, which

  * routes: the owner of a key is :func:`kvshard.routing.owner_of` (a hash of it modulo the shards);
    an operation for this shard runs inline on the local service; one for another shard
    becomes a message over the runtime's channels: a fixed record for the hot operations
    (``run_hot``, ``get_one``: see kvshard.service ``FIXED_*``), a msgpack call for the others
    (``run_keyed``), a one-way message for ``noreply``; a multi-key get is split per owning
    shard, the local part served inline, each other owner's keys sent in one fixed record
    (``FIXED_GET_MANY``), the parts merged back in key order when the last one arrives
    (``get_many``); ``fan_out`` runs a handler on every shard;
  * keeps replies in request order (the *sequencer*). While no reply is outstanding, a reply
    goes straight to the output list (``_out``). Once a remote reply is outstanding, every
    later reply (ready or not) queues behind it in ``_queue``; whenever the head of the queue
    completes, the queue drains up to the next incomplete entry into ``_out`` and the
    connection is told (``on_ready``) to write it.

Ordering of *effects* needs nothing more: commands for one shard travel one FIFO channel, so a
``set`` followed by a ``get`` of the same key (same owner) are applied in that order.

Every keyed operation is counted as served here (``local_requests``) or sent to its owner
(``forwarded_requests``): one per command, or one per owning shard of a multi-key get.

``quit()`` asks for the connection to close once every reply queued so far is written; the
connection reads :attr:`Dispatcher.quitting` and does the closing. The dispatcher never touches
the transport: it calls the two functions it was given, ``on_ready`` (complete replies wait in
the output list) and ``on_backlog`` (more than :data:`MAX_QUEUED_REPLIES` replies are owed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Final

from framework import ShardUnavailable
from framework.channel import ReplyHandler

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

from .protocol import ascii as proto
from .routing import key_mix, owner_of, pack_mixes
from .packed_blocks import merge_blocks, pack_blocks

if not cython.compiled:  # compiled, C constants (service.pxd), cimported by dispatcher.pxd
    from .service import FIXED_GET_MANY, FIXED_GET_ONE

if TYPE_CHECKING:
    from .context import ShardContext

__all__ = ["Dispatcher", "MAX_QUEUED_REPLIES", "OUT_BACKLOG", "DEFER_QUEUED", "server_error"]

MAX_QUEUED_REPLIES: Final = 1024
OUT_BACKLOG: Final = 4 << 20  # reply bytes one read may build before the rest of its commands wait
DEFER_QUEUED: Final = 64  # ... or replies it may have waiting on other shards (their size is not known yet)
_END = proto.R_END


def server_error(error: BaseException) -> bytes:
    """What a client is told when a shard could not answer."""
    if isinstance(error, ShardUnavailable):
        return b"SERVER_ERROR shard unavailable\r\n"
    return b"SERVER_ERROR %s\r\n" % str(error).encode("ascii", "replace")[:200]


class _Pending(ReplyHandler):
    """A reply that is not complete yet (waiting for one or more shards). It is the reply
    callback of a single-shard call (``on_reply``, called in C by the channel; calling it does
    the same): it completes the reply with ``finish(result)``."""

    __slots__ = ("data", "parts", "missing", "owner", "finish", "owners")

    def __init__(
        self,
        parts: list[Any] | None = None,
        missing: int = 1,
        owner: "Dispatcher | None" = None,
        finish: Callable[[Any], bytes] | None = None,
    ) -> None:
        self.data: bytes | None = None
        self.parts = parts
        self.missing = missing
        self.owner = owner
        self.finish = finish
        self.owners: list[int] | None = None  # a multi-key get's: each key's owner, in key order

    def on_reply(self, result: Any, error: BaseException | None) -> None:
        owner = self.owner
        assert owner is not None
        if error is not None:
            owner.complete(self, server_error(error))
        elif self.finish is None:
            owner.complete(self, result)
        else:
            owner.complete(self, self.finish(result))


def _new_pending(parts: list[Any] | None, missing: int, owner: "Dispatcher | None",
                 finish: Callable[[Any], bytes] | None) -> _Pending:
    """``_Pending(parts, missing, owner, finish)`` (compiled, without the Python call that
    passes the arguments to ``__init__``: one per forwarded request)."""
    if cython.compiled:
        pending = _Pending.__new__(_Pending)
        pending.parts = parts
        pending.missing = missing
        pending.owner = owner
        pending.finish = finish
        return pending
    return _Pending(parts, missing, owner, finish)


def _settle(done: Callable[[int, Any, BaseException | None], None], shard: int, future: Any) -> None:
    """A local handler's coroutine is done: hand its result (or failure) to ``done``."""
    if future.cancelled():
        done(shard, None, asyncio.CancelledError())
    else:
        error = future.exception()
        done(shard, None if error is not None else future.result(), error)


def _nothing(result: Any) -> bytes:
    return b""


class _Part(ReplyHandler):
    """The reply callback of one owner's share of a multi-key get (``on_reply``, called in C
    by the channel): its packed blocks wait for the other shares (``Dispatcher._on_part``)."""

    __slots__ = ("dispatcher", "pending", "owner")

    def __init__(self, dispatcher: "Dispatcher", pending: _Pending, owner: int) -> None:
        self.dispatcher = dispatcher
        self.pending = pending
        self.owner = owner

    def on_reply(self, result: bytes | None, error: BaseException | None) -> None:
        self.dispatcher._on_part(self.pending, self.owner, result, error)


def _new_part(dispatcher: "Dispatcher", pending: _Pending, owner: int) -> _Part:
    """``_Part(dispatcher, pending, owner)`` (compiled, without ``__init__``'s Python call)."""
    if cython.compiled:
        part = _Part.__new__(_Part)
        part.dispatcher = dispatcher
        part.pending = pending
        part.owner = owner
        return part
    return _Part(dispatcher, pending, owner)


class Dispatcher:
    """Routes one connection's operations and keeps its replies in order (module docstring)."""

    def __init__(self, ctx: "ShardContext", on_ready: Callable[[], None], on_backlog: Callable[[], None]) -> None:
        self.ctx = ctx
        self._on_ready = on_ready
        self._on_backlog = on_backlog
        self._queue: deque[bytes | _Pending] = deque()
        self._out: list[bytes] = []
        self.quitting = False
        self.conn_id = -1  # the connection's number in ``stats conns`` (its own line says so)

    # ----- the sequencer ---------------------------------------------------------------------

    @property
    def owed(self) -> int:
        """Replies queued behind one that waits for another shard."""
        return len(self._queue)

    def backed_up(self) -> bool:
        """Too much owed for one read to go on: replies waiting on other shards, or bytes not
        yet handed to the transport (see ``DEFER_QUEUED`` and ``OUT_BACKLOG``)."""
        return len(self._queue) > DEFER_QUEUED or sum(map(len, self._out)) > OUT_BACKLOG

    def reply(self, data: bytes) -> None:
        """A complete reply, in this request's turn."""
        if self._queue:
            self._queue.append(data)
        elif data:
            self._out.append(data)

    def take_output(self) -> bytes:
        """The complete replies not written yet, as one bytes object (b"" if none)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def quit(self) -> None:
        """Close once every reply queued so far is written."""
        self.quitting = True

    def abandon(self) -> None:
        """Drop every reply owed or not written (the connection is closing now)."""
        self._queue.clear()
        self._out.clear()

    def hold(self, pending: _Pending) -> None:
        self._queue.append(pending)
        if len(self._queue) > MAX_QUEUED_REPLIES:
            self._on_backlog()

    def complete(self, pending: _Pending, data: bytes) -> None:
        pending.data = data
        queue = self._queue
        if queue and queue[0] is pending:
            out = self._out
            while queue:
                head = queue[0]
                if type(head) is bytes:
                    if head:
                        out.append(head)
                else:
                    # queued: bytes or a _Pending (interpreted, no cast: Cython's shadow cast is a call)
                    done = cython.cast(_Pending, head).data if cython.compiled else head.data
                    if done is None:
                        break
                    if done:
                        out.append(done)
                queue.popleft()
            self._on_ready()

    # ----- routing -----------------------------------------------------------------------------

    def get_one(self, key: bytes, owner: int = -1) -> None:
        """``get <key>``, answered in full by the owner's ``get_one``."""
        ctx = self.ctx
        if owner < 0:
            owner = owner_of(key, ctx.shards)
        if owner == ctx.shard_id:
            ctx.local_requests += 1
            self.reply(ctx.service.get_one(key))
        else:
            ctx.forwarded_requests += 1
            if cython.compiled:  # (mixing costs about what sending the mix would)
                self._call_fixed(owner, FIXED_GET_ONE, key, None, 0, 0, 0, False)
            else:  # interpreted, the mix (remembered by owner_of) spares the owner a sixth of its lookup
                mix = key_mix(key)
                self._call_fixed(owner, FIXED_GET_ONE, key, None, mix & 0xFFFFFFFF, mix >> 32, 0, False)

    def run_hot(
        self, key: bytes, noreply: bool, handler_id: int, value: bytes | None, a: int, b: int, c: int,
    ) -> None:
        """A hot keyed operation in its fixed-record form ``handler_id(key, value, a, b, c)``
        (kvshard.service), whose handler returns the reply bytes (none sent for noreply): run
        inline when this shard owns the key, else sent to the owner as the channel's fixed
        record."""
        ctx = self.ctx
        owner = owner_of(key, ctx.shards)
        if owner == ctx.shard_id:
            ctx.local_requests += 1
            result = ctx.service.run_fixed(handler_id, key, value, a, b, c)
            if not noreply:
                self.reply(result)
            return
        ctx.forwarded_requests += 1
        if not noreply:
            self._call_fixed(owner, handler_id, key, value, a, b, c, False)
            return
        try:  # one-way; a backed-up link takes a call whose answer is dropped, keeping order
            if not ctx.messenger.send_fixed(owner, handler_id, key, value, a, b, c):
                self._call_fixed(owner, handler_id, key, value, a, b, c, True)
        except ShardUnavailable:
            pass

    def run_keyed(
        self, key: bytes, name: str, args: tuple[Any, ...], finish: Callable[[Any], bytes] | None = None,
    ) -> None:
        """Run ``kv.<name>(*args)`` on the owner of ``key`` and reply ``finish(result)`` (or
        the result itself, when the handler returns the reply bytes) in this request's turn."""
        ctx = self.ctx
        owner = owner_of(key, ctx.shards)
        if owner == ctx.shard_id:
            ctx.local_requests += 1
            result = ctx.local[name](*args)
            self.reply(result if finish is None else finish(result))
        else:
            ctx.forwarded_requests += 1
            self._call(owner, "kv." + name, args, finish)

    def run_keyed_noreply(self, key: bytes, name: str, args: tuple[Any, ...]) -> None:
        """``kv.<name>(*args)`` on the owner of ``key``, nothing to answer."""
        ctx = self.ctx
        owner = owner_of(key, ctx.shards)
        if owner == ctx.shard_id:
            ctx.local_requests += 1
            ctx.local[name](*args)
        else:
            ctx.forwarded_requests += 1
            self._send_noreply(owner, "kv." + name, args)

    def get_many(self, keys: list[bytes], with_cas: bool, exptime: int | None) -> None:
        """get/gets/gat/gats of one or more keys: one reply, values in key order, then END.
        Each other owner gets its keys in one fixed record (FIXED_GET_MANY: the ASCII
        protocol's keys hold no space, so they travel joined by one)."""
        ctx = self.ctx
        shards = ctx.shards
        me = ctx.shard_id
        if len(keys) == 1 and exptime is None and not with_cas:  # plain `get k`: the hot path
            self.get_one(keys[0], owner_of(keys[0], shards))
            return
        owners: list[int] = []  # each key's owner, in key order
        keys_by_owner: list[list[bytes] | None] = [None] * shards
        for key in keys:
            owner = owner_of(key, shards)
            owners.append(owner)
            theirs = keys_by_owner[owner]
            if theirs is None:
                keys_by_owner[owner] = [key]
            else:
                theirs.append(key)
        parts: list[bytes | None] = [None] * shards  # each owner's blocks, packed
        mine = keys_by_owner[me]
        keys_by_owner[me] = None
        others = shards - keys_by_owner.count(None)
        ctx.forwarded_requests += others
        if mine is not None:
            ctx.local_requests += 1
            service = ctx.service
            parts[me] = (service.get_packed(mine, with_cas) if exptime is None
                         else pack_blocks(service.gat(mine, with_cas, exptime)))
        if not others:
            self.reply(merge_blocks(owners, parts, _END))
            return
        pending = _new_pending(parts, others, None, None)
        pending.owners = owners
        self.hold(pending)
        gat = 0 if exptime is None else 1
        for owner in range(shards):
            theirs = keys_by_owner[owner]
            if theirs is None:
                continue
            try:
                ctx.messenger.call_fixed(  # (interpreted, with the keys' mixes: see get_one)
                    owner, FIXED_GET_MANY, b" ".join(theirs), None if cython.compiled else pack_mixes(theirs),
                    1 if with_cas else 0, gat, exptime or 0, _new_part(self, pending, owner),
                )
            except ShardUnavailable as exc:
                self._on_part(pending, owner, None, exc)

    def flush_all(self, delay: int, noreply: bool, reply: bytes) -> None:
        """flush_all on every shard; ``reply`` once all have (nothing sent for noreply).
        Counted once, here (``cmd_flush``), however many shards it runs on."""
        ctx = self.ctx
        ctx.service.cache.stats.cmd_flush += 1
        if noreply:
            for shard in range(ctx.shards):
                if shard == ctx.shard_id:
                    ctx.service.flush(delay)
                else:
                    self._send_noreply(shard, "kv.flush", (delay,))
            return
        self.fan_out("kv.flush", (delay,), lambda results: reply)

    def fan_out(self, name: str, args: tuple[Any, ...], finish: Callable[[list[Any]], bytes]) -> None:
        """Run ``name`` on every shard (this one inline) and reply ``finish(results in shard
        order)``; any failure answers SERVER_ERROR. A handler may answer with a coroutine (the
        crawler's metadump): its result is taken when it is done."""
        ctx = self.ctx
        results: list[Any] = [None] * ctx.shards
        pending = _new_pending(results, ctx.shards, None, None)
        self.hold(pending)

        def done(shard: int, result: Any, error: BaseException | None) -> None:
            if pending.parts is None:
                return  # already failed
            if error is not None:
                pending.parts = None
                self.complete(pending, server_error(error))
                return
            results[shard] = result
            pending.missing -= 1
            if pending.missing == 0:
                pending.parts = None
                self.complete(pending, finish(results))

        for shard in range(ctx.shards):
            if shard == ctx.shard_id:
                result = ctx.handler(name)(*args)
                if asyncio.iscoroutine(result):  # (the channel awaits a remote one)
                    asyncio.ensure_future(result).add_done_callback(partial(_settle, done, shard))
                else:
                    done(shard, result, None)
            else:
                try:
                    ctx.messenger.call(shard, name, args, partial(done, shard))
                except ShardUnavailable as exc:
                    done(shard, None, exc)

    def stats_command(self, replies: Any, args: list[bytes]) -> None:
        """The ``stats`` family; ``replies`` receives the ASCII answer (``reply`` /
        ``fan_out``: this dispatcher, or an adapter that converts it for another protocol)."""
        self.ctx.stats_command(replies, args)

    # ----- remote calls --------------------------------------------------------------------------

    def _call(self, owner: int, name: str, args: tuple[Any, ...], finish: Callable[[Any], bytes] | None) -> None:
        """Run ``name`` on ``owner`` and reply ``finish(result)`` (or the result) in this
        reply's turn."""
        pending = _new_pending(None, 1, self, finish)
        self.hold(pending)
        try:
            self.ctx.messenger.call(owner, name, args, pending)
        except ShardUnavailable as exc:
            self.complete(pending, server_error(exc))

    def _call_fixed(
        self, owner: int, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int, drop: bool,
    ) -> None:
        """Run fixed handler ``handler_id`` on ``owner``; its reply bytes (nothing if
        ``drop``) go out in this reply's turn."""
        pending = _new_pending(None, 1, self, _nothing if drop else None)
        self.hold(pending)
        try:
            self.ctx.messenger.call_fixed(owner, handler_id, key, value, a, b, c, pending)
        except ShardUnavailable as exc:
            self.complete(pending, server_error(exc))

    def _send_noreply(self, owner: int, name: str, args: tuple[Any, ...]) -> None:
        """A noreply command for another shard: a one-way message, or (when that link is
        backed up) a call whose answer is dropped, so order is kept either way."""
        try:
            if not self.ctx.messenger.send(owner, name, *args):
                self._call(owner, name, args, _nothing)
        except ShardUnavailable:
            pass

    def _on_part(self, pending: _Pending, owner: int, result: bytes | None, error: BaseException | None) -> None:
        """One owner's share of a multi-key get (packed blocks) arrived; the reply is merged
        once all have. A failure answers SERVER_ERROR at once (later shares are dropped)."""
        parts = pending.parts
        if parts is None:  # failed already
            return
        if error is not None:
            pending.parts = None
            self.complete(pending, server_error(error))
            return
        parts[owner] = result
        pending.missing -= 1
        if pending.missing == 0:
            pending.parts = None
            try:
                merged = merge_blocks(pending.owners, parts, _END)  # type: ignore[arg-type]
            except ValueError as exc:
                merged = server_error(exc)
            self.complete(pending, merged)
