"""One client connection speaking memcached's ASCII or binary protocol, on any network stack.

Theory of operation
-------------------
The connection is an asyncio protocol: it only sees ``data_received`` (reached through
``get_buffer``/``buffer_updated`` on uvloop, to bound the size of a read) and a ``Transport``,
so it runs unchanged over uvloop's sockets or the native stack.

The first byte chooses the protocol for the life of the connection, as in memcached: 0x80 is
the binary protocol (handed to a :class:`~kvshard.binary_session.BinarySession`, which uses the
primitives below), anything else ASCII. When every client must log in, the server speaks one
protocol only, as memcached does: binary with SASL (``-S``: the session starts locked), ASCII
with an auth file (``-Y``: reads go through an :class:`~kvshard.protocol.ascii_login.AsciiLogin`
until it lets the connection in, then to the parser as usual).

Each ASCII read is fed to the sans-IO parser (except a read that is exactly one plain
``get <key>``, the most common request, which skips it: see ``single_get_key``); each command
is executed at once, in order:
  * a key owned by this shard is served inline from the local :class:`KVService`;
  * a key owned by another shard becomes a call over the runtime's channels (``kv.*``
    handlers), batched with everything else this shard sends that peer in this loop iteration;
  * a multi-key get is split per owning shard, the local part served inline, and the parts
    merged back in key order when the last one arrives;
  * ``noreply`` commands for another shard are one-way messages (nothing comes back).

Replies leave in request order. While no reply is outstanding, a reply goes straight to the
output list, written once at the end of the read. Once a remote reply is outstanding, every
later reply (ready or not) queues behind it in ``_queue``; whenever the head of the queue is
complete, the queue drains up to the next incomplete entry and that output is written.

Ordering of *effects* needs nothing more: commands for one shard travel one FIFO channel, so a
``set`` followed by a ``get`` of the same key (same owner) are applied in that order.

Every keyed operation is counted as served here (``local_requests``) or sent to its owner
(``forwarded_requests``): one per command, or one per owning shard of a multi-key get. They
are exported as ``kvshard_requests_total{served}``.

Latency: one read in 64 (when no reply is outstanding) is timed from ``data_received`` to the
moment its last reply goes to the transport, and observed in the shard's
``request_latency_seconds{command}`` histogram under the read's first command. With the metrics
endpoint off nothing could read the histograms, so no read is timed.

Back-pressure: more than :data:`MAX_QUEUED_REPLIES` outstanding replies, or a transport that
asks us to stop writing, pauses reading until the backlog drains to a quarter of that.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
import zlib
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Final

from framework import ShardUnavailable

from .binary_session import BinarySession
from .protocol import ascii as proto
from .protocol.ascii import AsciiParser, single_get_key
from .service import (
    FIXED_ARITH, FIXED_DELETE, FIXED_GET_ONE, FIXED_STORE, FIXED_TOUCH, STORE_CODES, as_int64,
)
from .protocol.ascii_login import R_AUTH_FAILURE, R_LOGGED_IN, AsciiLogin

if TYPE_CHECKING:
    from .context import ShardContext

__all__ = ["ClientConnection", "MAX_QUEUED_REPLIES", "READ_SIZE", "SAMPLE_MASK", "command_name", "native_number", "socket_address"]

_UNDECIDED: Final = object()  # no byte seen yet: the protocol is not chosen

log = logging.getLogger("kvshard.connection")

MAX_QUEUED_REPLIES: Final = 1024
OUT_BACKLOG: Final = 4 << 20  # reply bytes one read may build before the rest of its commands wait
DEFER_QUEUED: Final = 64  # ... or replies it may have waiting on other shards (their size is not known yet)
_RESUME_BELOW: Final = MAX_QUEUED_REPLIES // 4
_crc32 = zlib.crc32
_perf_counter = time.perf_counter
SAMPLE_MASK: Final = 63  # one read in 64 is timed (only when no reply is outstanding)
_ASCII_COMMANDS: Final = frozenset((
    b"get", b"gets", b"gat", b"gats", b"set", b"add", b"replace", b"append", b"prepend", b"cas",
    b"delete", b"incr", b"decr", b"touch", b"mg", b"ms", b"md", b"ma", b"mn", b"me",
    b"flush_all", b"version", b"verbosity", b"stats", b"quit",
))
_BINARY_COMMANDS: Final = {
    0x00: "get", 0x09: "get", 0x0C: "get", 0x0D: "get", 0x01: "set", 0x11: "set", 0x02: "add",
    0x12: "add", 0x03: "replace", 0x13: "replace", 0x04: "delete", 0x14: "delete", 0x05: "incr",
    0x15: "incr", 0x06: "decr", 0x16: "decr", 0x0E: "append", 0x19: "append", 0x0F: "prepend",
    0x1A: "prepend", 0x1C: "touch", 0x1D: "gat", 0x1E: "gat", 0x23: "gat", 0x24: "gat",
    0x0A: "noop", 0x0B: "version", 0x08: "flush_all", 0x18: "flush_all", 0x10: "stats",
    0x07: "quit", 0x17: "quit",
}


_NATIVE_IDS = itertools.count(1 << 20)  # above any file descriptor


def native_number() -> int:
    """A number for something on the native stack that has no file descriptor (a connection,
    a listener) in ``stats conns``: above any descriptor, never the same twice."""
    return next(_NATIVE_IDS)


def _conn_id(sock: Any, shards: int, shard_id: int) -> int:
    """A connection's number in ``stats conns``: its file descriptor in its shard process (or,
    on the native stack, which has none, a number above any descriptor) times the shard count
    plus the shard id, so numbers never collide across shards."""
    number = sock.fileno() if sock is not None else native_number()
    return number * shards + shard_id


def socket_address(kind: str, address: Any) -> str:
    """memcached's form of a socket address: ``tcp:1.2.3.4:5``, ``tcp6:[::1]:5``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"{kind}6:[{host}]:{port}" if ":" in host else f"{kind}:{host}:{port}"
    return f"unix:{address}" if address else f"{kind}:?"


