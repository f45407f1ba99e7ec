"""The ASCII protocol of one connection (classic and meta commands): parsed commands in, work
for the dispatcher out.

Theory of operation
-------------------
Each read is fed to the sans-IO parser (:class:`~kvshard.protocol.ascii.AsciiParser`), except
a read that is exactly one plain ``get <key>`` or one plain ``set`` with its data block, the
most common requests, which skip it (see ``single_get_key``, and ``whole_plain_set``, in C,
or ``plain_set_fields``: they take only what the parser would read the same way, and run it
as :meth:`_execute` runs the parser's command). The commands come out in order and are executed at once, in order, each
by one call on the connection's :class:`~kvshard.dispatcher.Dispatcher`, which routes it and
keeps its reply in turn.

Back-pressure inside one read: every 16 commands, if the replies owed have backed up
(:meth:`Dispatcher.backed_up`), the rest of the read's commands wait in the session instead of
running (``feed`` answers True): the connection stops reading and calls :meth:`run_pending`
when the transport has drained. A client that pipelines thousands of gets for a big value and
reads nothing cannot make the server build gigabytes of replies.

Fairness (``-R``, memcached's ``reqs_per_event``): a read runs at most ``reqs_per_event + 1``
commands and each later turn ``reqs_per_event``, as memcached counts them (its first command of
a read event is parsed before the count starts); then the rest wait the same way, the
connection writes the replies so far and yields the loop to the other connections until its
next turn. A turn that used its whole quota counts one ``conn_yields``, even when nothing is
left (memcached counts it so too). The cost on the request path is one integer compare.

The session never touches the transport; closing is asked of the dispatcher (``quit``).

``verbosity`` and ``watch`` concern every shard: ``verbosity N`` runs on each
(kvshard.verbosity) before its ``OK``; ``watch`` turns the connection into a watcher
(kvshard.watchers), and the commands after it in the same read are dropped, as memcached stops
reading a watcher's commands. memcached refuses a ``watch`` that has answers of earlier
commands still waiting to go out with it (``ERROR cannot pipeline other commands before
watch``): that is any command earlier in the same read, after the last one whose answer it
writes at once (get, gets, gat, gats, mn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from . import item_commands, slab_mover
from .dispatcher import Dispatcher
from .protocol.ascii import R_ERROR, R_FLUSH_REFUSED, R_OK, R_TOO_LARGE, AsciiParser, plain_set_fields, single_get_key
from .protocol.meta import R_MN
from .service import STORE_CODES, as_int64
from .verbosity import VERBOSITY_HANDLER

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

if not cython.compiled:  # compiled, these are C constants (ascii.pxd, service.pxd), cimported by ascii_session.pxd
    from .protocol.ascii import (
        ARITH, CLOSE, DELETE, FLUSH, FLUSH_REFUSED, GAT, GET, ITEM_ADMIN, META, QUIT, REPLY, SHUTDOWN, STATS, STORE,
        TOO_LARGE, TOUCH, VERBOSITY, VERSION, WATCH,
    )
    from .service import FIXED_ARITH, FIXED_DELETE, FIXED_STORE, FIXED_TOUCH

if TYPE_CHECKING:
    from .context import ShardContext

__all__ = ["AsciiSession", "R_WATCH_DISABLED", "R_WATCH_PIPELINED"]

R_WATCH_DISABLED: Final = b"CLIENT_ERROR watch commands not allowed\r\n"
R_WATCH_PIPELINED: Final = b"ERROR cannot pipeline other commands before watch\r\n"
_NO_COMMANDS: list[tuple[Any, ...]] = []
_INT64_LIMIT: Final = 1 << 63
_SET_STORE_CODE: Final = STORE_CODES[b"set"]  # (the fast path's; a C integer compiled)


def _answer_ok(results: list[Any]) -> bytes:
    return R_OK


def _answer_nothing(results: list[Any]) -> bytes:
    return b""


class AsciiSession:
    """Executes one connection's ASCII commands; see the module docstring."""

    def __init__(self, dispatcher: Dispatcher, ctx: "ShardContext") -> None:
        self.parser = AsciiParser(ctx.max_item_size, ctx.flush_enabled)
        self._dispatcher = dispatcher
        self._ctx = ctx
        self._batch = _NO_COMMANDS  # the commands _run executes (see _watch)
        self._batch_start = 0  # where this turn started in them
        self._pending: list[tuple[Any, ...]] | None = None  # commands waiting for the next turn
        self._pending_at = 0

    def feed(self, data: bytes) -> bool:
        """Run the commands of one read; True when some wait for :meth:`run_pending` (see
        the module docstring)."""
        parser = self.parser
        if parser.is_idle():  # the most common requests, a whole read by themselves
            key = single_get_key(data)
            if key is not None:
                self._dispatcher.get_one(key)
                return False
            if cython.compiled:
                if whole_plain_set(data, parser.max_item_size, cython.address(line)):
                    self._dispatcher.run_hot(  # as _execute runs the parser's STORE of a set
                        bytes_slice(data, line.key_at, line.key_at + line.key_len), line.noreply, FIXED_STORE,
                        bytes_slice(data, line.value_at, line.value_at + line.length),
                        _SET_STORE_CODE | cython.cast(cython.longlong, line.flags) << 8, line.exptime, 0)
                    return False
            else:
                fields = plain_set_fields(data, parser.max_item_size)
                if fields is not None:
                    key, flags, exptime, value, noreply = fields
                    self._dispatcher.run_hot(key, noreply, FIXED_STORE, value, _SET_STORE_CODE | flags << 8, exptime, 0)
                    return False
        if not data:
            return False
        return self._run(parser.feed(data), 0, self._ctx.reqs_per_event + 1)

    def run_pending(self) -> bool:
        """The next turn of the commands that waited; True when some still wait."""
        commands, self._pending = self._pending, None
        if commands is None:
            return False
        return self._run(commands, self._pending_at, self._ctx.reqs_per_event)

    def _run(self, commands: list[tuple[Any, ...]], start: int, quota: int) -> bool:
        """Execute ``commands[start:]`` in order, at most ``quota`` of them; keep the rest
        when the quota ran out or the replies backed up. True when some wait."""
        dispatcher = self._dispatcher
        self._batch = commands
        self._batch_start = start
        end = start + quota
        i = start
        while i < len(commands):  # (a watch may cut the list short as it runs)
            self._execute(commands[i])
            i += 1
            if dispatcher.quitting:
                break
            if i == end:
                self._ctx.service.conn_stats.conn_yields += 1
                break
            if (i - start) & 15 == 0 and dispatcher.backed_up():
                break
        self._batch = _NO_COMMANDS  # holds no values once run
        if i < len(commands) and not dispatcher.quitting:
            self._pending = commands
            self._pending_at = i
            return True
        return False

    def _execute(self, cmd: tuple[Any, ...]) -> None:
        d = self._dispatcher
        op = cmd[0]
        if op == GET:
            d.get_many(cmd[1], cmd[2], None)
        elif op == STORE:
            _, verb, key, flags, exptime, value, cas, noreply = cmd
            d.run_hot(key, noreply, FIXED_STORE, value, STORE_CODES[verb] | flags << 8, exptime,
                      cas if cas < _INT64_LIMIT else as_int64(cas))  # (no call for the usual small CAS)
        elif op == REPLY:
            d.reply(cmd[1])
        elif op == DELETE:
            d.run_hot(cmd[1], cmd[2], FIXED_DELETE, None, 0, 0, 0)
        elif op == ARITH:
            d.run_hot(cmd[2], cmd[4], FIXED_ARITH, None, 1 if cmd[1] else 0, as_int64(cmd[3]), 0)
        elif op == TOUCH:
            d.run_hot(cmd[1], cmd[3], FIXED_TOUCH, None, cmd[2], 0, 0)
        elif op == GAT:
            d.get_many(cmd[1], cmd[2], cmd[3])
        elif op == TOO_LARGE:
            _, verb, key, noreply = cmd
            d.run_keyed_noreply(key, "too_large", (verb, key))
            if not noreply:
                d.reply(R_TOO_LARGE)
        elif op == META:
            d.run_keyed(cmd[2], "meta", cmd[1:])
        elif op == FLUSH:
            d.flush_all(cmd[1], cmd[2], R_OK)
        elif op == FLUSH_REFUSED:  # -F: counted as a flush all the same, as memcached counts it
            self._ctx.service.cache.stats.cmd_flush += 1
            if not cmd[1]:
                d.reply(R_FLUSH_REFUSED)
        elif op == VERSION:
            d.reply(b"VERSION %s\r\n" % self._ctx.version.encode())
        elif op == VERBOSITY:
            d.fan_out(VERBOSITY_HANDLER, (cmd[1],), _answer_nothing if cmd[2] else _answer_ok)
        elif op == STATS:
            d.stats_command(d, cmd[1])
        elif op == QUIT:
            d.quit()
        elif op == SHUTDOWN:
            self._shutdown(cmd[1])
        elif op == WATCH:
            self._watch(cmd)
        elif op == ITEM_ADMIN:
            self._item_admin(cmd)
        elif op == CLOSE:
            d.quit()
            d.abandon()
        else:  # pragma: no cover - the parser emits nothing else
            d.reply(R_ERROR)

    def _watch(self, cmd: tuple[Any, ...]) -> None:
        """``watch [streams]``, checked in memcached's order: -W, pipelining, the names, the
        number of watchers (see the module docstring)."""
        _, streams, noreply = cmd
        d = self._dispatcher
        ctx = self._ctx
        refusal: bytes | None = R_ERROR
        if not ctx.watch_enabled or ctx.watch is None:
            refusal = R_WATCH_DISABLED
        elif self._answers_waiting(cmd):
            refusal = R_WATCH_PIPELINED
        elif streams >= 0:
            refusal = ctx.watch.start(d, ctx.connections.get(d.conn_id), streams)
        if refusal is None:
            batch = self._batch
            for i in range(self._batch_start, len(batch)):
                if batch[i] is cmd:
                    del batch[i + 1 :]  # run() stops here: a watcher runs no more commands
                    break
        elif not noreply:
            d.reply(refusal)

    def _item_admin(self, cmd: tuple[Any, ...]) -> None:
        """``cache_memlimit``, ``lru_crawler`` and ``lru`` (kvshard.item_commands), ``slabs``
        (kvshard.slab_mover)."""
        tokens = cmd[1]
        if tokens[0] == b"cache_memlimit":
            item_commands.cache_memlimit(self._dispatcher, tokens)
        elif tokens[0] == b"lru":
            item_commands.lru(self._ctx, self._dispatcher, tokens)
        elif tokens[0] == b"slabs":
            slab_mover.slabs_command(self._ctx, self._dispatcher, tokens)
        else:
            item_commands.lru_crawler(self._ctx, self._dispatcher, tokens, self._answers_waiting(cmd))

    def _answers_waiting(self, cmd: tuple[Any, ...]) -> bool:
        """Some command before ``cmd`` in this read has an answer memcached would still hold."""
        waiting = False
        batch = self._batch
        for i in range(self._batch_start, len(batch)):
            earlier = batch[i]
            if earlier is cmd:
                break
            op = earlier[0]
            waiting = not (op == GET or op == GAT or (op == REPLY and earlier[1] == R_MN))
        return waiting

    def _shutdown(self, mode: bytes | None) -> None:
        """memcached's ``shutdown`` (``-A`` only): the whole server stops, gracefully (kvshard's
        stop always drains, so ``shutdown graceful`` is the same); this connection closes."""
        d = self._dispatcher
        if self._ctx.request_shutdown is None:
            d.reply(b"ERROR: shutdown not enabled\r\n")
        elif mode not in (None, b"graceful"):
            d.reply(b"CLIENT_ERROR invalid shutdown mode\r\n")
        else:
            d.quit()
            self._ctx.request_shutdown()
