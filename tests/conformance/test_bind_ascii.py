"""``-B ascii``: every TCP connection speaks ASCII, byte for byte as memcached 1.6.18 -B ascii.

A binary request is not recognised: its bytes are read as text. No answer comes until a
``\\n`` ends the "line" (then ``ERROR``, the first token being no command) and the connection
stays open; 2048 bytes without a ``\\n`` that do not start with ``get ``/``gets `` close it,
as for any over-long ASCII line.
"""

from __future__ import annotations

import pytest

from kvshard.protocol import binary as b

from .binwire import req
from .conftest import Keys, server_with
from .test_ascii_stats import read_stats
from .wire import Wire, storage, value

server = server_with("-B", "ascii")

BINARY_VERSION = req(b.OP_VERSION)
BINARY_GET = req(b.OP_GET, b"bind-ascii-key")


def test_settings_say_ascii(conn: Wire) -> None:
    assert read_stats(conn, b" settings")["binding_protocol"] == "ascii"


def test_ascii_is_served(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(storage(b"set", k, b"v"), b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"v") + b"END\r\n")


@pytest.mark.parametrize("request_bytes", [BINARY_VERSION, BINARY_GET], ids=["version", "get"])
def test_binary_request_waits_for_a_newline_then_is_error(conn: Wire, request_bytes: bytes) -> None:
    conn.send(request_bytes)
    assert conn.recv_available(wait=0.3) == b""  # no line yet: nothing to answer
    conn.call(b"\r\n", b"ERROR\r\n")  # the packet's bytes and the newline are one bad line


def test_binary_request_with_its_own_newline(conn: Wire) -> None:
    conn.call(BINARY_VERSION + b"version\r\n", b"ERROR\r\n")  # (a NUL ends memcached's line)


@pytest.mark.parametrize("size, closes", [(2047, False), (2049, True)], ids=["2047", "2049"])
def test_long_binary_looking_line(conn: Wire, size: int, closes: bool) -> None:
    conn.send(b"\x80" * size)
    if closes:
        assert conn.wait_closed() == b""
    else:
        assert conn.recv_available(wait=0.3) == b""
        conn.call(b"\n", b"ERROR\r\n")
