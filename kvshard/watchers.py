"""``watch``: memcached's log streams, from every shard to the connections that watch them.

Theory of operation
-------------------
Every shard has one :class:`WatchHub`. A watcher is a client connection, named by ``(its
shard, its conn_id)``; it watches a set of streams (kvshard.protocol.watch's ``LOG_*`` bits).

  * **Starting** (``watch`` on shard W): the connection stops being a client. Its protocol
    session is replaced by a :class:`WatchSink` (what the client sends from then on is read and
    dropped, as memcached stops parsing a watcher's input), and W calls ``kv.watch_add(W,
    conn_id, streams)`` on every shard, itself included, through the connection's dispatcher.
    When every shard has answered, the reply is ``OK`` and, right behind it, any lines that
    arrived meanwhile (the sink holds them until then, so ``OK`` always comes first).
  * **Logging** (any shard): each hub keeps every watcher's streams and their union,
    :attr:`WatchHub.flags`, which it copies to its listeners (the cache's ``watch_flags`` and
    the context's ``trace_reads``). The item store and the connections test that one integer
    and only call the hub when it is non-zero, so nobody watching costs one C-level test per
    request. An event becomes one line (kvshard.watch_lines), stamped with the time and this
    shard's next ``gid``, and queued for each watcher that wants its stream.
  * **Shipping**: the first line queued in a loop iteration schedules :meth:`WatchHub._ship`
    (``call_soon``), which sends each watcher's shard one ``kv.watch_lines`` message with every
    line queued for its watchers (this shard's own go through the same handler, inline). A link
    too full to take it drops the batch and counts the lines; the watcher's next batch starts
    with memcached's ``skipped=N`` line.
  * **Delivering** (W): ``kv.watch_lines`` writes each batch to its sink; a sink whose transport
    holds more than :data:`WATCHER_BACKLOG` unsent bytes drops lines the same way (memcached's
    watcher buffer). Lines for a watcher that is gone make W ask their shard to forget it.
  * **Stopping**: when a watcher's connection closes, W calls ``kv.watch_remove`` on every shard.

At most :data:`WATCHER_LIMIT` watchers, server-wide, as in memcached (every hub knows them all).
A shard that restarts starts with no watchers: existing watchers no longer hear from it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Final

from framework import ShardUnavailable

from . import watch_lines as lines
from .protocol.watch import LOG_CONNEVENTS, LOG_EVICTIONS, LOG_FETCHERS, LOG_MUTATIONS

__all__ = [
    "WatchHub", "WatchSink", "WATCHER_LIMIT", "WATCHER_BACKLOG", "WATCH_ADD", "WATCH_REMOVE", "WATCH_LINES",
    "R_WATCHER_TOO_MANY", "R_WATCHER_FAILED",
]

log = logging.getLogger("kvshard.watch")

WATCHER_LIMIT: Final = 20
WATCHER_BACKLOG: Final = 256 << 10  # memcached's watcher buffer (LOGGER_WATCHER_BUF_SIZE)
WATCH_ADD: Final = "kv.watch_add"
WATCH_REMOVE: Final = "kv.watch_remove"
WATCH_LINES: Final = "kv.watch_lines"
R_WATCHER_TOO_MANY: Final = b"WATCHER_TOO_MANY log watcher limit reached\r\n"
R_WATCHER_FAILED: Final = b"WATCHER_FAILED failed to add log watcher\r\n"
_OK: Final = b"OK\r\n"

Watcher = tuple[int, int]  # (its shard, its conn_id)


class WatchSink:
    """A watching connection's session: input dropped, log lines written to its transport."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._held: list[bytes] | None = []  # lines that came before the OK went out
        self._skipped = 0

    def feed(self, data: bytes) -> None:
        """What the client sends: dropped."""

    def start(self) -> bytes:
        """The watch is on everywhere: the OK line and what came meanwhile; direct from now."""
        held, self._held = self._held or [], None
        return _OK + b"".join(held)

    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > WATCHER_BACKLOG:
            self._skipped += data.count(b"\n")
            return
        if self._skipped:
            data = b"skipped=%d\n%b" % (self._skipped, data)
            self._skipped = 0
        transport.write(data)


