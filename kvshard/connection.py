"""One client connection on any network stack: bytes in and out, limits, login, draining.

Theory of operation
-------------------
The connection is an asyncio protocol: it only sees ``data_received`` and a ``Transport``, so
it runs unchanged over every stack: our compiled socket transport for plain TCP and UNIX
sockets (net_backends.posix.socket_stream, which calls ``data_received`` in C and which the
connection writes to in C), uvloop's for TLS and the interpreted core (reached through
``get_buffer``/``buffer_updated``, to bound the size of a read), or the native stack's. It owns the transport and the
cold concerns (the ``-c`` limit, logins, back-pressure, idle kicks, graceful drain, ``stats
conns``); the request path is not here:

    connection --bytes--> session (AsciiSession | BinarySession) --operations--> Dispatcher
    connection <--bytes-- Dispatcher (replies in request order; on_ready: "write them")

The first byte chooses the session for the life of the connection, as in memcached: 0x80 is
the binary protocol (:class:`~kvshard.binary_session.BinarySession`), anything else ASCII
(:class:`~kvshard.ascii_session.AsciiSession`). ``-B ascii|binary`` fixes the session before
any byte comes, as memcached's does, and so does the protocol of the connection's listener
(``-l proto[ascii|binary|negotiating]:``, whatever -B says): binary reads an ASCII line as a
binary header (a bad magic: the connection closes silently once 24 bytes are in), ASCII reads
a binary request as text (a line that ends gets ``ERROR``; 2048 bytes without a newline
close). When every client must log in, the server speaks one protocol only, as memcached
does: binary with SASL (``-S``: the session starts locked), ASCII with an auth file (``-Y``:
reads go through an :class:`~kvshard.protocol.ascii_login.AsciiLogin` until it lets the
connection in, then to the ASCII session as usual); a listener of another protocol is refused
at start (kvshard.cli_config).

After a read's commands ran, the complete replies the dispatcher holds are written at once
(one ``write``); replies that wait for another shard are written when the dispatcher says they
are ready. The dispatcher's ``quitting`` closes the connection after its last reply.

Latency: one read in 64 (when no reply is outstanding) is timed from ``data_received`` to the
moment its last reply goes to the transport, and observed in the shard's
``request_latency_seconds{command}`` histogram under the read's first command. With the metrics
endpoint off nothing could read the histograms, so no read is timed.

Back-pressure: more than :data:`MAX_QUEUED_REPLIES` outstanding replies, or a transport that
asks us to stop writing, pauses reading until the backlog drains to a quarter of that; so do
commands of a read that a session keeps for later (``_deferred``: the session), until they ran.
A session keeps them when the replies backed up, or when the read ran its ``-R`` quota: then
the replies so far are written and the rest runs in a later loop turn (``call_soon``), after
the other connections' reads, as memcached yields after ``reqs_per_event`` requests.

Watching and tracing (``ctx.trace_reads``, one test per read): while some connection watches or
the verbosity is 2, a read first tells the shard's watch hub whose it is (the ``cfd`` of its
log lines) and logs its command lines, and the answers are logged as they are written
(kvshard.verbosity). A connection that sent ``watch`` becomes a watcher: its session is the
hub's sink (kvshard.watchers), and it is neither idle-kicked nor a client any more. New and
closed connections are told to the hub (``watch connevents``) with memcached's close reasons.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Final

from net_backends.posix.socket_stream import SocketTransport, StreamProtocol

from .ascii_session import AsciiSession
from .auth import count_login
from .binary_session import BinarySession
from .dispatcher import DEFER_QUEUED, MAX_QUEUED_REPLIES, Dispatcher
from .protocol.ascii_login import R_AUTH_FAILURE, R_LOGGED_IN, AsciiLogin
from .verbosity import TRACE_LEVEL, command_lines, reply_lines, trace_log

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

if TYPE_CHECKING:
    from .context import ShardContext

__all__ = ["ClientConnection", "MAX_QUEUED_REPLIES", "READ_SIZE", "SAMPLE_MASK", "command_name", "native_number", "socket_address"]

_UNDECIDED: Final = object()  # no byte seen yet: the protocol is not chosen
# memcached's -vv line for a new connection, by its protocol (-B, or its listener's)
_NEW_CONNECTION_EVENTS: Final = {
    "auto": "new auto-negotiating client connection",
    "ascii": "new ascii client connection.",
    "binary": "new binary client connection.",
}

log = logging.getLogger("kvshard.connection")

_RESUME_BELOW: Final = MAX_QUEUED_REPLIES // 4
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


READ_SIZE: Final = 64 << 10  # the most one read takes from a socket (see get_buffer)
_read_buffer = bytearray(READ_SIZE)  # one per shard process, never resized: each read is copied out at once
_read_view = memoryview(_read_buffer)


class ClientConnection(StreamProtocol):
    """Serves one client; see the module docstring for the rules.

    An asyncio buffered protocol by its methods (``get_buffer``/``buffer_updated``), which is
    what uvloop and its TLS layer look for; it does not subclass ``asyncio.BufferedProtocol``
    so that, compiled, it is an extension type with C fields (connection.pxd)."""

    def __init__(self, ctx: "ShardContext", protocol: str | None = None) -> None:
        """``protocol``: "auto", "ascii" or "binary" for this connection: its listener's
        (``-l proto[...]:``), by default the server's (-B)."""
        self._ctx = ctx
        self._dispatcher = Dispatcher(ctx, self._replies_ready, self._update_reading)
        self._ascii = AsciiSession(self._dispatcher, ctx)
        self._transport: asyncio.Transport | None = None
        self._write: Callable[[bytes], object] | None = None  # transport.write, once connected
        self._socket: SocketTransport | None = None  # the transport when it is ours (see _use_transport)
        self._draining = False  # the server is stopping (see drain)
        self._deferred: Any = None  # the session holding commands for a later turn (see _run_deferred)
        self._eof_sent = False
        self._reading_paused = False
        self._writing_paused = False
        self._counted = False
        self._conn_stats = ctx.service.conn_stats
        self._binary: Any = _UNDECIDED  # a BinarySession once chosen, None for ASCII
        self._login: AsciiLogin | None = None  # -Y: the gate until the client logs in
        protocol = ctx.binding_protocol if protocol is None else protocol
        self._protocol = protocol
        if ctx.sasl is not None or protocol == "binary":
            self._binary = BinarySession(self._dispatcher, sasl=ctx.sasl)
        elif ctx.ascii_login is not None or protocol == "ascii":
            self._binary = None
            if ctx.ascii_login is not None:
                self._login = AsciiLogin(ctx.ascii_login.check)
        self._reads = 0
        self._sample_mask = ctx.latency_sample_mask  # reads & mask == 0: timed (-1: never)
        self._sample_start = 0.0  # a sampled read waiting for its last reply
        self._sample_command = ""
        self.conn_id = -1  # set once accepted: see ``describe``
        self._last_command = 0
        self._close_reason = "normal"  # memcached's, for ``watch connevents``

    # ----- transport callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._use_transport(transport)
        ctx = self._ctx
        stats = ctx.service.conn_stats
        open_now = ctx.open_connections() if ctx.open_connections else stats.curr_connections
        if open_now >= ctx.max_connections:
            stats.rejected_connections += 1
            transport.write(b"ERROR Too many open connections\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        self._counted = True
        sock = transport.get_extra_info("socket")
        self.conn_id = _conn_id(sock, ctx.shards, ctx.shard_id)
        self._dispatcher.conn_id = self.conn_id
        self._last_command = ctx.now
        ctx.connections[self.conn_id] = self
        stats.curr_connections += 1
        stats.total_connections += 1
        if ctx.publish_connections:
            ctx.publish_connections(stats.curr_connections)
        if ctx.trace_reads:
            self._trace_event(transport, _NEW_CONNECTION_EVENTS[self._protocol], True)
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def _use_transport(self, transport: Any) -> None:
        """Write to ``transport`` from now on (its ``write`` bound once, called per read)."""
        self._transport = transport
        self._write = transport.write
        self._socket = transport if isinstance(transport, SocketTransport) else None  # written to in C

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted and self._ctx.trace_reads:
            self._trace_event(self._transport, "connection closed.", False, "error" if exc is not None else None)
        watch = self._ctx.watch
        if self._counted and watch is not None:
            watch.watcher_closed(self.conn_id)
        if self._counted:
            self._ctx.connections.pop(self.conn_id, None)
            stats = self._ctx.service.conn_stats
            stats.curr_connections -= 1
            if self._ctx.publish_connections:
                self._ctx.publish_connections(stats.curr_connections)
            self._counted = False
        self._transport = None
        self._dispatcher.abandon()

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
        a connection whose commands must wait (see ``_deferred``) holds to one small read, the
        rest staying in the kernel's socket buffer: a 64-connection set flood peaked at 155-168
        MiB with 256 KiB reads, 121-128 MiB with these (-m 64, two shards), for the same
        memaslap throughput. The native stack calls ``data_received`` directly."""
        return _read_view

    def buffer_updated(self, nbytes: int) -> None:
        if cython.compiled:  # the read's bytes copied out in one call, no view or slice made
            self.data_received(PyBytes_FromStringAndSize(PyByteArray_AS_STRING(_read_buffer), nbytes))
            return
        self.data_received(_read_view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        dispatcher = self._dispatcher
        if self._transport is None or dispatcher.quitting or not self._counted:
            return
        tracing = self._ctx.trace_reads
        if tracing:
            self._trace_read(data)
        self._conn_stats.bytes_read += len(data)
        self._last_command = self._ctx.now
        self._reads += 1
        start = 0.0
        if not self._reads & self._sample_mask and not dispatcher.owed:
            start = _perf_counter()
            self._sample_command = command_name(data)
        if self._binary is None or not self._feed_binary(data):
            if self._login is not None:
                data = self._log_in(data)
            if self._ascii.feed(data):
                self._defer(self._ascii)
        self._write_out()  # what the read's commands answered, in one write
        if self._deferred is not None:
            self._continue_deferred()
        if start:
            self._sample_start = start
            self._end_sample()
        if tracing and self._ctx.watch is not None:
            self._ctx.watch.client_fd = -1

    def eof_received(self) -> bool | None:
        return None  # close our side too, as memcached does

    # ----- sessions -------------------------------------------------------------------------

    def _feed_binary(self, data: bytes) -> bool:
        """Binary connections: run the read and return True. The first read decides; an
        ASCII connection answers False from then on without coming here."""
        session = self._binary
        if session is _UNDECIDED:
            if data[0] != 0x80:
                self._binary = None
                return False
            session = self._binary = BinarySession(self._dispatcher)
        if cython.compiled and isinstance(session, BinarySession):  # (interpreted, the cast would be a call)
            waiting = cython.cast(BinarySession, session).feed(data)
        else:
            waiting = session.feed(data)  # a watcher's sink
        if waiting:
            self._defer(session)
        return True

    def _log_in(self, data: bytes) -> bytes:
        """-Y: run a read through the login gate; returns what follows a login (b"" while
        the client is still out)."""
        assert self._login is not None
        step = self._login.feed(data)
        for reply in step.replies:
            if reply is R_LOGGED_IN or reply is R_AUTH_FAILURE:
                count_login(self._conn_stats, reply is R_LOGGED_IN)
            self._dispatcher.reply(reply)
        if step.close:
            self._dispatcher.quit()
        if step.rest is None:
            return b""
        self._login = None
        return step.rest

    def _defer(self, session: Any) -> None:
        """``session`` keeps commands for a later turn: stop reading until they ran."""
        self._deferred = session
        self._update_reading()  # deferred commands pause reading like any back-pressure

    def _run_deferred(self) -> None:
        session, self._deferred = self._deferred, None
        if session is None or self._transport is None:
            return
        watch = self._ctx.watch
        if watch is not None and watch.flags:
            watch.client_fd = self._descriptor()
        more = session.run_pending()
        if watch is not None:
            watch.client_fd = -1
        if more:
            self._defer(session)
        self._write_out()
        self._continue_deferred()

    def _continue_deferred(self) -> None:
        """Go on with deferred commands once the transport takes more (now, or at
        resume_writing) and the other shards' replies have come in (at _replies_ready)."""
        if self._deferred is None:
            self._update_reading()
        elif not self._writing_paused and self._dispatcher.owed < DEFER_QUEUED // 2:
            asyncio.get_running_loop().call_soon(self._run_deferred)

    # ----- output ------------------------------------------------------------------------------

    def _replies_ready(self) -> None:
        """The dispatcher completed the reply at the head of its queue: write what is ready."""
        self._write_out()
        if self._sample_start:
            self._end_sample()
        if self._deferred is not None:
            self._continue_deferred()
        elif self._reading_paused:
            self._update_reading()

    def _write_out(self) -> None:
        dispatcher = self._dispatcher
        data = dispatcher.take_output()
        transport = self._transport
        if transport is None:
            return
        if data:
            self._conn_stats.bytes_written += len(data)
            if self._socket is not None:
                self._socket.write(data)
            else:
                self._write(data)
        if dispatcher.quitting and not dispatcher.owed:
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
        backlog = self._dispatcher.owed
        if not self._reading_paused and (self._writing_paused or backlog > MAX_QUEUED_REPLIES or self._deferred is not None):
            self._reading_paused = True
            transport.pause_reading()
        elif self._reading_paused and not self._writing_paused and backlog < _RESUME_BELOW and self._deferred is None:
            self._reading_paused = False
            transport.resume_reading()

    def _end_sample(self) -> None:
        """A sampled read is done once no reply is outstanding: its latency is the time from
        the read to its last reply handed to the transport."""
        if not self._dispatcher.owed and self._sample_start:
            self._ctx.observe_latency(self._sample_command, _perf_counter() - self._sample_start)
            self._sample_start = 0.0

    # ----- cold: idle kicks, drain, stats conns ------------------------------------------------

    def kick_if_idle(self, before: int) -> None:
        """``-o idle_timeout``: close the connection if its last command came before ``before``
        (seconds of the shard's clock) and it owes no reply; counted in ``idle_kicks``. A
        watcher is never idle (memcached kicks only connections waiting for a command)."""
        dispatcher = self._dispatcher
        if self._ctx.watch is not None and self._ctx.watch.is_watcher(self.conn_id):
            return
        if self._last_command < before and not dispatcher.owed and self._transport is not None and not dispatcher.quitting:
            self._close_reason = "idle_timeout"
            self._conn_stats.idle_kicks += 1
            dispatcher.quit()
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
        self._close_reason = "shutdown"
        self._dispatcher.quit()
        if not self._dispatcher.owed:
            self._write_out()

    def describe(self, asking: int) -> tuple[int, str, str, str, int]:
        """This connection for ``stats conns``: (id, addr, listen_addr, state, seconds since
        its last read). ``asking`` is the id of the connection that asked (its state is
        ``conn_parse_cmd``, as in memcached)."""
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        local = transport.get_extra_info("sockname") if transport is not None else None
        parser = self._ascii.parser
        if self._ctx.watch is not None and self._ctx.watch.is_watcher(self.conn_id):
            state = "conn_watch"
        elif self.conn_id == asking:
            state = "conn_parse_cmd"
        elif parser.buffered or self._dispatcher.owed:
            state = "conn_nread" if parser.reading_data else "conn_parse_cmd"
        else:
            state = "conn_read"
        return self.conn_id, socket_address("tcp", peer), socket_address("tcp", local), state, self._ctx.now - self._last_command

    # ----- cold: watching and tracing (see the module docstring) -----------------------------

    def become_watcher(self, sink: Any) -> None:
        """``watch``: from now on reads go to ``sink``, which drops them."""
        self._binary = sink
        self._login = None

    def _descriptor(self) -> int:
        """The connection's socket in its shard's process (memcached's ``cfd``, ``<17``)."""
        return self.conn_id // self._ctx.shards if self.conn_id >= 0 else -1

    def _trace_read(self, data: bytes) -> None:
        """Before a read runs: the hub learns whose it is; at verbosity 2 its command lines are
        logged and the answers will be (``_traced_write``)."""
        ctx = self._ctx
        fd = self._descriptor()
        if ctx.watch is not None:
            ctx.watch.client_fd = fd
        binary = self._binary
        if ctx.verbosity[0] < TRACE_LEVEL or binary is not None and (binary is not _UNDECIDED or data[:1] == b"\x80"):
            return
        parser = self._ascii.parser
        for line in command_lines(parser._want, parser._buf, data):
            trace_log.debug("<%d %s", fd, line.decode("utf-8", "backslashreplace"))
        if self._transport is not None:
            self._write = self._traced_write
            self._socket = None

    def _traced_write(self, data: bytes) -> None:
        """``transport.write`` that logs the answers while the verbosity is 2 (then it puts the
        plain one back)."""
        transport = self._transport
        if transport is None:
            return
        if self._ctx.verbosity[0] >= TRACE_LEVEL:
            fd = self._descriptor()
            for line in reply_lines(data):
                trace_log.debug(">%d %s", fd, line.decode("utf-8", "backslashreplace"))
        else:
            self._use_transport(transport)
        transport.write(data)

    def _trace_event(self, transport: Any, event: str, opened: bool, reason: str | None = None) -> None:
        """A connection opened or closed: logged at verbosity 2, and told to watchers."""
        ctx = self._ctx
        fd = self._descriptor()
        if ctx.verbosity[0] >= TRACE_LEVEL:
            trace_log.debug("<%d %s", fd, event)
        watch = ctx.watch
        if watch is None or not watch.flags or transport is None:
            return
        peer = transport.get_extra_info("peername")
        if opened:
            watch.conn_new(peer, fd)
        else:
            watch.conn_close(peer, reason or self._close_reason, fd)
