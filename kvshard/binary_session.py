"""The binary protocol on a client connection: requests in, memcached's answers out.

Theory of operation
-------------------
A connection whose first byte is 0x80 hands every read to a :class:`BinarySession`. The session
feeds the sans-IO :class:`~kvshard.protocol.binary.BinaryParser` and executes each request at
once, in order, through the connection's :class:`~kvshard.dispatcher.Dispatcher`, which routes
it and keeps replies in request order across shards:

  * keyed requests run the owner's ``kv.b*`` handler (inline when this shard owns the key, over
    the channels otherwise); the handler returns facts (flags, CAS, value, result code) and a
    small ``finish`` closure here turns them into the response packet, echoing the request's
    opcode, opaque and (GETK/GATK) key;
  * quiet opcodes answer nothing on success (and nothing on a miss for the get family) but
    still answer errors, as memcached does;
  * exptimes are unsigned 32-bit here (memcached reads them so: there is no negative,
    "already expired" exptime in the binary protocol; a time in the past is absolute);
  * flush and stat run on every shard (``fan_out``); stat reuses the ASCII formatter and turns
    its ``STAT name value`` lines into packets, ending with the empty packet;
  * a request the parser refused comes as CLOSE: its error reply is sent, then the connection
    closes (memcached closes after ``Invalid arguments`` and ``Unknown command``).

With SASL on (``-S``) the connection starts locked (the parser refuses everything but the SASL
opcodes and VERSION) and logs in with mechanism PLAIN, the only one listed:

  * AUTH ``PLAIN`` (any case) with ``[authzid] NUL user NUL password``: ``Authenticated`` and
    unlocked, or ``Auth failure.`` (status 0x20) and locked, the connection open for another
    try; a failed AUTH also locks a connection that had logged in (memcached does the same);
  * AUTH ``PLAIN`` with no data: status 0x21 (continue) with an empty challenge; the next STEP
    carries the data. A STEP at any other time, or an unknown mechanism, fails;
  * ``auth_cmds`` counts every AUTH and STEP but the empty AUTH, ``auth_errors`` the failed
    ones, as memcached's counters do.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Callable, Final

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

from . import cache as c
from .auth import Credentials, count_login, plain_login
from .protocol import ascii as ascii_proto
from .protocol import binary as b
from .protocol.binary import single_get as _single_get
from .service import BINARY_STORE_VERBS as _STORE_VERBS
from .service import BINARY_RESULT_STATUS as _RESULT_STATUS
from .service import as_int64

if not cython.compiled:  # compiled, C constants (service.pxd), cimported by binary_session.pxd
    from .service import FIXED_BGET_PACKET, FIXED_BSTORE_PACKET

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

__all__ = ["BinarySession"]

_FLAGS: Final = struct.Struct(">I")
_STORE_EXTRAS: Final = struct.Struct(">II")
_ARITH_EXTRAS: Final = struct.Struct(">QQI")
_COUNTER: Final = struct.Struct(">Q")

_GETS: Final = frozenset((b.OP_GET, b.OP_GETQ, b.OP_GETK, b.OP_GETKQ))
_GATS: Final = frozenset((b.OP_GAT, b.OP_GATQ, b.OP_GATK, b.OP_GATKQ))
_WITH_KEY: Final = frozenset((b.OP_GETK, b.OP_GETKQ, b.OP_GATK, b.OP_GATKQ))


class BinarySession:
    """Executes binary requests for one connection, through its dispatcher."""

    def __init__(self, dispatcher: "Dispatcher", sasl: Credentials | None = None) -> None:
        self._dispatcher = dispatcher
        self._parser = b.BinaryParser(dispatcher.ctx.max_item_size, sasl=sasl is not None)
        self._credentials = sasl
        self._continuing = False  # an AUTH PLAIN came without data: the next STEP brings it
        self._pending: list[b.Request] | None = None  # requests waiting for the next turn (-R)
        self._pending_at = 0

    def feed(self, data: bytes) -> bool:
        """Run the requests of one read; True when some wait for :meth:`run_pending` (``-R``,
        as kvshard.ascii_session counts it: this read runs at most ``reqs_per_event + 1``)."""
        dispatcher = self._dispatcher
        parser = self._parser
        if parser.is_idle() and not parser.locked:  # the commonest requests, a whole read each
            if cython.compiled:
                if hot_request(data, parser.max_item_size, cython.address(hot)):
                    key = bytes_slice(data, hot.key_at, hot.key_at + hot.key_len)
                    if hot.opcode == C_OP_GET:
                        dispatcher.run_hot(key, False, FIXED_BGET_PACKET, None, hot.opaque, 0, 0)
                    else:  # SET, SETQ: as _store sends them
                        dispatcher.run_hot(
                            key, False, FIXED_BSTORE_PACKET, bytes_slice(data, hot.key_at + hot.key_len, len(data)),
                            hot.opcode | cython.cast(cython.longlong, hot.flags) << 8,
                            cython.cast(cython.longlong, hot.exptime | cython.cast(cython.ulonglong, hot.opaque) << 32),
                            cython.cast(cython.longlong, hot.cas),
                        )
                    return False
            else:
                get = _single_get(data)
                if get is not None:
                    dispatcher.run_hot(get[0], False, FIXED_BGET_PACKET, None, get[1], 0, 0)
                    return False
        return self._run(parser.feed(data), 0, dispatcher.ctx.reqs_per_event + 1)

    def run_pending(self) -> bool:
        """The next turn of the requests that waited (``reqs_per_event`` of them); True when
        some still wait."""
        requests, self._pending = self._pending, None
        if requests is None:
            return False
        return self._run(requests, self._pending_at, self._dispatcher.ctx.reqs_per_event)

    def _run(self, requests: list[b.Request], at: int, quota: int) -> bool:
        """Execute ``requests[at:]``, then what the parser held back after a login, until
        ``quota`` ran (one ``conn_yields``: the rest waits in ``_pending``). True when some
        wait."""
        dispatcher = self._dispatcher
        parser = self._parser
        ran = 0
        while True:
            while at < len(requests):
                self._execute(requests[at])
                at += 1
                ran += 1
                if dispatcher.quitting:
                    return False
                if ran == quota:
                    dispatcher.ctx.service.conn_stats.conn_yields += 1
                    if at < len(requests) or parser.held:
                        self._pending = requests
                        self._pending_at = at
                        return True
                    return False
            if not parser.held:
                return False
            requests = parser.feed(b"")  # a login ran: parse the rest under its outcome
            at = 0

    def _execute(self, r: b.Request) -> None:
        op = r.opcode
        if op in _GETS:
            self._get(r, "bget", (r.key,))
        elif op in _STORE_VERBS:
            self._store(r)
        elif op in _GATS:
            self._get(r, "bgat", (r.key, _FLAGS.unpack(r.extras)[0]))
        elif op == b.OP_DELETE or op == b.OP_DELETEQ:
            self._delete(r)
        elif op in (b.OP_INCREMENT, b.OP_DECREMENT, b.OP_INCREMENTQ, b.OP_DECREMENTQ):
            self._arith(r)
        elif op == b.OP_TOUCH:
            self._touch(r)
        elif op == b.OP_NOOP:
            self._dispatcher.reply(b.response(op, b.ST_OK, r.opaque))
        elif op == b.OP_VERSION:
            self._dispatcher.reply(b.response(op, b.ST_OK, r.opaque, value=self._dispatcher.ctx.version.encode()))
        elif op == b.OP_QUIT or op == b.OP_QUITQ:
            if op == b.OP_QUIT:
                self._dispatcher.reply(b.response(op, b.ST_OK, r.opaque))
            self._dispatcher.quit()
        elif op == b.OP_FLUSH or op == b.OP_FLUSHQ:
            self._flush(r)
        elif op == b.OP_STAT:
            args = r.key.split()
            self._dispatcher.stats_command(_StatsReplies(self._dispatcher, r.opaque, args), args)
        elif op == b.OP_SASL_LIST_MECHS:
            self._dispatcher.reply(b.response(op, b.ST_OK, r.opaque, value=b"PLAIN"))
        elif op == b.OP_SASL_AUTH:
            self._sasl_auth(r)
        elif op == b.OP_SASL_STEP:
            continuing, self._continuing = self._continuing, False
            self._login(r, continuing and self._check(r.value))
        elif op == b.TOO_LARGE:
            self._too_large(r)
        elif op == b.UNKNOWN:
            self._dispatcher.reply(r.value)
        elif op == b.CLOSE:
            if r.value:
                self._dispatcher.reply(r.value)
            self._dispatcher.quit()
        else:  # pragma: no cover - the parser refuses every other opcode
            self._dispatcher.reply(b.error(op, b.ST_UNKNOWN, r.opaque))
            self._dispatcher.quit()

    def _get(self, r: b.Request, handler: str, args: tuple[Any, ...]) -> None:
        op, opaque, key = r.opcode, r.opaque, r.key
        quiet = op in b.QUIET
        echo_key = key if op in _WITH_KEY else b""

        def finish(found: tuple[int, int, bytes] | None) -> bytes:
            if found is None:
                if quiet:
                    return b""
                if echo_key:
                    return b.response(op, b.ST_NOT_FOUND, opaque, key=echo_key)
                return b.error(op, b.ST_NOT_FOUND, opaque)
            flags, cas, value = found
            return b.response(op, b.ST_OK, opaque, cas, _FLAGS.pack(flags), echo_key, value)

        self._dispatcher.run_keyed(key, handler, args, finish)

    def _touch(self, r: b.Request) -> None:
        op, opaque = r.opcode, r.opaque

        def finish(found: tuple[int, int, bytes] | None) -> bytes:
            if found is None:
                return b.error(op, b.ST_NOT_FOUND, opaque)
            return b.response(op, b.ST_OK, opaque, found[1], _FLAGS.pack(found[0]))

        self._dispatcher.run_keyed(r.key, "bgat", (r.key, _FLAGS.unpack(r.extras)[0]), finish)

    def _store(self, r: b.Request) -> None:
        """set/add/replace/append/prepend (and quiet forms): the owner answers with the whole
        response packet (KVService.bstore_packet), so a forwarded store is a fixed record."""
        op = r.opcode
        flags, exptime = _STORE_EXTRAS.unpack(r.extras) if r.extras else (0, 0)
        self._dispatcher.run_hot(r.key, False, FIXED_BSTORE_PACKET, r.value,
                                 op | flags << 8, as_int64(exptime | r.opaque << 32), as_int64(r.cas))

    def _delete(self, r: b.Request) -> None:
        op, opaque = r.opcode, r.opaque
        quiet = op == b.OP_DELETEQ

        def finish(result: int) -> bytes:
            if result == c.STORED:
                return b"" if quiet else b.response(op, b.ST_OK, opaque)
            return b.error(op, _RESULT_STATUS[result], opaque)

        self._dispatcher.run_keyed(r.key, "bdelete", (r.key, r.cas), finish)

    def _arith(self, r: b.Request) -> None:
        op, opaque = r.opcode, r.opaque
        incr = op in (b.OP_INCREMENT, b.OP_INCREMENTQ)
        quiet = op in b.QUIET
        delta, initial, exptime = _ARITH_EXTRAS.unpack(r.extras)

        def finish(outcome: tuple[int, int, int]) -> bytes:
            result, value, cas = outcome
            if result == c.STORED:
                return b"" if quiet else b.response(op, b.ST_OK, opaque, cas, value=_COUNTER.pack(value))
            return b.error(op, _RESULT_STATUS[result], opaque)

        # exptime 0xffffffff means "do not create"; others are the created item's expiry
        args = (incr, r.key, delta, initial, exptime, r.cas)
        self._dispatcher.run_keyed(r.key, "barith", args, finish)

    def _flush(self, r: b.Request) -> None:
        op, opaque = r.opcode, r.opaque
        delay = _FLAGS.unpack(r.extras)[0] if r.extras else 0
        if not self._dispatcher.ctx.flush_enabled:  # -F: memcached's answer, FLUSHQ included; not counted
            self._dispatcher.reply(b.error(op, b.ST_AUTH_ERROR, opaque))
            return
        reply = b"" if op == b.OP_FLUSHQ else b.response(op, b.ST_OK, opaque)
        self._dispatcher.flush_all(delay, False, reply)

    def _sasl_auth(self, r: b.Request) -> None:
        self._continuing = False
        if r.key.upper() == b"PLAIN" and not r.value:
            self._continuing = True
            self._dispatcher.reply(b.response(r.opcode, b.ST_AUTH_CONTINUE, r.opaque))
            return
        self._login(r, r.key.upper() == b"PLAIN" and self._check(r.value))

    def _check(self, message: bytes) -> bool:
        assert self._credentials is not None  # the parser emits SASL requests only with SASL on
        return plain_login(message, self._credentials)

    def _login(self, r: b.Request, ok: bool) -> None:
        self._parser.locked = not ok
        count_login(self._dispatcher.ctx.service.conn_stats, ok)
        if ok:
            self._dispatcher.reply(b.response(r.opcode, b.ST_OK, r.opaque, value=b"Authenticated"))
        else:
            self._dispatcher.reply(b.error(r.opcode, b.ST_AUTH_ERROR, r.opaque))

    def _too_large(self, r: b.Request) -> None:
        op = r.extras[0]
        verb = _STORE_VERBS[op]
        self._dispatcher.run_keyed_noreply(r.key, "too_large", (verb, r.key))
        self._dispatcher.reply(b.error(op, b.ST_TOO_LARGE, r.opaque))


class _StatsReplies:
    """Stands in for the dispatcher while the shared ``stats`` code answers: turns its ASCII
    lines into binary stat packets."""

    def __init__(self, dispatcher: "Dispatcher", opaque: int, args: list[bytes]) -> None:
        self._dispatcher = dispatcher
        self._opaque = opaque
        # memcached sends ``stats detail dump`` as one stat, "detailed", holding the whole dump
        self._whole_answer_as = b"detailed" if args[:2] == [b"detail", b"dump"] else None

    def reply(self, data: bytes) -> None:
        self._dispatcher.reply(self._convert(data))

    def fan_out(self, name: str, args: tuple[Any, ...], finish: Callable[[list[Any]], bytes]) -> None:
        self._dispatcher.fan_out(name, args, lambda results: self._convert(finish(results)))

    def _convert(self, data: bytes) -> bytes:
        opaque = self._opaque
        if data == ascii_proto.R_ERROR or data.startswith(b"CLIENT_ERROR "):  # no such group or subcommand
            return b.error(b.OP_STAT, b.ST_NOT_FOUND, opaque)
        if self._whole_answer_as is not None:
            return b.response(b.OP_STAT, b.ST_OK, opaque, key=self._whole_answer_as, value=data) + \
                b.response(b.OP_STAT, b.ST_OK, opaque)
        packets = []
        for line in data.split(b"\r\n"):
            if line.startswith(b"STAT "):
                _, name, value = line.split(b" ", 2)
                packets.append(b.response(b.OP_STAT, b.ST_OK, opaque, key=name, value=value))
        packets.append(b.response(b.OP_STAT, b.ST_OK, opaque))
        return b"".join(packets)