class WatchHub:
    """One shard's watchers and log lines; see the module docstring."""

    def __init__(self, shard_id: int, shards: int, messenger: Any, loop: Any,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.shard_id = shard_id
        self.shards = shards
        self.flags = 0  # the union of every watcher's streams: 0 when nobody watches
        self.client_fd = -1  # the descriptor of the client whose read runs now (-1: none)
        self.listeners: list[Callable[[int], None]] = []  # told the new flags
        self._messenger = messenger
        self._loop = loop
        self._clock = clock
        self._watchers: dict[Watcher, int] = {}
        self._sinks: dict[int, WatchSink] = {}  # this shard's watching connections by conn_id
        self._outbox: dict[Watcher, list[str]] = {}
        self._skipped: dict[Watcher, int] = {}
        self._shipping = False
        self._count = 0

    def register(self, shard: Any) -> None:
        shard.register(WATCH_ADD, self.add)
        shard.register(WATCH_REMOVE, self.remove)
        shard.register(WATCH_LINES, self.deliver)

    # ----- watchers ------------------------------------------------------------------------

    def start(self, dispatcher: Any, connection: Any, streams: int) -> bytes | None:
        """Make ``connection`` a watcher; None once started (its dispatcher answers OK when
        every shard knows), else the refusal to answer."""
        if len(self._watchers) >= WATCHER_LIMIT:
            return R_WATCHER_TOO_MANY
        if connection is None:  # a UDP datagram is nothing to stream to
            return R_WATCHER_FAILED
        sink = WatchSink(connection._transport)
        connection.become_watcher(sink)
        self._sinks[connection.conn_id] = sink
        dispatcher.fan_out(WATCH_ADD, (self.shard_id, connection.conn_id, streams), lambda results: sink.start())
        return None

    def is_watcher(self, conn_id: int) -> bool:
        return conn_id in self._sinks

    def watcher_closed(self, conn_id: int) -> None:
        """This shard's watching connection ``conn_id`` closed: every shard forgets it."""
        if self._sinks.pop(conn_id, None) is None:
            return
        for shard in range(self.shards):
            self._send(shard, WATCH_REMOVE, self.shard_id, conn_id)

    def add(self, shard: int, conn_id: int, streams: int) -> bool:
        """``kv.watch_add``: from now on, lines of ``streams`` go to this watcher."""
        self._watchers[(shard, conn_id)] = streams
        self._update_flags()
        return True

    def remove(self, shard: int, conn_id: int) -> None:
        """``kv.watch_remove``."""
        watcher = (shard, conn_id)
        if self._watchers.pop(watcher, None) is not None:
            self._outbox.pop(watcher, None)
            self._skipped.pop(watcher, None)
            self._update_flags()

    def _update_flags(self) -> None:
        flags = 0
        for streams in self._watchers.values():
            flags |= streams
        self.flags = flags
        for listener in self.listeners:
            listener(flags)

    # ----- events: called only when ``flags`` is not 0 -------------------------------------

    def item_get(self, key: bytes, status: int, flags: int, size: int) -> None:
        if self.flags & LOG_FETCHERS:
            self._log(LOG_FETCHERS, lines.item_get(key, status, flags, size, self.client_fd))

    def item_store(self, key: bytes, status: str, command: str, ttl: int, clsid: int, size: int) -> None:
        if self.flags & LOG_MUTATIONS:
            self._log(LOG_MUTATIONS, lines.item_store(key, status, command, ttl, clsid, size, self.client_fd))

    def eviction(self, key: bytes, fetched: bool, ttl: int, last_access: int, flags: int, size: int) -> None:
        if self.flags & LOG_EVICTIONS:
            self._log(LOG_EVICTIONS, lines.eviction(key, fetched, ttl, last_access, flags, size))

    def conn_new(self, peer: object, cfd: int) -> None:
        if self.flags & LOG_CONNEVENTS:
            self._log(LOG_CONNEVENTS, lines.conn_new(peer, cfd))

    def conn_close(self, peer: object, reason: str, cfd: int) -> None:
        if self.flags & LOG_CONNEVENTS:
            self._log(LOG_CONNEVENTS, lines.conn_close(peer, reason, cfd))

    def _log(self, stream: int, body: str) -> None:
        self._count += 1
        line = lines.stamp(self._clock(), self._count * self.shards + self.shard_id, body)
        outbox = self._outbox
        for watcher, streams in self._watchers.items():
            if streams & stream:
                queued = outbox.get(watcher)
                if queued is None:
                    outbox[watcher] = [line]
                else:
                    queued.append(line)
        if outbox and not self._shipping:
            self._shipping = True
            self._loop.call_soon(self._ship)

    # ----- shipping and delivering -----------------------------------------------------------

    def _ship(self) -> None:
        """Send every watcher's queued lines to its shard: one message per shard."""
        self._shipping = False
        outbox, self._outbox = self._outbox, {}
        by_shard: dict[int, list[tuple[int, bytes]]] = {}
        counts: dict[int, list[tuple[Watcher, int]]] = {}
        for watcher, queued in outbox.items():
            text = "".join(queued)
            skipped = self._skipped.pop(watcher, 0)
            if skipped:
                text = "skipped=%d\n%s" % (skipped, text)
            by_shard.setdefault(watcher[0], []).append((watcher[1], text.encode()))
            counts.setdefault(watcher[0], []).append((watcher, len(queued) + skipped))
        for shard, batch in by_shard.items():
            if not self._send(shard, WATCH_LINES, self.shard_id, batch):
                for watcher, count in counts[shard]:
                    if watcher in self._watchers:
                        self._skipped[watcher] = count

    def deliver(self, origin: int, batch: list[tuple[int, bytes]]) -> None:
        """``kv.watch_lines`` from shard ``origin``: each watcher's lines to its connection."""
        for conn_id, data in batch:
            sink = self._sinks.get(conn_id)
            if sink is None:  # closed before its shards heard: the sender forgets it
                self._send(origin, WATCH_REMOVE, self.shard_id, conn_id)
            else:
                sink.write(data)

    def _send(self, shard: int, name: str, *args: Any) -> bool:
        """A one-way message (inline for this shard); False if it could not go."""
        try:
            return bool(self._messenger.send(shard, name, *args))
        except ShardUnavailable:
            if name == WATCH_LINES:  # its watchers' connections died with it
                for watcher in [w for w in self._watchers if w[0] == shard]:
                    self.remove(*watcher)
            return False
        except Exception:  # pragma: no cover - a watch must never break the request path
            log.exception("watch: sending %s to shard %d failed", name, shard)
            return False