def command_name(data: bytes) -> str:
    """The command a read starts with, for the latency histogram's label (a bounded set:
    anything else is "other"). Binary requests are named like their ASCII counterparts."""
    if data[:1] == b"\x80" and len(data) > 1:
        return _BINARY_COMMANDS.get(data[1], "other")
    end = data.find(b" ", 0, 12)
    name = data[: end if end >= 0 else 12].rstrip(b"\r\n")
    return name.decode() if name in _ASCII_COMMANDS else "other"
_END = proto.R_END


class _Pending:
    """A reply that is not complete yet (waiting for one or more shards). Calling it is the
    reply callback of a single-shard call: it completes the reply with ``finish(result)``."""

    __slots__ = ("data", "parts", "missing", "conn", "finish")

    def __init__(
        self,
        parts: list[Any] | None = None,
        missing: int = 1,
        conn: "ClientConnection | None" = None,
        finish: Callable[[Any], bytes] | None = None,
    ) -> None:
        self.data: bytes | None = None
        self.parts = parts
        self.missing = missing
        self.conn = conn
        self.finish = finish

    def __call__(self, result: Any, error: BaseException | None) -> None:
        conn = self.conn
        assert conn is not None
        if error is not None:
            conn._complete(self, _server_error(error))
        elif self.finish is None:
            conn._complete(self, result)
        else:
            conn._complete(self, self.finish(result))


def _server_error(error: BaseException) -> bytes:
    if isinstance(error, ShardUnavailable):
        return b"SERVER_ERROR shard unavailable\r\n"
    return b"SERVER_ERROR %s\r\n" % str(error).encode("ascii", "replace")[:200]


READ_SIZE: Final = 64 << 10  # the most one read takes from a socket (see get_buffer)
_read_view = memoryview(bytearray(READ_SIZE))  # one per shard process: each read is copied out at once


