"""memcached's verbosity levels (``-v``, ``-vv``, ``verbosity N``), as log levels of every shard.

  0  warnings and errors only (``logging.WARNING``);
  1  and what the server tells about itself: listeners, start, stop (``logging.INFO``);
  2  and every client's command lines and answers, as memcached ``-vv`` prints them to standard
     error: ``<17 get foo``, ``>17 sending key foo``, ``>17 END``, ``<17 new auto-negotiating
     client connection``, ``<17 connection closed.`` (``logging.DEBUG``, logger
     ``kvshard.commands``; 17 is the client's socket in its shard's process).

``verbosity N`` runs :func:`set_verbosity` on every shard (handler ``kv.verbosity``) and, as
memcached, stores at most :data:`MAX_VERBOSITY` (``-vvv`` at start gives 3, shown by ``stats
settings``; memcached's extra level-3 lines, about each item lookup, are not written here).

Tracing costs nothing while the level is under 2: a connection tests ``ctx.trace_reads`` once
per read. Command lines are written in the order they are read; the answers when they are
written, so a read that carries several commands logs all its ``<`` lines and then the ``>``
lines (memcached interleaves them). Binary clients' requests are not traced (memcached dumps
their raw bytes).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from .protocol.ascii import STORE_OPS

__all__ = [
    "VERBOSITY_HANDLER", "MAX_VERBOSITY", "TRACE_LEVEL", "log_level", "set_verbosity", "command_lines",
    "reply_lines", "trace_log",
]

VERBOSITY_HANDLER: Final = "kv.verbosity"
MAX_VERBOSITY: Final = 2  # memcached's MAX_VERBOSITY_LEVEL: what ``verbosity N`` stores at most
TRACE_LEVEL: Final = 2  # from this level on, client commands and answers are logged

trace_log = logging.getLogger("kvshard.commands")


def log_level(verbosity: int) -> int:
    """The ``logging`` level of a memcached verbosity."""
    return logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG


def set_verbosity(ctx: Any, level: int) -> None:
    """``kv.verbosity``: this shard's level, now (``stats settings`` reports it); ``ctx`` is
    the shard's :class:`~kvshard.context.ShardContext`."""
    ctx.verbosity[0] = min(level, MAX_VERBOSITY)
    logging.getLogger().setLevel(log_level(ctx.verbosity[0]))
    ctx.retrace()


def _data_length(line: bytes) -> int | None:
    """The length of the data block a storage command line announces, if it is one."""
    tokens = line.split()
    if not tokens:
        return None
    try:
        if tokens[0] in STORE_OPS and len(tokens) >= 5:
            length = int(tokens[4])
        elif tokens[0] == b"ms" and len(tokens) >= 3:
            length = int(tokens[2])
        else:
            return None
    except ValueError:
        return None
    return length if length >= 0 else None


def command_lines(owed: int, held: bytes, data: bytes) -> list[bytes]:
    """The command lines a read completes, data blocks left out: ``owed`` is what the parser
    still expects of a data block, ``held`` the start of a line read earlier."""
    if owed:
        if owed >= len(data):
            return []
        buf, pos = data, owed
    else:
        buf, pos = held + data, 0
    out = []
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return out
        line = buf[pos : nl - 1] if nl > pos and buf[nl - 1] == 13 else buf[pos:nl]
        out.append(line)
        pos = nl + 1
        length = _data_length(line)
        if length is not None:
            pos += length + 2


def reply_lines(data: bytes) -> list[bytes]:
    """What memcached -vv says of the answers in ``data``: one line per status line, ``sending
    key <key>`` per value (its data left out); ``stats`` lines are not told."""
    out = []
    pos, end = 0, len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        if nl < 0:
            nl = end
        line = data[pos : nl - 1] if nl > pos and data[nl - 1] == 13 else data[pos:nl]
        pos = nl + 1
        tokens = line.split(b" ")
        try:
            if tokens[0] == b"VALUE" and len(tokens) >= 4:
                out.append(b"sending key " + tokens[1])
                pos += int(tokens[3]) + 2
                continue
            if tokens[0] == b"VA" and len(tokens) >= 2:
                pos += int(tokens[1]) + 2
        except ValueError:
            pass
        if tokens[0] != b"STAT":
            out.append(line)
    return out
