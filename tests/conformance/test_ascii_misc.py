"""version, verbosity and quit."""

from __future__ import annotations

import re
from typing import Callable

from .conftest import Keys
from .wire import Wire, storage, value


def test_version(conn: Wire) -> None:
    """``version`` answers one line ``VERSION <something>``."""
    conn.send(b"version\r\n")
    line = conn.recv_line()
    assert re.fullmatch(rb"VERSION [^\r\n ]+\r\n", line), line
    conn.sync()


def test_version_ignores_extra_tokens(conn: Wire) -> None:
    """The version line does not depend on trailing tokens or spaces."""
    conn.send(b"version\r\n")
    plain = conn.recv_line()
    conn.send(b"version extra\r\nversion  \r\n")
    assert conn.recv_line() == plain
    assert conn.recv_line() == plain


def test_verbosity(conn: Wire) -> None:
    """``verbosity <n>`` answers OK (silently with noreply), without an argument it is ERROR,
    with a non-number CLIENT_ERROR."""
    conn.call(b"verbosity 1\r\n", b"OK\r\n")
    conn.call(b"verbosity 0\r\n", b"OK\r\n")
    conn.call(b"verbosity 0 noreply\r\n", b"")
    conn.call(b"verbosity\r\n", b"ERROR\r\n")
    conn.call(b"verbosity abc\r\n", b"CLIENT_ERROR bad command line format\r\n")
    conn.call(b"verbosity 0 noreply extra\r\n", b"ERROR\r\n")


def test_shutdown_is_refused_without_dash_a(conn: Wire) -> None:
    """Without -A every form of ``shutdown`` is refused and the server goes on."""
    conn.call(b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n")
    conn.call(b"shutdown graceful\r\n", b"ERROR: shutdown not enabled\r\n")
    conn.call(b"shutdown bogus mode\r\n", b"ERROR: shutdown not enabled\r\n")
    conn.send(b"version\r\n")
    assert conn.recv_line().startswith(b"VERSION ")


def test_a_nul_byte_ends_the_command_line(conn: Wire) -> None:
    """memcached reads a command line as a C string, so whatever follows a NUL byte is not
    part of it (found by fuzzing: kvshard took the NUL and the rest as part of a key)."""
    conn.call(b"set nul 0 0 1\x00junk more\r\nx\r\n", b"STORED\r\n")
    conn.call(b"get nul\x00 zz\r\n", b"VALUE nul 0 1\r\nx\r\nEND\r\n")
    conn.call(b"get nul zz\x00yy\r\n", b"VALUE nul 0 1\r\nx\r\nEND\r\n")
    conn.call(b"\x00get nul\r\n", b"ERROR\r\n")
    conn.send(b"version\x00x\r\n")
    assert conn.recv_line().startswith(b"VERSION ")


def test_quit_closes_the_connection(conn: Wire) -> None:
    """``quit`` closes the connection without a reply."""
    conn.send(b"quit\r\n")
    assert conn.wait_closed() == b""


def test_quit_in_a_pipeline(conn: Wire, keys: Keys, connect: Callable[[], Wire]) -> None:
    """Commands before ``quit`` are answered, those after it are not run."""
    k = keys()
    conn.send(storage(b"set", k, b"1") + b"get " + k + b"\r\nquit\r\n" + storage(b"set", k, b"2"))
    assert conn.wait_closed() == b"STORED\r\n" + value(k, b"1") + b"END\r\n"
    connect().call(b"get " + k + b"\r\n", value(k, b"1") + b"END\r\n")


def test_quit_with_arguments_still_closes(conn: Wire) -> None:
    """``quit`` ignores trailing tokens."""
    conn.send(b"quit now\r\n")
    assert conn.wait_closed() == b""


def test_server_survives_abrupt_disconnects(keys: Keys, connect: Callable[[], Wire]) -> None:
    """Clients vanishing mid-command (mid line, mid data block) do not hurt the server."""
    k = keys()
    for partial in [b"get " + k, b"set " + k + b" 0 0 10\r\nabc", b"set " + k + b" 0 0 1\r\n"]:
        w = connect()
        w.send(partial)
        w.close()
    connect().call(b"get " + k + b"\r\n", b"END\r\n")