class ClientConnection:
    """Serves one client; see the module docstring for the rules.

    An asyncio buffered protocol by its methods (``get_buffer``/``buffer_updated``), which is
    what uvloop and its TLS layer look for; it does not subclass ``asyncio.BufferedProtocol``
    so that, compiled, it is an extension type with C fields (connection.pxd)."""

    def __init__(self, ctx: "ShardContext") -> None:
        self._ctx = ctx
        self._parser = AsciiParser(ctx.max_item_size)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[bytes | _Pending] = deque()
        self._out: list[bytes] = []
        self._quitting = False
        self._draining = False  # the server is stopping (see drain)
        self._deferred: list[tuple[Any, ...]] | None = None  # commands waiting for the replies to drain (see _run)
        self._eof_sent = False
        self._reading_paused = False
        self._writing_paused = False
        self._counted = False
        self._conn_stats = ctx.service.conn_stats
        self._binary: Any = _UNDECIDED  # a BinarySession once chosen, None for ASCII
        self._login: AsciiLogin | None = None  # -Y: the gate until the client logs in
        if ctx.sasl is not None:
            self._binary = BinarySession(self, sasl=ctx.sasl)
        elif ctx.ascii_login is not None:
            self._binary = None
            self._login = AsciiLogin(ctx.ascii_login.check)
        self._reads = 0
        self._sample_mask = ctx.latency_sample_mask  # reads & mask == 0: timed (-1: never)
        self._sample_start = 0.0  # a sampled read waiting for its last reply
        self._sample_command = ""
        self.conn_id = -1  # set once accepted: see ``describe``
        self._last_command = 0

    # ----- transport callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        ctx = self._ctx
        stats = ctx.service.conn_stats
        open_now = ctx.open_connections() if ctx.open_connections else stats["curr_connections"]
        if open_now >= ctx.max_connections:
            stats["rejected_connections"] += 1
            transport.write(b"ERROR Too many open connections\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        self._counted = True
        sock = transport.get_extra_info("socket")
        self.conn_id = _conn_id(sock, ctx.shards, ctx.shard_id)
        self._last_command = ctx.now
        ctx.connections[self.conn_id] = self
        stats["curr_connections"] += 1
        stats["total_connections"] += 1
        if ctx.publish_connections:
            ctx.publish_connections(stats["curr_connections"])
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._ctx.connections.pop(self.conn_id, None)
            stats = self._ctx.service.conn_stats
            stats["curr_connections"] -= 1
            if self._ctx.publish_connections:
                self._ctx.publish_connections(stats["curr_connections"])
            self._counted = False
        self._transport = None
        self._queue.clear()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._deferred is not None:
            self._continue_deferred()
        else:
            self._update_reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        """Reads (uvloop, TLS) go into one buffer of :data:`READ_SIZE` bytes that all the
        shard's connections share: the read is copied out in ``buffer_updated`` before the
        next read can start. uvloop's own reads take up to 256 KiB; at most 64 KiB bounds what
        a connection whose commands must wait (see ``_run``) holds to one small read, the rest
        staying in the kernel's socket buffer: a 64-connection set flood peaked at 155-168 MiB
        with 256 KiB reads, 121-128 MiB with these (-m 64, two shards), for the same memaslap
        throughput. The native stack calls ``data_received`` directly."""
        return _read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_read_view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._quitting or not self._counted:
            return
        self._conn_stats["bytes_read"] += len(data)
        self._last_command = self._ctx.now
        self._reads += 1
        start = 0.0
        if not self._reads & self._sample_mask and not self._queue:
            start = _perf_counter()
            self._sample_command = command_name(data)
        if self._binary is None or not self._feed_binary(data):
            if self._login is not None:
                data = self._log_in(data)
            parser = self._parser
            key = single_get_key(data) if parser.is_idle() else None
            if key is not None:  # the most common request, a whole read by itself
                self._get_one(key)
            elif data:
                self._run(parser.feed(data))
        out = self._out
        if len(out) == 1 and not self._quitting:  # the common case: one reply, write it
            data = out[0]
            out.clear()
            self._conn_stats["bytes_written"] += len(data)
            self._transport.write(data)  # type: ignore[union-attr]
        else:
            self._write_out()
        if self._deferred is not None:
            self._continue_deferred()
        if start:
            self._sample_start = start
            self._end_sample()

    def _log_in(self, data: bytes) -> bytes:
        """-Y: run a read through the login gate; returns what follows a login (b"" while
        the client is still out)."""
        assert self._login is not None
        step = self._login.feed(data)
        for reply in step.replies:
            if reply is R_LOGGED_IN or reply is R_AUTH_FAILURE:
                self.count_login(reply is R_LOGGED_IN)
            self.reply(reply)
        if step.close:
            self._quitting = True
        if step.rest is None:
            return b""
        self._login = None
        return step.rest

    def _end_sample(self) -> None:
        """A sampled read is done once no reply is outstanding: its latency is the time from
        the read to its last reply handed to the transport."""
        if not self._queue and self._sample_start:
            self._ctx.observe_latency(self._sample_command, _perf_counter() - self._sample_start)
            self._sample_start = 0.0

    def describe(self, asking: int) -> tuple[int, str, str, str, int]:
        """This connection for ``stats conns``: (id, addr, listen_addr, state, seconds since
        its last read). ``asking`` is the id of the connection that asked (its state is
        ``conn_parse_cmd``, as in memcached)."""
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        local = transport.get_extra_info("sockname") if transport is not None else None
        if self.conn_id == asking:
            state = "conn_parse_cmd"
        elif self._parser.buffered or self._queue:
            state = "conn_nread" if self._parser.reading_data else "conn_parse_cmd"
        else:
            state = "conn_read"
        return self.conn_id, socket_address("tcp", peer), socket_address("tcp", local), state, self._ctx.now - self._last_command

    def _run(self, commands: list[tuple[Any, ...]]) -> None:
        """Execute parsed ASCII commands in order. Every 16 commands, if the replies owed have
        backed up (more than :data:`OUT_BACKLOG` bytes not yet handed to the transport, or more
        than :data:`DEFER_QUEUED` waiting on other shards), the rest wait, reading stops, and
        they run when the transport has drained: a client that pipelines thousands of gets
        for a big value and reads nothing cannot make the server build gigabytes of replies."""
        execute = self._execute
        last = len(commands) - 1
        for i, cmd in enumerate(commands):
            execute(cmd)
            if self._quitting:
                return
            if i & 15 == 15 and i < last and self._backed_up():
                self._deferred = commands[i + 1 :]
                self._update_reading()  # deferred commands pause reading like any back-pressure
                return

    def _backed_up(self) -> bool:
        return len(self._queue) > DEFER_QUEUED or sum(map(len, self._out)) > OUT_BACKLOG

    def _run_deferred(self) -> None:
        commands, self._deferred = self._deferred, None
        if not commands or self._transport is None:
            return
        self._run(commands)
        self._write_out()
        self._continue_deferred()

    def _continue_deferred(self) -> None:
        """Go on with deferred commands once the transport takes more (now, or at
        resume_writing) and the other shards' replies have come in (at _complete)."""
        if self._deferred is None:
            self._update_reading()
        elif not self._writing_paused and len(self._queue) < DEFER_QUEUED // 2:
            asyncio.get_running_loop().call_soon(self._run_deferred)

    def _feed_binary(self, data: bytes) -> bool:
        """Binary connections: run the read and return True. The first read decides; an
        ASCII connection answers False from then on without coming here."""
        session = self._binary
        if session is _UNDECIDED:
            if data[0] != 0x80:
                self._binary = None
                return False
            session = self._binary = BinarySession(self)
        session.feed(data)
        return True

    def eof_received(self) -> bool | None:
        return None  # close our side too, as memcached does

    # ----- what protocol sessions use -------------------------------------------------------

    @property
    def quitting(self) -> bool:
        return self._quitting

    @property
    def version(self) -> str:
        return self._ctx.version

    @property
    def max_item_size(self) -> int:
        return self._ctx.max_item_size

    def count_login(self, ok: bool) -> None:
        """A login attempt, in ``auth_cmds`` (and ``auth_errors`` when it failed)."""
        self._conn_stats["auth_cmds"] += 1
        if not ok:
            self._conn_stats["auth_errors"] += 1

    def quit(self) -> None:
        """Close once every reply queued so far is written."""
        self._quitting = True

    def kick_if_idle(self, before: int) -> None:
        """``-o idle_timeout``: close the connection if its last command came before ``before``
        (seconds of the shard's clock) and it owes no reply; counted in ``idle_kicks``."""
        if self._last_command < before and not self._queue and self._transport is not None and not self._quitting:
            self._conn_stats["idle_kicks"] += 1
            self._quitting = True
            self._transport.close()

    def drain(self) -> None:
        """The server is stopping: take no more requests, finish the replies owed, then end
        our side (FIN after everything buffered). What the client still sends is read and
        dropped rather than left unread: closing a socket with unread input makes the kernel
        send an RST, which can destroy replies the client has not read yet. The connection
        ends when the client closes its side (or the stop's deadline passes)."""
        if self._transport is None:
            return
        self._draining = True
        self._quitting = True
        if not self._queue:
            self._write_out()
    def stats_command(self, replies: Any, args: list[bytes]) -> None:
        """The ``stats`` family; ``replies`` receives the ASCII answer (``reply`` /
        ``fan_out``), so another protocol can convert it."""
        self._ctx.stats_command(replies, args)

    def run_keyed(
        self, key: bytes, name: str, args: tuple[Any, ...], finish: Callable[[Any], bytes] | None = None,
    ) -> None:
        """Run ``kv.<name>(*args)`` on the owner of ``key`` and reply ``finish(result)`` (or
        the result itself, when the handler returns the reply bytes) in this request's turn
        (inline when the owner is this shard)."""
        ctx = self._ctx
        owner = _crc32(key) % ctx.shards
        if owner == ctx.shard_id:
            ctx.local_requests += 1
            result = ctx.local[name](*args)
            self.reply(result if finish is None else finish(result))
        else:
            ctx.forwarded_requests += 1
            self._call(owner, "kv." + name, args, finish or _same)

    # ----- output ------------------------------------------------------------------------------

    def reply(self, data: bytes) -> None:
        if self._queue:
            self._queue.append(data)
        elif data:
            self._out.append(data)

    def _hold(self, pending: _Pending) -> None:
        self._queue.append(pending)
        if len(self._queue) > MAX_QUEUED_REPLIES:
            self._update_reading()

    def _complete(self, pending: _Pending, data: bytes) -> None:
        pending.data = data
        queue = self._queue
        if queue and queue[0] is pending:
            out = self._out
            while queue:
                head = queue[0]
                if type(head) is bytes:
                    if head:
                        out.append(head)
                elif head.data is not None:  # type: ignore[union-attr]
                    if head.data:  # type: ignore[union-attr]
                        out.append(head.data)  # type: ignore[union-attr]
                else:
                    break
                queue.popleft()
            self._write_out()
            if self._sample_start:
                self._end_sample()
            if self._deferred is not None:
                self._continue_deferred()
            elif self._reading_paused:
                self._update_reading()

    def _write_out(self) -> None:
        out = self._out
        transport = self._transport
        if transport is None:
            out.clear()
            return
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._conn_stats["bytes_written"] += len(data)
            transport.write(data)
        if self._quitting and not self._queue:
            if not self._draining:
                transport.close()
            elif transport.can_write_eof() and not transport.is_closing():
                if not self._eof_sent:
                    self._eof_sent = True
                    transport.write_eof()
            else:
                transport.close()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None:
            return
        backlog = len(self._queue)
        if not self._reading_paused and (self._writing_paused or backlog > MAX_QUEUED_REPLIES or self._deferred is not None):
            self._reading_paused = True
            transport.pause_reading()
        elif self._reading_paused and not self._writing_paused and backlog < _RESUME_BELOW and self._deferred is None:
            self._reading_paused = False
            transport.resume_reading()

    # ----- remote calls -------------------------------------------------------------------------

    def _call(self, owner: int, name: str, args: tuple[Any, ...], finish: Callable[[Any], bytes]) -> None:
        """Run ``name`` on ``owner`` and reply ``finish(result)`` in this reply's turn."""
        pending = _Pending(None, 1, self, None if finish is _same else finish)
        self._hold(pending)
        try:
            self._ctx.messenger.call(owner, name, args, pending)
        except ShardUnavailable as exc:
            self._complete(pending, _server_error(exc))

    def run_hot(
        self, key: bytes, name: str, args: tuple[Any, ...], noreply: bool,
        handler_id: int, value: bytes | None, a: int, b: int, c: int,
    ) -> None:
        """A hot keyed operation whose handler returns the reply bytes (none sent for
        noreply): ``kv.<name>(*args)`` inline on the owner, else the same operation as the
        channel's fixed record ``handler_id(key, value, a, b, c)`` (kvshard.service)."""
        ctx = self._ctx
        owner = _crc32(key) % ctx.shards
        if owner == ctx.shard_id:
            ctx.local_requests += 1
            result = ctx.local[name](*args)
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

    def _call_fixed(
        self, owner: int, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int, drop: bool,
    ) -> None:
        """Run fixed handler ``handler_id`` on ``owner``; its reply bytes (nothing if
        ``drop``) go out in this reply's turn."""
        pending = _Pending(None, 1, self, _nothing if drop else None)
        self._hold(pending)
        try:
            self._ctx.messenger.call_fixed(owner, handler_id, key, value, a, b, c, pending)
        except ShardUnavailable as exc:
            self._complete(pending, _server_error(exc))

    def _send_noreply(self, owner: int, name: str, args: tuple[Any, ...]) -> None:
        """A noreply command for another shard: a one-way message, or (when that link is
        backed up) a call whose answer is dropped, so order is kept either way."""
        try:
            if not self._ctx.messenger.send(owner, name, *args):
                self._call(owner, name, args, _nothing)
        except ShardUnavailable:
            pass

    def _keyed(self, key: bytes, name: str, args: tuple[Any, ...], noreply: bool) -> None:
        """An ASCII command whose handler returns the reply bytes (none sent for noreply)."""
        if not noreply:
            self.run_keyed(key, name, args)
            return
        ctx = self._ctx
        owner = _crc32(key) % ctx.shards
        if owner == ctx.shard_id:
            ctx.local_requests += 1
            ctx.local[name](*args)
        else:
            ctx.forwarded_requests += 1
            self._send_noreply(owner, "kv." + name, args)

    # ----- commands ------------------------------------------------------------------------------

    def _execute(self, cmd: tuple[Any, ...]) -> None:
        op = cmd[0]
        if op == proto.GET:
            self._get(cmd[1], cmd[2], None)
        elif op == proto.STORE:
            _, verb, key, flags, exptime, value, cas, noreply = cmd
            self.run_hot(key, "store", (verb, key, flags, exptime, value, cas), noreply,
                         FIXED_STORE, value, STORE_CODES[verb] | flags << 8, exptime, as_int64(cas))
        elif op == proto.REPLY:
            self.reply(cmd[1])
        elif op == proto.DELETE:
            self.run_hot(cmd[1], "delete", (cmd[1],), cmd[2], FIXED_DELETE, None, 0, 0, 0)
        elif op == proto.ARITH:
            self.run_hot(cmd[2], "arith", (cmd[1], cmd[2], cmd[3]), cmd[4], FIXED_ARITH, None,
                         1 if cmd[1] else 0, as_int64(cmd[3]), 0)
        elif op == proto.TOUCH:
            self.run_hot(cmd[1], "touch", (cmd[1], cmd[2]), cmd[3], FIXED_TOUCH, None, cmd[2], 0, 0)
        elif op == proto.GAT:
            self._get(cmd[1], cmd[2], cmd[3])
        elif op == proto.TOO_LARGE:
            _, verb, key, noreply = cmd
            self._keyed(key, "too_large", (verb, key), True)
            if not noreply:
                self.reply(proto.R_TOO_LARGE)
        elif op == proto.META:
            self.run_keyed(cmd[2], "meta", cmd[1:])
        elif op == proto.FLUSH:
            self._flush_all(cmd[1], cmd[2])
        elif op == proto.VERSION:
            self.reply(b"VERSION %s\r\n" % self._ctx.version.encode())
        elif op == proto.VERBOSITY:
            self._ctx.set_verbosity(cmd[1])
            if not cmd[2]:
                self.reply(proto.R_OK)
        elif op == proto.STATS:
            self._ctx.stats_command(self, cmd[1])
        elif op == proto.QUIT:
            self._quitting = True
        elif op == proto.SHUTDOWN:
            self._shutdown(cmd[1])
        elif op == proto.CLOSE:
            self._quitting = True
            self._queue.clear()
            self._out.clear()
        else:  # pragma: no cover - the parser emits nothing else
            self.reply(proto.R_ERROR)

    def _shutdown(self, mode: bytes | None) -> None:
        """memcached's ``shutdown`` (``-A`` only): the whole server stops, gracefully (kvshard's
        stop always drains, so ``shutdown graceful`` is the same); this connection closes."""
        if self._ctx.request_shutdown is None:
            self.reply(b"ERROR: shutdown not enabled\r\n")
        elif mode not in (None, b"graceful"):
            self.reply(b"CLIENT_ERROR invalid shutdown mode\r\n")
        else:
            self._quitting = True
            self._ctx.request_shutdown()

    def _get_one(self, key: bytes, owner: int = -1) -> None:
        """``get <key>``, answered in full by the owner's ``get_one``."""
        ctx = self._ctx
        if owner < 0:
            owner = _crc32(key) % ctx.shards
        if owner == ctx.shard_id:
            ctx.local_requests += 1
            self.reply(ctx.get_one(key))
        else:
            ctx.forwarded_requests += 1
            self._call_fixed(owner, FIXED_GET_ONE, key, None, 0, 0, 0, False)

    def _get(self, keys: list[bytes], with_cas: bool, exptime: int | None) -> None:
        ctx = self._ctx
        shards = ctx.shards
        me = ctx.shard_id
        single_owner = _crc32(keys[0]) % shards if len(keys) == 1 else -1
        if exptime is None and not with_cas and single_owner >= 0:  # plain `get k`: the hot path
            self._get_one(keys[0], single_owner)
            return
        name, args = ("get", (with_cas,)) if exptime is None else ("gat", (with_cas, exptime))
        if single_owner >= 0:
            if single_owner == me:
                ctx.local_requests += 1
                self.reply(ctx.local[name](keys, *args)[0] + _END)
            else:
                ctx.forwarded_requests += 1
                self._call(single_owner, "kv." + name, (keys, *args), _join_end)
            return
        by_owner: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_owner.setdefault(_crc32(key) % shards, []).append(i)
        parts: list[bytes] = [b""] * len(keys)
        local = by_owner.pop(me, None)
        ctx.forwarded_requests += len(by_owner)
        if local is not None:
            ctx.local_requests += 1
            for i, value in zip(local, ctx.local[name]([keys[i] for i in local], *args)):
                parts[i] = value
        if not by_owner:
            self.reply(b"".join(parts) + _END)
            return
        pending = _Pending(parts, len(by_owner))
        self._hold(pending)
        for owner, positions in by_owner.items():
            try:
                ctx.messenger.call(
                    owner, "kv." + name, ([keys[i] for i in positions], *args),
                    partial(self._on_part, pending, positions),
                )
            except ShardUnavailable as exc:
                self._on_part(pending, positions, None, exc)

    def _on_part(self, pending: _Pending, positions: list[int], result: Any, error: BaseException | None) -> None:
        parts = pending.parts
        assert parts is not None
        if error is not None:
            pending.parts = None
            self._complete(pending, _server_error(error))
            return
        for i, value in zip(positions, result):
            parts[i] = value
        pending.missing -= 1
        if pending.missing == 0:
            pending.parts = None
            self._complete(pending, b"".join(parts) + _END)

    def _flush_all(self, delay: int, noreply: bool) -> None:
        ctx = self._ctx
        if noreply:
            for shard in range(ctx.shards):
                if shard == ctx.shard_id:
                    ctx.service.flush(delay)
                else:
                    self._send_noreply(shard, "kv.flush", (delay,))
            return
        self.fan_out("kv.flush", (delay,), lambda results: proto.R_OK)

    def fan_out(self, name: str, args: tuple[Any, ...], finish: Callable[[list[Any]], bytes]) -> None:
        """Run ``name`` on every shard (this one inline) and reply ``finish(results in shard
        order)``; any failure answers SERVER_ERROR."""
        ctx = self._ctx
        results: list[Any] = [None] * ctx.shards
        pending = _Pending(results, ctx.shards)
        self._hold(pending)

        def done(shard: int, result: Any, error: BaseException | None) -> None:
            if pending.parts is None:
                return  # already failed
            if error is not None:
                pending.parts = None
                self._complete(pending, _server_error(error))
                return
            results[shard] = result
            pending.missing -= 1
            if pending.missing == 0:
                pending.parts = None
                self._complete(pending, finish(results))

        for shard in range(ctx.shards):
            if shard == ctx.shard_id:
                done(shard, ctx.handler(name)(*args), None)
            else:
                try:
                    ctx.messenger.call(shard, name, args, partial(done, shard))
                except ShardUnavailable as exc:
                    done(shard, None, exc)


def _same(result: bytes) -> bytes:
    return result


def _nothing(result: Any) -> bytes:
    return b""


def _join_end(result: list[bytes]) -> bytes:
    return result[0] + _END
